"""A training budget in trainable tokens: stop a fit once it has trained N labels.

Masking strategies train very different numbers of tokens per optimizer step (`none` about twice
`assistant`, `last_assistant` a fraction of it), so runs with the same `max_steps` see different amounts
of supervision. Comparing them at equal trainable tokens needs a fit that stops at a token count:

    trainer:
      max_steps: 40            # the learning-rate schedule's length: about N / trainable tokens per step
      callbacks:
        - class_path: sftlab.training.budget.TokenBudget
          init_args: {max_trainable_tokens: 50000}

A trainable token is a label that is not -100, whatever its loss weight, and that the masking strategy
trains: tokens trained only through `data.prompt_loss_weight` do not count (`train/trainable_tokens`
counts them), so runs with different prompt loss weights stop after the same answer tokens. They are
summed over the micro-batches of each optimizer step and over all ranks, and the fit stops after the
first optimizer step at which the total reaches N (never inside an accumulation window),
so a run trains at least N and less than N plus one step's tokens. The learning-rate schedule still
runs over `trainer.max_steps`: set it to about N divided by the trainable tokens per step (the data
report gives trainable tokens and packed rows) so the schedule ends near the budget; if `max_steps` comes
first, the run ends there, short of N. The count is in checkpoints, so a resumed run keeps its budget.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.errors import SftlabError


class TokenBudget(Callback):
    def __init__(self, max_trainable_tokens: int) -> None:
        """
        Args:
            max_trainable_tokens: Stop after the optimizer step at which this many trainable tokens (labels
                other than -100 that the masking trains, summed over accumulation and ranks) have been trained.
        """
        if max_trainable_tokens <= 0:
            raise SftlabError(f"TokenBudget: max_trainable_tokens must be > 0, got {max_trainable_tokens}")
        self.max_trainable_tokens = max_trainable_tokens
        self.trained = 0  # world-summed trainable tokens of all finished optimizer steps
        self.window = 0  # this rank's trainable tokens of the current accumulation window
        self.seen_step = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.seen_step, self.window = trainer.global_step, 0
        if self.trained >= self.max_trainable_tokens:  # resumed from a checkpoint that had spent the budget
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        trained = batch["labels"][:, 1:] != IGNORE_INDEX
        self.window += int((trained & ~batch["prompt_mask"][:, 1:]).sum() if "prompt_mask" in batch else trained.sum())
        if trainer.global_step == self.seen_step:  # the accumulation window goes on
            return
        self.seen_step = trainer.global_step
        window = torch.tensor(float(self.window), dtype=torch.float64, device=pl_module.device)
        self.trained += int(trainer.strategy.reduce(window, reduce_op="sum"))
        self.window = 0
        pl_module.log("train/cumulative_trainable_tokens", float(self.trained), rank_zero_only=True)
        if self.trained >= self.max_trainable_tokens:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"trained": self.trained}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.trained = state_dict["trained"]
