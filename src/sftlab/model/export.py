"""HF-format export: the trained model (or its LoRA adapter) and its tokenizer with the chat template
used in training, loadable by plain `transformers` / `peft`, plus `sftlab.json` saying how prompts
were rendered (the Alpaca template has no chat template to save). Written to a temporary folder and
renamed into place, so an interrupted export never leaves a half folder where a good one was.

Two ways in: the `HFExport` callback at the end of `fit`, and `sftlab export CHECKPOINT` for any
Lightning checkpoint (optionally merging LoRA into the base weights).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sftlab.errors import SftlabError

log = logging.getLogger(__name__)

EXPORT_INFO = "sftlab.json"


def export_hf(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    target: Path,
    chat_template: str | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Save `model` (with `state_dict` instead of its own, e.g. gathered from FSDP shards) and
    `tokenizer` to `target`, replacing whatever was there only once everything is written."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging, **({"state_dict": state_dict} if state_dict is not None else {}))
        if chat_template:  # on a copy: the caller's tokenizer (a datamodule's, a test's) keeps its own template
            tokenizer = copy.copy(tokenizer)
            tokenizer.chat_template = chat_template
        tokenizer.save_pretrained(staging)
        (staging / EXPORT_INFO).write_text(json.dumps(info or {}, indent=1) + "\n")
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def training_info(data_hparams: dict[str, Any]) -> dict[str, Any]:
    """What `sftlab generate` needs to prompt the model as it was trained."""
    return {
        "template": "alpaca" if data_hparams.get("template") == "alpaca" else "chat",
        "masking": str(data_hparams.get("masking")),
        "max_seq_length": data_hparams.get("max_seq_length"),
    }


def export_module(model: PreTrainedModel, datamodule: Any, target: Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Export with the tokenizer and template of `datamodule` (an `SFTDataModule`)."""
    template = datamodule.renderer.template if datamodule.hparams.template != "alpaca" else None
    return export_hf(
        model, datamodule.tokenizer, target, chat_template=template, state_dict=state_dict, info=training_info(dict(datamodule.hparams))
    )


class HFExport(Callback):
    """At the end of `fit`, export to `<log dir>/hf` (or `dirpath`)."""

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Every rank takes part: under FSDP this gathers the full weights from the shards.
        state = trainer.strategy.lightning_module_state_dict()
        if not trainer.is_global_zero:
            return
        model_state = {name.removeprefix("model."): tensor for name, tensor in state.items() if name.startswith("model.")}
        target = Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "hf")
        export_module(pl_module.model, trainer.datamodule, target, state_dict=model_state)
        log.info("exported to %s", target)


def export_checkpoint(checkpoint: Path, output: Path, merge_lora: bool = False) -> Path:
    """Export a `sftlab fit` checkpoint; with `merge_lora`, LoRA is folded into the base weights and
    a plain transformers model is written."""
    from sftlab.model.restore import restore_checkpoint

    module, datamodule = restore_checkpoint(checkpoint)
    model = module.model
    if merge_lora:
        if not hasattr(model, "merge_and_unload"):
            raise SftlabError(f"export: --merge_lora given, but {checkpoint} holds a full fine-tune, not a LoRA adapter")
        model = model.merge_and_unload()
    return export_module(model, datamodule, output)
