"""Tokens per second and a model-FLOPs-utilisation (MFU) estimate per optimizer step, as a callback.

Lightning's `ThroughputMonitor` counts one length per batch and averages over a window; training here
needs two counts per step (all tokens and trainable tokens, summed over the accumulation window and
the ranks) and the per-step figure, so this is a small timer; the peak FLOPs of known GPUs come from
Lightning (`get_available_flops`). MFU uses the PaLM estimate of training FLOPs per token:
6 x parameters + 12 x layers x width x sequence length (attention), with frozen parameters (LoRA)
costing 4 instead of 6 (no weight gradients).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.fabric.utilities.throughput import get_available_flops
from transformers import PreTrainedModel

from sftlab.data.labels.tokenize import IGNORE_INDEX


def training_flops_per_token(model: torch.nn.Module, sequence_length: float) -> float:
    parameters = trainable = 0
    for parameter in model.parameters():
        parameters += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    config = next((m.config for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    layers = getattr(config, "num_hidden_layers", 0) or 0
    width = getattr(config, "hidden_size", 0) or 0
    return 6 * trainable + 4 * (parameters - trainable) + 12 * layers * width * sequence_length


def compute_dtype(trainer: Trainer, pl_module: LightningModule) -> torch.dtype:
    precision = str(trainer.precision)
    if "bf16" in precision:
        return torch.bfloat16
    return torch.float16 if precision.startswith("16") else next(pl_module.parameters()).dtype


class Throughput(Callback):
    def __init__(self, peak_flops: float | None = None) -> None:
        """
        Args:
            peak_flops: Peak FLOP/s of one device, for the MFU estimate; default: Lightning's table of GPUs
                (on CPU there is none, and no MFU is logged unless this is given).
        """
        self.peak_flops = peak_flops
        self.counts = [0, 0, 0]  # tokens, trainable tokens, rows of the current accumulation window
        self.seen_step = 0
        self.last_step_end: float | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.seen_step, self.last_step_end = trainer.global_step, None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        lengths = batch["lengths"]
        trainable = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        self.counts = [self.counts[0] + int(lengths.sum()), self.counts[1] + trainable, self.counts[2] + len(lengths)]
        if trainer.global_step == self.seen_step:  # the accumulation window goes on
            return
        self.seen_step = trainer.global_step
        now, previous = time.perf_counter(), self.last_step_end
        tokens, trainable, rows = self.counts
        world = trainer.strategy.reduce(torch.tensor([tokens, trainable], dtype=torch.float64, device=pl_module.device), reduce_op="sum")
        self.counts, self.last_step_end = [0, 0, 0], now
        if previous is not None:  # the first step has no start time
            for name, value in self.figures(trainer, pl_module, world.tolist(), tokens / max(rows, 1), now - previous).items():
                pl_module.log(name, value, prog_bar=name == "throughput/tokens_per_s", rank_zero_only=True)

    def figures(
        self, trainer: Trainer, pl_module: LightningModule, world: list[float], row_length: float, seconds: float
    ) -> dict[str, float]:
        tokens, trainable = world
        figures = {
            "throughput/tokens_per_s": tokens / seconds,
            "throughput/trainable_tokens_per_s": trainable / seconds,
            "throughput/step_seconds": seconds,
        }
        peak = self.peak_flops or get_available_flops(pl_module.device, compute_dtype(trainer, pl_module))
        if peak:
            achieved = training_flops_per_token(pl_module, row_length) * tokens / seconds
            figures["throughput/mfu"] = achieved / (peak * trainer.world_size)
        return figures
