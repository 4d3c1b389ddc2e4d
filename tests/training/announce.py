"""A test helper callback: prints `sftlab-test: step N` on stderr after each optimizer step, so a test can
signal a running fit at a chosen step (by waiting for the line, never by sleeping); at the start of
training every rank prints `sftlab-test: rank R pid P`, so a test can signal one rank of a multi-process run."""

from __future__ import annotations

import os
import sys

from lightning import Callback


class AnnounceSteps(Callback):
    def __init__(self) -> None:
        self.seen = -1

    def on_train_start(self, trainer, pl_module) -> None:
        print(f"sftlab-test: rank {trainer.global_rank} pid {os.getpid()}", file=sys.stderr, flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.seen:
            self.seen = trainer.global_step
            print(f"sftlab-test: step {trainer.global_step}", file=sys.stderr, flush=True)
