"""HF-format export: the trained model and its tokenizer (with the chat template used in training),
loadable by plain `transformers`. Written to a temporary folder and renamed into place, so an
interrupted export never leaves a half folder where a good one was."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def export_hf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path, chat_template: str | None = None) -> Path:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        if chat_template:
            tokenizer.chat_template = chat_template
        tokenizer.save_pretrained(staging)
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


class HFExport(Callback):
    """At the end of `fit`, export to `<log dir>/hf` (or `dirpath`)."""

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        target = Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "hf")
        template = data.renderer.template if data.hparams.template != "alpaca" else None
        export_hf(pl_module.model, data.tokenizer, target, chat_template=template)
