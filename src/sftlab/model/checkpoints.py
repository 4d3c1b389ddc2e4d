"""Checkpoints for long fine-tunes: every N optimizer steps, the newest `keep` of them plus `last.ckpt`,
in one folder per run root (`<trainer.default_root_dir>/checkpoints`), so a relaunch with
`--ckpt_path last` finds the previous launch's checkpoint instead of looking in a new logger version.

Lightning's `ModelCheckpoint` does the work; "keep the newest N" is its documented recipe of
monitoring `step` in `max` mode. Random-number states go into the checkpoint too (Lightning does not
save them), so dropout draws after a resume are the ones an uninterrupted run would have made.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from lightning import LightningModule, Trainer
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def rng_states() -> dict[str, Any]:
    """Lightning's collection of RNG states, with numpy's key array as a list: checkpoints then hold
    only types that `torch.load(weights_only=True)` (Lightning's default on resume) accepts."""
    states = _collect_rng_states()
    name, keys, *rest = states["numpy"]
    states["numpy"] = (name, keys.tolist(), *rest)
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    name, keys, *rest = states["numpy"]
    _set_rng_states({**states, "numpy": (name, np.asarray(keys, dtype=np.uint32), *rest)})


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
        self.resolve_dirpath(trainer)
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
