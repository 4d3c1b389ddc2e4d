"""The data report of each split (read, kept, truncated, dropped by reason, trainable fraction) in the
run's logs at the start of fit: as scalars (`data/<split>/...`) and, in TensorBoard, as a text table."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from sftlab.data.datamodule import SFTDataModule


class DataReportLogger(Callback):
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not isinstance(trainer.datamodule, SFTDataModule) or trainer.logger is None:
            return
        for split, report in trainer.datamodule.reports.items():
            trainer.logger.log_metrics(report.as_metrics(), step=0)
            if isinstance(trainer.logger, TensorBoardLogger):
                trainer.logger.experiment.add_text(f"data/{split}", f"```\n{report.table()}\n```", 0)
