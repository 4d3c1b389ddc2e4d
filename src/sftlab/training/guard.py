"""Never train on NaN: an optimizer step whose loss or gradients are not finite on any rank is skipped.

Runs in `on_before_optimizer_step`, after the backward passes of the accumulation window and before the
module normalises the gradients (callbacks run first; a positive scale does not change finiteness). A
skipped step drops every gradient, so the optimizer changes neither weights nor its state; it is counted
(`train/skipped_steps`) and logged with step and batch, and `max_in_a_row` such steps in a row stop the
run with an error naming them. `sftlab fit` adds this callback to every run that does not list it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from sftlab.errors import SftlabError
from sftlab.model.loss import gradient_norm

log = logging.getLogger(__name__)


class NonFiniteGuard(Callback):
    def __init__(self, max_in_a_row: int = 5) -> None:
        """
        Args:
            max_in_a_row: Stop the run after this many skipped optimizer steps in a row.
        """
        self.max_in_a_row = max_in_a_row
        self.skipped = self.in_a_row = 0

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer) -> None:
        gradients = [p.grad for p in pl_module.parameters() if p.grad is not None]
        local_loss = float(pl_module.window[0])  # the CausalLMModule's summed loss of this window, this rank
        # Every rank computes the norm (a collective for sharded gradients), whatever its loss.
        finite_gradients = not gradients or bool(torch.isfinite(gradient_norm(gradients)))
        finite = math.isfinite(local_loss) and finite_gradients
        bad = torch.tensor(0.0 if finite else 1.0, device=pl_module.device)
        if float(trainer.strategy.reduce(bad, reduce_op="sum")) == 0:
            self.in_a_row = 0
            return
        for parameter in pl_module.parameters():
            parameter.grad = None
        self.skipped += 1
        self.in_a_row += 1
        pl_module.log("train/skipped_steps", float(self.skipped))
        where = f"step {trainer.global_step + 1}, batch {trainer.fit_loop.epoch_loop.batch_idx} of epoch {trainer.current_epoch}"
        log.warning("%s: non-finite loss or gradient: optimizer step skipped (%d in a row)", where, self.in_a_row)
        if self.in_a_row >= self.max_in_a_row:
            raise SftlabError(
                f"training stopped at {where}: non-finite loss or gradients in {self.in_a_row} optimizer steps in a row "
                "(NonFiniteGuard max_in_a_row); lower the learning rate, check the data, or train in float32"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "in_a_row": self.in_a_row}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped, self.in_a_row = state_dict["skipped"], state_dict["in_a_row"]
