"""The `sftlab` entry point.

Subcommands are plain typed functions or classes exposed through jsonargparse, so every
`data.*` key is the same on the command line, in a YAML config and in code. User errors
(`SftlabError`) are printed as one line with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from argparse import ArgumentError
from typing import Any

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from sftlab.errors import SftlabError, Stopped

# Sections of a full `fit` config that `inspect` reads past, so one config serves both commands
# (`model` is parsed, for `model.source`, but never built).
FIT_SECTIONS = ("trainer", "optimizer", "lr_scheduler", "seed_everything", "ckpt_path")


def inspect_parser() -> ArgumentParser:
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.model.module import CausalLMModule

    parser = ArgumentParser(prog="sftlab inspect", description="Show what will be trained: tokens, labels and data statistics.")
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML config (its data section is used).")
    parser.add_subclass_arguments(SFTDataModule, "data", required=True)
    parser.add_subclass_arguments(
        CausalLMModule, "model", required=False, instantiate=False, help="(read for model.source, which data.tokenizer defaults to)"
    )
    parser.add_argument("--split", type=str, default="train", help="train or val.")
    parser.add_argument("--limit", type=int, default=3, help="How many examples to show.")
    parser.add_argument("--json", action=ActionYesNo, default=False, help="One JSON object per example (input_ids, labels) on stdout.")
    for section in FIT_SECTIONS:
        parser.add_argument(f"--{section}", type=Any, default=None, help="(read past: used by fit)")
    return parser


def inspect_command(argv: list[str]) -> None:
    from sftlab.inspect import run_inspect
    from sftlab.training.cli import tokenizer_follows_model
    from sftlab.training.moved_keys import check_moved_keys

    check_moved_keys(argv)
    parser = inspect_parser()
    config = parser.parse_args(argv)
    tokenizer_follows_model(config.data, config.model)
    config = parser.instantiate_classes(config)
    run_inspect(config.data, split=config.split, limit=config.limit, as_json=config.json)


def lightning_command(argv: list[str] | None) -> None:
    """`sftlab fit|validate|test|predict`: LightningCLI over the module and the datamodule
    (`argv` None: it reads `sys.argv` itself)."""
    from sftlab.training.cli import SftlabCLI

    SftlabCLI(args=argv)


# Lines of jsonargparse's union-type report that say nothing about what the user got wrong.
_NOISE = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "- Expected a <class 'NoneType'>")


def config_error_line(message: str) -> str:
    """jsonargparse's multi-line report on a bad config, as one line: the key and the reasons. jsonargparse
    has no structured form of this report, so its text is read; the lines dropped (`_NOISE`) are those of
    the 4.x series (pyproject bounds jsonargparse below 5; tests/test_cli.py checks the result)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    kept = [line.removeprefix("- ") for line in lines if not line.startswith(_NOISE)]
    return "".join(line + (" " if line.endswith(":") else "; ") for line in kept).removesuffix("; ")


def user_error(error: BaseException) -> SftlabError | None:
    """The SftlabError behind `error`, if any: jsonargparse re-raises errors from constructors as
    ValueErrors ("Does not validate against any of the Union subtypes") with the original as cause."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SftlabError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def export_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sftlab export", description="Convert a `sftlab fit` checkpoint to an HF-format folder.")
    parser.add_argument("checkpoint", type=str, help="A Lightning checkpoint (.ckpt) written by `sftlab fit`.")
    parser.add_argument(
        "--output",
        type=str | None,
        default=None,
        help="The folder to write (a new folder, or one sftlab exported before, which is replaced whole); default: the checkpoint's path without .ckpt, plus -hf.",
    )
    parser.add_argument(
        "--merge_lora",
        action=ActionYesNo,
        default=False,
        help="Fold a LoRA adapter into the base weights and write a plain transformers model.",
    )
    return parser


def export_command(argv: list[str]) -> None:
    from pathlib import Path

    from sftlab.training.export import export_checkpoint

    config = export_parser().parse_args(argv)
    checkpoint = Path(config.checkpoint)
    output = Path(config.output) if config.output else checkpoint.with_name(f"{checkpoint.stem}-hf")
    print(export_checkpoint(checkpoint, output, merge_lora=config.merge_lora))


def generate_command(argv: list[str]) -> None:
    from sftlab.inference.cli import generate_command as run

    run(argv)


def chat_command(argv: list[str]) -> None:
    from sftlab.inference.cli import chat_command as run

    run(argv)


def ui_command(argv: list[str]) -> None:
    from sftlab.ui.cli import ui_command as run

    run(argv)


def eval_command(argv: list[str]) -> None:
    from sftlab.evaluation.cli import eval_command as run

    run(argv)


def self_instruct_command(argv: list[str]) -> None:
    from sftlab.selfinstruct.cli import self_instruct_command as run

    run(argv)


COMMANDS = {
    "inspect": inspect_command,
    "self-instruct": self_instruct_command,
    "export": export_command,
    "generate": generate_command,
    "chat": chat_command,
    "eval": eval_command,
    "ui": ui_command,
}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


class CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever `sys.stderr` is when a record comes (callers that run `main`
    several times in one process, like tests, swap it between runs)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging() -> None:
    """sftlab's own messages on stderr (Lightning already has its own handler)."""
    logger = logging.getLogger("sftlab")
    if not logger.handlers:
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(os.environ.get("SFTLAB_LOG", "INFO"))


def children_die_with_this_process() -> None:
    """Every process sftlab forks (tokenization workers of `data.num_proc` and the queue manager `datasets`
    starts beside them, DataLoader workers) asks the kernel for SIGTERM when sftlab dies, however it dies:
    a killed `sftlab fit` once left three ~500 MB processes running for good. Linux only (`PR_SET_PDEATHSIG`);
    `subprocess` children (exec'd programs) are not forked through Python and keep their own lives."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util
    import signal

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    forking = [os.getpid()]  # the pid of the process about to fork, as the child will see it

    def note_parent() -> None:
        forking[0] = os.getpid()

    def arm() -> None:
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != forking[0]:  # the parent died between the fork and the request
            os._exit(1)

    os.register_at_fork(before=note_parent, after_in_child=arm)


def main(argv: list[str] | None = None) -> None:
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in (*LIGHTNING_COMMANDS, *COMMANDS):
        print(f"usage: sftlab {{{','.join((*LIGHTNING_COMMANDS, *COMMANDS))}}} [--help] ...", file=sys.stderr)
        raise SystemExit(2)
    configure_logging()
    children_die_with_this_process()
    try:
        if argv[0] in LIGHTNING_COMMANDS:
            lightning_command(None if from_command_line else argv)
        else:
            COMMANDS[argv[0]](argv[1:])
    except Stopped as stop:
        print(f"sftlab: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    except (SftlabError, ValueError) as err:
        if (cause := user_error(err)) is None:
            raise
        print(f"sftlab: error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:  # the environment: a full disk, a read-only or missing folder
        print(f"sftlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ArgumentError as err:
        print(f"sftlab: error: {config_error_line(str(err))}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
