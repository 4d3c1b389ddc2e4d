"""`sftlab ui --model PATH [--base_model PATH]`: load the model(s) as `sftlab generate` does and
serve the chat page on 127.0.0.1 (by default: only this machine can reach it); beyond loopback only with
a login (`--auth`, `--auth_file`, `$SFTLAB_UI_AUTH`) or an explicit `--no_auth` (access.py)."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import torch
from jsonargparse import ActionYesNo, ArgumentParser

from sftlab.errors import SftlabError
from sftlab.inference.cli import add_model_arguments, load_model, sampling_from
from sftlab.ui.access import AUTH_VARIABLE, access_note, logins_for

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
    parser.add_argument(
        "--host",
        type=str,
        default="127.0.0.1",
        help="Address to serve on (0.0.0.0 exposes the page to the network: needs a login or --no_auth).",
    )
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", type=str | None, default=None, help="USER:PASSWORD the page asks for (Gradio's basic auth).")
    parser.add_argument(
        "--auth_file", type=str | None, default=None, help=f"A file of logins, one USER:PASSWORD a line (else ${AUTH_VARIABLE})."
    )
    parser.add_argument(
        "--no_auth",
        action=ActionYesNo(yes_prefix="", no_prefix=None),
        default=False,
        help="Serve beyond loopback without a login, on purpose.",
    )
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
    logins = logins_for(config.host, config.auth, config.auth_file, config.no_auth)
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
    print(
        f"sftlab ui: serving {config.model} on http://{config.host}:{config.port}, {access_note(config.host, logins)} (Ctrl-C stops)",
        flush=True,
    )
    launch(page, config.host, config.port, logins)


def launch(page: Any, host: str, port: int, logins: list[tuple[str, str]], block: bool = True) -> None:
    """Serve `page` (a Gradio Blocks); `block` False returns once it serves (tests)."""
    page.queue().launch(
        server_name=host,
        server_port=port,
        auth=logins or None,
        share=False,
        quiet=True,
        footer_links=[],
        show_error=True,
        prevent_thread_lock=not block,
    )
