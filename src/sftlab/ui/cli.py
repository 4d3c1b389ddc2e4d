"""`sftlab ui --model PATH [--base_model PATH]`: load the model(s) as `sftlab generate` does and
serve the chat page on 127.0.0.1 (by default: only this machine can reach it)."""

from __future__ import annotations

import errno
import os
import socket

import torch
from jsonargparse import ArgumentParser

from sftlab.errors import SftlabError
from sftlab.inference.cli import add_model_arguments, load_model, sampling_from

UI_EXTRA = "sftlab ui needs Gradio, which comes with the ui extra: pip install 'sftlab[ui]' (or: pip install -e '.[ui]')"


def ui_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sftlab ui", description="A local web page to chat with a model, answers streamed.")
    add_model_arguments(parser)
    parser.add_argument(
        "--base_model",
        type=str | None,
        default=None,
        help="A second model (same forms as --model, a Hub id too) to answer side by side, e.g. the base of a fine-tune.",
    )
    parser.add_argument(
        "--base_template",
        type=str | None,
        default=None,
        help="The base model's prompt format (default: as --model's loading rules decide for it).",
    )
    parser.add_argument("--host", type=str, default="127.0.0.1", help="Address to serve on (0.0.0.0 exposes the page to the network).")
    parser.add_argument("--port", type=int, default=7860)
    return parser


def check_port_free(host: str, port: int) -> None:
    """Fail before loading any model when the address is taken or not ours."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise SftlabError(f"ui: port {port} on {host} is taken (another server runs there): choose another with --port") from None
            raise SftlabError(f"ui: cannot serve on {host}:{port}: {err.strerror}") from None


def ui_command(argv: list[str]) -> None:
    config = ui_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool
    try:
        from sftlab.ui.page import build_page
    except ImportError as err:
        if getattr(err, "name", "") and str(err.name).split(".")[0] == "gradio":
            raise SftlabError(UI_EXTRA) from None
        raise
    from sftlab.ui.app import ChatModel

    check_port_free(config.host, config.port)
    model = ChatModel(config.model, load_model(config))
    base = None
    if config.base_model:
        base_config = config.clone()
        base_config.model, base_config.base, base_config.template = config.base_model, None, config.base_template
        base_config.revision = None
        base = ChatModel(config.base_model, load_model(base_config))
    torch.manual_seed(config.seed)
    page = build_page(model, base, sampling_from(config), config.system or "")
    print(f"sftlab ui: serving {config.model} on http://{config.host}:{config.port} (Ctrl-C stops)", flush=True)
    page.queue().launch(server_name=config.host, server_port=config.port, share=False, quiet=True, footer_links=[], show_error=True)
