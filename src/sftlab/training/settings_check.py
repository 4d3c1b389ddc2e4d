"""Settings that cannot work are one-line errors when the config is read, before any data is read or any
model is built (a negative learning rate used to surface as a traceback after tokenizing, and
`max_steps 0` as a successful run that did nothing)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import instantiate_class

from sftlab.errors import SftlabError


def _as_dict(section: Any) -> dict[str, Any]:
    return section.as_dict() if hasattr(section, "as_dict") else dict(section)


def check_trainer(trainer: Any) -> None:
    accumulate = trainer.get("accumulate_grad_batches")
    if isinstance(accumulate, int) and accumulate < 1:
        raise SftlabError(f"trainer.accumulate_grad_batches must be at least 1, got {accumulate}")
    max_steps, max_epochs = trainer.get("max_steps"), trainer.get("max_epochs")
    if max_steps is not None and (max_steps == 0 or max_steps < -1):
        raise SftlabError(f"trainer.max_steps {max_steps}: nothing would be trained (a positive number, or -1 for no limit)")
    if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
        raise SftlabError(f"trainer.max_epochs {max_epochs}: nothing would be trained (a positive number, or -1 for no limit)")
    clip = trainer.get("gradient_clip_val")
    if clip is not None and clip < 0:
        raise SftlabError(f"trainer.gradient_clip_val must not be negative, got {clip}")


def check_optimization(optimizer: Any, lr_scheduler: Any) -> None:
    """Build the optimizer and the schedule once on a stand-in parameter: their own checks (torch's
    'Invalid learning rate', the schedule's ranges) then speak before any work."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    try:
        built = instantiate_class(([{"params": [parameter]}],), _as_dict(optimizer))
    except (ValueError, TypeError) as err:
        raise SftlabError(f"optimizer: {err}") from None
    if lr_scheduler is None:
        return
    settings = _as_dict(lr_scheduler)
    init_args = settings.get("init_args") or {}
    if "total_steps" in init_args and init_args["total_steps"] is None:
        settings = {**settings, "init_args": {**init_args, "total_steps": 1000}}
    try:
        instantiate_class(built, settings)
    except (ValueError, TypeError) as err:
        raise SftlabError(f"lr_scheduler: {err}") from None
