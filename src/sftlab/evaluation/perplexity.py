"""Loss, perplexity and next-token accuracy of a model on held-out conversations, under one or more
masking strategies: the labels are built exactly as in training (same template, same strategy), so
strategies and runs are compared on the same tokens. Sums over all tokens, then divided (not a mean
of per-batch means)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader

from sftlab.data.datamodule import MaskingName, SFTDataModule
from sftlab.inference.loading import LoadedModel
from sftlab.model.loss import label_positions, token_sums


def evaluate_strategy(
    loaded: LoadedModel,
    data_path: str,
    masking: MaskingName,
    max_seq_length: int = 2048,
    batch_size: int = 8,
    fmt: str = "auto",
    cache_dir: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float | int | str]:
    data = SFTDataModule(
        train_path=data_path,
        tokenizer=loaded.tokenizer_path,
        template=loaded.template,
        format=fmt,
        masking=masking,
        max_seq_length=max_seq_length,
        batch_size=batch_size,
        cache_dir=cache_dir,
    )
    dataset, report = data.build("train")
    model = loaded.model
    device = next(model.parameters()).device
    loss_sum = tokens = correct = 0.0
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=data.collator()):
            inputs = {key: batch[key].to(device) for key in ("input_ids", "attention_mask") if key in batch}
            logits = model(**inputs, use_cache=False).logits
            positions, targets = label_positions(batch["labels"].to(device))
            batch_loss, batch_correct = token_sums(logits[positions], targets)
            loss_sum += float(batch_loss)
            tokens += len(targets)
            correct += float(batch_correct)
            if progress:
                progress(len(batch["input_ids"]))
    loss = loss_sum / max(tokens, 1)
    return {
        "masking": masking,
        "examples": len(dataset),
        "dropped": sum(report.dropped.values()),
        "tokens": int(tokens),
        "loss": round(loss, 5),
        "perplexity": round(math.exp(min(loss, 80)), 4),
        "token_accuracy": round(correct / max(tokens, 1), 5),
    }
