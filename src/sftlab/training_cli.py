"""`sftlab fit|validate|test|predict`: Lightning's CLI over `CausalLMModule` and `SFTDataModule`.

Subclass mode: a config may name its own module or datamodule by `class_path` (with `init_args`),
or give the built-in ones' arguments directly. Two things jsonargparse links cannot express here
(its links do not reach `init_args` of subclass-mode sections) are done before instantiation:
`data.tokenizer` defaults to `model.source` (the tokenizer follows the model), and `Checkpoints`
callbacks get their folder before Lightning resolves `--ckpt_path last`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lightning.pytorch.cli import LightningCLI

from sftlab.data.datamodule import SFTDataModule
from sftlab.model.checkpoints import Checkpoints
from sftlab.model.module import CausalLMModule

log = logging.getLogger(__name__)


def tokenizer_follows_model(data: Any, model: Any) -> None:
    """Set `data.tokenizer` (a config namespace or dict) to `model.source` when it is not given."""
    data_args = data.get("init_args", data) if hasattr(data, "get") else data
    model_args = model.get("init_args", model) if hasattr(model, "get") else model
    if data_args is not None and data_args.get("tokenizer") is None and model_args:
        data_args["tokenizer"] = model_args.get("source")


def pick_precision(trainer: Any) -> None:
    """Unset `trainer.precision` becomes bf16-mixed on CUDA GPUs that support bf16 (float32 elsewhere)."""
    if trainer.get("precision") is None and trainer.get("accelerator") in ("auto", "gpu", "cuda") \
            and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        trainer["precision"] = "bf16-mixed"
        log.info("trainer.precision: bf16-mixed (this GPU supports bf16)")


class SftlabCLI(LightningCLI):
    def __init__(self, args: list[str]) -> None:
        super().__init__(CausalLMModule, SFTDataModule, subclass_mode_model=True, subclass_mode_data=True, args=args,
                         save_config_kwargs={"overwrite": True}, parser_kwargs={"exit_on_error": False})

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        tokenizer_follows_model(config.data, config.model)
        pick_precision(config.trainer)

    def before_fit(self) -> None:
        for callback in self.trainer.checkpoint_callbacks:
            if isinstance(callback, Checkpoints):
                callback.resolve_dirpath(self.trainer)
