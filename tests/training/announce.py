"""A test helper callback: prints `sftlab-test: step N` on stderr after each optimizer step, so a test can
signal a running fit at a chosen step (by waiting for the line, never by sleeping)."""

from __future__ import annotations

import sys

from lightning import Callback


class AnnounceSteps(Callback):
    def __init__(self) -> None:
        self.seen = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.seen:
            self.seen = trainer.global_step
            print(f"sftlab-test: step {trainer.global_step}", file=sys.stderr, flush=True)
