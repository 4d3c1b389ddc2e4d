"""A test helper callback: from optimizer step `step` on, every `os.fsync` of rank `rank` fails with
ENOSPC, as a full disk (or a quota, or NFS) reports it when a file is flushed; torch Distributed
Checkpoint flushes every shard it writes. For machines where a test cannot mount a small filesystem."""

from __future__ import annotations

import errno
import os

from lightning import Callback


def no_space(descriptor: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class NoSpaceFrom(Callback):
    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and trainer.global_rank == self.rank:
            os.fsync = no_space
