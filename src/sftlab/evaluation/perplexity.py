"""Loss, perplexity and next-token accuracy of a model on held-out conversations, under one or more
masking strategies. It is the training module's own validation (`Trainer.validate` with the data as
the validation split and the strategy as `data.val_masking`): labels, sums over all tokens and the
loss are exactly those of training, so strategies and runs are compared on the same tokens."""

from __future__ import annotations

import math
from typing import Any

from lightning import Trainer

from sftlab.data.datamodule import SFTDataModule
from sftlab.data.sources.loaders import Batching
from sftlab.inference.loading import LoadedModel
from sftlab.model.causal_lm import Prebuilt
from sftlab.model.module import CausalLMModule


def accelerator_of(device: str) -> dict[str, Any]:
    """Trainer arguments for a torch device string (`cpu`, `cuda`, `cuda:1`)."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    return {"accelerator": "gpu", "devices": [int(index or 0)]}


def evaluate_strategy(
    loaded: LoadedModel,
    data_path: str,
    masking: str,
    max_seq_length: int = 2048,
    batch_size: int = 8,
    fmt: str = "auto",
    cache_dir: str | None = None,
    device: str = "cpu",
) -> dict[str, float | int | str]:
    data = SFTDataModule(
        val_path=data_path,
        tokenizer=loaded.tokenizer_path,
        template=loaded.template,
        format=fmt,
        val_masking=masking,
        max_seq_length=max_seq_length,
        batching=Batching(batch_size=batch_size),
        cache_dir=cache_dir,
    )
    module = CausalLMModule(causal_lm=Prebuilt(loaded.model))
    trainer = Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **accelerator_of(device)
    )
    metrics = trainer.validate(module, datamodule=data, verbose=False)[0]
    report = data.reports["val"]
    loss = metrics["val/loss"]
    return {
        "masking": masking,
        "examples": report.kept,
        "dropped": sum(report.dropped.values()),
        "tokens": int(metrics["val/trainable_tokens"]),
        "loss": round(loss, 5),
        "perplexity": round(math.exp(min(loss, 80)), 4),
        "token_accuracy": round(metrics["val/token_accuracy"], 5),
    }
