"""HF-format exports of a trained model: at the end of `fit` (`HFExport`) and from any checkpoint
(`sftlab export`). The model (or its LoRA adapter) goes out with the tokenizer and the chat template used
in training and `sftlab.json` saying how prompts were rendered, through `sftlab.artifacts.save_hf_folder`
(written whole or not at all; only a folder sftlab exported is ever replaced)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from peft import PeftModel
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from sftlab.artifacts import save_hf_folder, training_info
from sftlab.data.datamodule import SFTDataModule
from sftlab.errors import SftlabError
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.restore import restore_checkpoint

log = logging.getLogger(__name__)


def export_trained(
    module: LightningModule,
    model: torch.nn.Module,
    datamodule: SFTDataModule,
    target: Path,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Export `model` (the module's, or it merged) with the tokenizer and template of `datamodule`; `sftlab.json`
    names the base model's Hub id and commit when it came from the Hub (a LoRA adapter's config does too)."""
    template = datamodule.renderer.template if datamodule.template != "alpaca" else None
    info = training_info(datamodule.template, datamodule.masking, datamodule.rows_shape.max_seq_length)
    builder = module.builder
    if isinstance(builder, HFCausalLM) and builder.origin is not None:
        info["base_model"] = builder.origin.as_dict()
    return save_hf_folder(model, datamodule.tokenizer, target, info, chat_template=template, state_dict=state_dict)


def export_checkpoint(checkpoint: Path, output: Path, merge_lora: bool = False) -> Path:
    """Export a `sftlab fit` checkpoint (a file, or the folder of a sharded one); with `merge_lora`, LoRA
    is folded into the base weights and a plain transformers model is written."""
    module, datamodule = restore_checkpoint(checkpoint)
    model = module.model
    if merge_lora:
        if not isinstance(model, PeftModel):
            raise SftlabError(f"export: --merge_lora given, but {checkpoint} holds a full fine-tune, not a LoRA adapter")
        model = model.merge_and_unload()
    return export_trained(module, model, datamodule, output)


class HFExport(Callback):
    """At the end of `fit`, export to `<log dir>/hf` (or `dirpath`). `on_fit_end`, not `on_train_end`: a run
    relaunched with `--ckpt_path last` after a kill during the export has no training left to do, and
    Lightning then skips the train hooks, but the export is still owed."""

    def __init__(self, dirpath: str | None = None) -> None:
        """
        Args:
            dirpath: Where to export; default `<log dir>/hf`.
        """
        self.dirpath = dirpath

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Before any training: a run whose end cannot be exported fails now, not after hours."""
        if not isinstance(trainer.datamodule, SFTDataModule):
            raise SftlabError("HFExport needs sftlab's SFTDataModule (its tokenizer and template go with the export)")
        if not hasattr(pl_module.model, "save_pretrained"):
            raise SftlabError(
                f"HFExport: {type(pl_module.model).__name__} is not a transformers model (no save_pretrained): "
                "remove HFExport from trainer.callbacks"
            )

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Every rank takes part: under FSDP2 this gathers the full weights, onto rank 0's CPU memory.
        state = get_model_state_dict(pl_module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        # `trainer.log_dir` is a broadcast from rank 0 in a multi-process run: every rank asks for it.
        target = Path(self.dirpath or Path(trainer.log_dir or trainer.default_root_dir) / "hf")
        if not trainer.is_global_zero:
            return
        model_state = {name.removeprefix("model."): tensor for name, tensor in state.items() if name.startswith("model.")}
        export_trained(pl_module, pl_module.model, trainer.datamodule, target, state_dict=model_state)
        log.info("exported to %s", target)
