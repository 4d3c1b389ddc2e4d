"""A test helper callback: prints `sftlab-test: step N` on stderr after each optimizer step (rank 0), so a
test can signal a running fit at a chosen step (by waiting for the line, never by sleeping); at the start
of training every rank prints `sftlab-test: rank R pid P`, so a test can signal one rank of a
multi-process run. Each line is one `write` (whole, however many ranks share the stream)."""

from __future__ import annotations

import os

from lightning import Callback


def say(line: str) -> None:
    os.write(2, f"{line}\n".encode())


class AnnounceSteps(Callback):
    def __init__(self) -> None:
        self.seen = -1

    def on_train_start(self, trainer, pl_module) -> None:
        say(f"sftlab-test: rank {trainer.global_rank} pid {os.getpid()}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.seen:
            self.seen = trainer.global_step
            if trainer.global_rank == 0:
                say(f"sftlab-test: step {trainer.global_step}")
