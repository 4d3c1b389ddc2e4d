"""Checkpoints for long fine-tunes: every N optimizer steps, the newest `keep` of them plus `last.ckpt`,
in one folder per run root (`<trainer.default_root_dir>/checkpoints`), so a relaunch with
`--ckpt_path last` finds the previous launch's checkpoint instead of looking in a new logger version.

Lightning's `ModelCheckpoint` does the work; "keep the newest N" is its documented recipe of
monitoring `step` in `max` mode. Random-number states go into the checkpoint too (Lightning does not
save them), so dropout draws after a resume are the ones an uninterrupted run would have made; they are
kept as plain lists and tensors, which `torch.load(weights_only=True)` reads.

`AtomicCheckpointIO` writes each checkpoint file whole or not at all, beside its target: Lightning's own
writer goes through fsspec, which stages the file in `$TMPDIR` and moves it into place, and a move across
filesystems (`TMPDIR=/dev/shm`, a node-local `/tmp`) is a copy that a kill leaves half done.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sftlab.artifacts import atomic_file, remove_stale_temporaries

log = logging.getLogger(__name__)


def rng_states() -> dict[str, Any]:
    """Python's, numpy's and torch's (CPU and CUDA) random-number states, as plain data."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch.cuda"])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing through a temporary file in the target's own folder."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options!r}")
        with atomic_file(Path(path), "wb") as file:
            torch.save(checkpoint, file)


class Checkpoints(ModelCheckpoint):
    def __init__(self, every_n_train_steps: int = 500, keep: int = 3, dirpath: str | None = None) -> None:
        """
        Args:
            every_n_train_steps: Save after every this many optimizer steps (and at the end of fit).
            keep: How many step checkpoints to keep (the newest); `last.ckpt` is kept besides. -1 keeps all.
            dirpath: Where to save; default `<trainer.default_root_dir>/checkpoints`.
        """
        super().__init__(
            dirpath=dirpath,
            filename="step-{step:08d}",
            auto_insert_metric_name=False,
            every_n_train_steps=every_n_train_steps,
            save_top_k=keep,
            monitor="step",
            mode="max",
            save_last=True,
            enable_version_counter=False,
        )
        self.rng_to_restore: dict[str, Any] | None = None

    def resolve_dirpath(self, trainer: Trainer) -> str:
        """The folder, fixed before Lightning looks for `last` (which happens before `setup`)."""
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        return self.dirpath

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = Path(self.resolve_dirpath(trainer))
        if trainer.is_global_zero and folder.is_dir():
            for leftover in remove_stale_temporaries(folder):
                log.info("removed %s, left by a run that was killed while saving", leftover)
        super().setup(trainer, pl_module, stage)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng_states": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rng_to_restore = state_dict.pop("rng_states", None)
        super().load_state_dict(state_dict)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Restored here, after the sanity-check validation, right where the saved run went on training.
        if self.rng_to_restore is not None:
            set_rng_states(self.rng_to_restore)
            self.rng_to_restore = None
        super().on_train_start(trainer, pl_module)
