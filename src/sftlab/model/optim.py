"""Optimizer parameter groups and the default learning-rate schedule.

`CausalLMModule` takes its optimizer and scheduler as Lightning's `OptimizerCallable` /
`LRSchedulerCallable` (`optimizer:` / `lr_scheduler:` in a config, `--optimizer torch.optim.SGD` on the
command line). Whatever the optimizer, it receives two parameter groups: weights, which get the
optimizer's own `weight_decay`, and biases and norms (parameters with fewer than 2 dimensions), whose
`weight_decay` is 0, as in the Alpaca/HF recipes. A scheduler whose constructor has a `total_steps`
argument left unset receives the run's number of optimizer steps (sftlab's `WarmupDecay` does;
so does torch's `OneCycleLR`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from lightning.pytorch.cli import instantiate_class
from torch.optim.lr_scheduler import LambdaLR


def parameter_groups(parameters: Iterable[torch.nn.Parameter]) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: decayed (matrices, embeddings) and not (biases, norms)."""
    trainable = [p for p in parameters if p.requires_grad]
    return [
        {"params": [p for p in trainable if p.ndim >= 2]},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]


def takes_total_steps(factory: Callable[..., Any]) -> bool:
    """Whether a scheduler factory wants the run's length: its `total_steps` argument is present and unset
    (jsonargparse's factories carry every argument, defaults included, as keywords; a plain class or
    `functools.partial` shows it in its signature)."""
    keywords = getattr(factory, "keywords", None) or {}
    if "total_steps" in keywords:
        return keywords["total_steps"] is None
    try:
        return "total_steps" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and other callables without a signature
        return False


class WarmupDecay(LambdaLR):
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_ratio: float = 0.03,
        decay: Literal["cosine", "linear", "constant"] = "cosine",
        total_steps: int | None = None,
    ) -> None:
        """Linear warmup from 0 over the first `warmup_ratio` of the run, then decay to 0 at its end
        (the Alpaca recipe: 3% warmup, cosine).

        Args:
            optimizer: The optimizer whose learning rates follow the schedule.
            warmup_ratio: Fraction of the optimizer steps spent warming up, in [0, 1).
            decay: cosine | linear | constant after the warmup.
            total_steps: Optimizer steps in the run; sftlab fills it in from the trainer (leave unset).
        """
        if not 0 <= warmup_ratio < 1:
            raise ValueError(f"lr_scheduler.warmup_ratio must be in [0, 1), got {warmup_ratio}")
        if total_steps is None or total_steps < 1:
            raise ValueError(f"WarmupDecay needs total_steps >= 1 (the run's optimizer steps), got {total_steps}")
        self.warmup_steps = math.ceil(warmup_ratio * total_steps)
        self.total_steps = total_steps
        self.decay = decay
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.decay == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress if self.decay == "linear" else 1.0


# The defaults of `sftlab fit`'s `optimizer:` / `lr_scheduler:` sections and of the module's arguments:
# AdamW with the Alpaca recipe's learning rate 2e-5 and no weight decay; WarmupDecay's own defaults.
DEFAULT_OPTIMIZER = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 2e-5, "weight_decay": 0.0}}
DEFAULT_LR_SCHEDULER = {"class_path": f"{__name__}.WarmupDecay"}


def default_optimizer(parameters: Iterable[Any]) -> torch.optim.Optimizer:
    """`DEFAULT_OPTIMIZER` over `parameters` (parameter groups)."""
    return instantiate_class(parameters, DEFAULT_OPTIMIZER)
