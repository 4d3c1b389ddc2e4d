"""Tokens per second and a model-FLOPs-utilisation (MFU) estimate per optimizer step.

Lightning's `ThroughputMonitor` counts one length per batch and averages over a window; training
here needs two counts per step (all tokens and trainable tokens, summed over the accumulation
window and the ranks) and the per-step figure, so this is a small timer; the peak FLOPs of known
GPUs come from Lightning (`get_available_flops`). MFU uses the PaLM estimate of training FLOPs per
token: 6 x parameters + 12 x layers x width x sequence length (attention), with frozen parameters
(LoRA) costing 4 instead of 6 (no weight gradients).
"""

from __future__ import annotations

import time

import torch
from lightning.fabric.utilities.throughput import get_available_flops
from transformers import PreTrainedModel


def training_flops_per_token(model: torch.nn.Module, sequence_length: float) -> float:
    parameters = trainable = 0
    for parameter in model.parameters():
        parameters += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    config = next((m.config for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    layers = getattr(config, "num_hidden_layers", 0) or 0
    width = getattr(config, "hidden_size", 0) or 0
    return 6 * trainable + 4 * (parameters - trainable) + 12 * layers * width * sequence_length


class StepThroughput:
    """Counts tokens of the current accumulation window and times whole optimizer steps."""

    def __init__(self) -> None:
        self.tokens = 0
        self.rows = 0
        self.last_step: float | None = None

    def add_batch(self, tokens: int, rows: int) -> None:
        self.tokens += tokens
        self.rows += rows

    def step(
        self,
        model: torch.nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        world_tokens: float,
        world_trainable: float,
        world_size: int,
        peak_flops: float | None,
    ) -> dict[str, float]:
        """Figures of the step that ends now (none for the first: it has no start time)."""
        now = time.perf_counter()
        previous, self.last_step = self.last_step, now
        tokens_per_row = self.tokens / max(self.rows, 1)
        self.tokens = self.rows = 0
        if previous is None:
            return {}
        seconds = now - previous
        figures = {
            "throughput/tokens_per_s": world_tokens / seconds,
            "throughput/trainable_tokens_per_s": world_trainable / seconds,
            "throughput/step_seconds": seconds,
        }
        peak = peak_flops or get_available_flops(device, dtype)
        if peak:
            achieved = training_flops_per_token(model, tokens_per_row) * world_tokens / seconds
            figures["throughput/mfu"] = achieved / (peak * world_size)
        return figures
