"""The progress bar names the limit that ends the run: `step 10/15` when `trainer.max_steps` does (Lightning's
own bar then reads `Epoch 2/-2`, since `max_epochs` is -1), `Epoch 1/2` when epochs do."""

from __future__ import annotations

from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar


def run_position(trainer: Trainer) -> str:
    if trainer.max_steps and trainer.max_steps > 0:
        return f"Epoch {trainer.current_epoch} · step {trainer.global_step}/{trainer.max_steps}"
    return f"Epoch {trainer.current_epoch}/{(trainer.max_epochs or 1) - 1}"


class StepProgressBar(RichProgressBar):
    def _describe(self, trainer: Trainer) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=run_position(trainer))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._describe(trainer)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._describe(trainer)
