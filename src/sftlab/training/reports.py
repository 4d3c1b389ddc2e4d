"""The data report of each split (read, kept, truncated, dropped by reason, trainable fraction; per
source and the requested mixture for a mixture) in the run's logs at the start of fit: as scalars
(`data/<split>/...`) and, in TensorBoard, as a text table. For a mixture, what training actually drew
from each source (the realised mixture: rows, tokens and trainable tokens, summed over ranks) is logged
every `log_every_n_steps` optimizer steps as `data/train/<source>/...`, and as a table at the end."""

from __future__ import annotations

import logging
from typing import Any

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from sftlab.data.datamodule import SFTDataModule

log = logging.getLogger(__name__)


class DataReportLogger(Callback):
    def __init__(self) -> None:
        self.logged_step = -1

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(trainer.datamodule, SFTDataModule) or trainer.logger is None:
            return
        for split, report in trainer.datamodule.reports.items():
            trainer.logger.log_metrics(report.as_metrics(), step=0)
            if isinstance(trainer.logger, TensorBoardLogger):
                trainer.logger.experiment.add_text(f"data/{split}", f"```\n{report.table()}\n```", 0)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.mixed(trainer) or step == self.logged_step or step % trainer.log_every_n_steps:
            return
        self.logged_step = step
        tally = trainer.datamodule.tally
        for name, value in tally.metrics(self.every_rank(trainer, pl_module)).items():
            pl_module.log(name, value, rank_zero_only=True)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.mixed(trainer):
            return
        table = trainer.datamodule.tally.table(self.every_rank(trainer, pl_module))
        if trainer.is_global_zero:
            log.info("mixture trained (all ranks):\n%s", table)
            if isinstance(trainer.logger, TensorBoardLogger):
                trainer.logger.experiment.add_text("data/train/mixture", f"```\n{table}\n```", trainer.global_step)

    @staticmethod
    def mixed(trainer: Trainer) -> bool:
        return isinstance(trainer.datamodule, SFTDataModule) and len(trainer.datamodule.tally.requested) > 1

    @staticmethod
    def every_rank(trainer: Trainer, pl_module: LightningModule) -> Any:
        """The tally summed over ranks (a collective)."""
        return trainer.strategy.reduce(trainer.datamodule.tally.sums.to(pl_module.device), reduce_op="sum").cpu()
