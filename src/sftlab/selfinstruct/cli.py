"""`sftlab self-instruct`: its options are the signatures (and docstrings) of `Settings`,
`Decoding`, `OpenAIBackend` (`--openai.*`) and `LocalBackend` (`--local.*`); `--backend` picks the
one that is built, and `--workers` is the OpenAI backend's concurrency."""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any, Literal

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from sftlab.selfinstruct.backends import Decoding, LocalBackend, OpenAIBackend
from sftlab.selfinstruct.pipeline import Settings, run_self_instruct

BACKENDS = {"openai": OpenAIBackend, "local": LocalBackend}
INTERRUPTED = "sftlab: interrupted; run the same command again to continue"


def self_instruct_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="sftlab self-instruct",
        description="Generate Alpaca-format instruction data from seed tasks with an LLM (resumable).",
        exit_on_error=False,  # a bad option is one line, from sftlab.cli
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_class_arguments(Settings, nested_key=None)
    parser.add_class_arguments(Decoding, nested_key=None)
    parser.add_argument("--workers", type=int, default=4, help="Requests in flight (openai backend).")
    parser.add_argument("--backend", type=Literal["openai", "local"], default="openai", help="Which of --openai.* and --local.* is used.")
    parser.add_class_arguments(OpenAIBackend, "openai", instantiate=False)
    parser.add_class_arguments(LocalBackend, "local", instantiate=False)
    parser.link_arguments("workers", "openai.concurrency")
    return parser


def root_dataclass(cls: type, config: Namespace) -> Any:
    """A dataclass whose fields `add_class_arguments(cls, nested_key=None)` put at the top level."""
    return cls(**{field.name: config[field.name] for field in fields(cls)})


def self_instruct_command(argv: list[str]) -> None:
    config = self_instruct_parser().parse_args(argv)
    try:
        backend = BACKENDS[config.backend](**config[config.backend].as_dict())
        report = run_self_instruct(root_dataclass(Settings, config), root_dataclass(Decoding, config), backend)
    except KeyboardInterrupt:
        # Every kept task is already on disk (the accepted log is whole): say so, no traceback.
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None
    for line in report.lines():
        print(line, file=sys.stderr)
    print(config.output)
