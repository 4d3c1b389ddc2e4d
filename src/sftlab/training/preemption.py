"""Preemption: on SIGTERM (how SLURM, Kubernetes and most schedulers stop a job) or SIGUSR1 (SLURM's
warning signal, `#SBATCH --signal=USR1@90`), finish the optimizer step under way, save `last.ckpt` where
`--ckpt_path last` finds it, requeue the job under SLURM (when Lightning's `SLURMEnvironment` has
`auto_requeue`, its default), and stop with exit status 128 + the signal: never the 0 a scheduler and
`sftlab fit ... && next-step` would take for success.

Lightning's own SIGTERM handling stops after the current micro-batch (mid-accumulation, so nothing exact
can be saved) and exits 0; its SIGUSR1 handler saves an `hpc` checkpoint mid-step. This callback replaces
both handlers once training starts, and all ranks agree at each step boundary (a signal may reach one
rank only). `sftlab fit` adds it to every run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.fabric.plugins.environments import SLURMEnvironment

from sftlab.errors import Stopped
from sftlab.training.checkpoints import Checkpoints

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def checkpoint_folder(trainer: Trainer) -> Path:
    """Where `--ckpt_path last` looks: the `Checkpoints` callback's folder, else `<default_root_dir>/checkpoints`."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, Checkpoints):
            return Path(callback.resolve_dirpath(trainer))
    return Path(trainer.default_root_dir) / "checkpoints"


def requeue_slurm_job() -> int:
    """`scontrol requeue` for this job (an array task by its own id); the command's exit status."""
    job = os.environ.get("SLURM_JOB_ID", "")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if not job.replace("_", "").isdigit():
        log.warning("preemption: no SLURM job id to requeue (SLURM_JOB_ID=%r)", job)
        return 1
    return subprocess.run(["scontrol", "requeue", job], check=False).returncode


class Preemption(Callback):
    def __init__(self) -> None:
        self.received: int = 0  # the signal number, 0 for none
        self.previous: dict[int, Any] = {}
        self.seen_step = -1

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After Lightning registered its handlers (it does so just before training), which ours replace.
        self.received, self.seen_step = 0, trainer.global_step
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self.note) for signum in SIGNALS}

    def note(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            log.warning("received %s: saving a checkpoint at the end of this optimizer step", signal.Signals(signum).name)
        self.received = signum

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.seen_step:  # inside an accumulation window
            return
        self.seen_step = trainer.global_step
        signum = int(trainer.strategy.reduce(torch.tensor(float(self.received), device=pl_module.device), reduce_op="max"))
        if signum:
            self.stop(trainer, signum)

    def stop(self, trainer: Trainer, signum: int) -> None:
        path = checkpoint_folder(trainer) / "last.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # the whole training state, to resume exactly
        name = signal.Signals(signum).name
        environment = getattr(trainer.strategy, "cluster_environment", None)
        requeued = ""
        if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
            status = requeue_slurm_job() if trainer.is_global_zero else 0
            requeued = "; the SLURM job is requeued" if status == 0 else f"; requeueing the SLURM job failed ({status})"
        raise Stopped(
            f"stopped by {name} after step {trainer.global_step}: checkpoint saved to {path}{requeued}; "
            "relaunch with --ckpt_path last to continue",
            128 + signum,
        )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}
