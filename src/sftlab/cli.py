"""The `sftlab` entry point.

Subcommands are plain typed functions or classes exposed through jsonargparse, so every
`data.*` key is the same on the command line, in a YAML config and in code. User errors
(`SftlabError`) are printed as one line with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from sftlab.errors import SftlabError

# Sections of a full `fit` config that `inspect` reads past, so one config serves both commands.
FIT_SECTIONS = ("model", "trainer", "optimizer", "lr_scheduler", "seed_everything", "ckpt_path")


def inspect_parser() -> ArgumentParser:
    from sftlab.data.datamodule import SFTDataModule

    parser = ArgumentParser(prog="sftlab inspect", description="Show what will be trained: tokens, labels and data statistics.")
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML config (its data section is used).")
    parser.add_class_arguments(SFTDataModule, "data", instantiate=True)
    parser.add_argument("--split", type=str, default="train", help="train or val.")
    parser.add_argument("--limit", type=int, default=3, help="How many examples to show.")
    parser.add_argument("--json", action=ActionYesNo, default=False, help="One JSON object per example (input_ids, labels) on stdout.")
    for section in FIT_SECTIONS:
        parser.add_argument(f"--{section}", type=Any, default=None, help="(read past: used by fit)")
    return parser


def inspect_command(argv: list[str]) -> None:
    from sftlab.inspect import run_inspect

    parser = inspect_parser()
    config = parser.instantiate_classes(parser.parse_args(argv))
    run_inspect(config.data, split=config.split, limit=config.limit, as_json=config.json)


def lightning_command(argv: list[str]) -> None:
    """`sftlab fit|validate|test|predict`: LightningCLI over the module and the datamodule."""
    from lightning.pytorch.cli import LightningCLI

    from sftlab.data.datamodule import SFTDataModule
    from sftlab.model.module import CausalLMModule

    LightningCLI(CausalLMModule, SFTDataModule, args=argv, save_config_kwargs={"overwrite": True})


COMMANDS = {"inspect": inspect_command}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in (*LIGHTNING_COMMANDS, *COMMANDS):
        print(f"usage: sftlab {{{','.join((*LIGHTNING_COMMANDS, *COMMANDS))}}} [--help] ...", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=os.environ.get("SFTLAB_LOG", "INFO"), format="%(message)s")
    try:
        if argv[0] in LIGHTNING_COMMANDS:
            lightning_command(argv)
        else:
            COMMANDS[argv[0]](argv[1:])
    except SftlabError as err:
        print(f"sftlab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
