"""2-process FSDP2 runs of `configs/tiny.yaml` through the real `sftlab fit` (gloo on CPU): a sharded
checkpoint after every step, all kept, so a run can be compared with the uninterrupted one step by step."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from sftlab.model.restore import restore_checkpoint
from tests.test_cli import REPO

# Runs compared bit for bit, and ranks started together by torchrun, need one given precision (not each process's probe).
FSDP2 = ("--trainer.strategy", "fsdp2", "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true")


def fit_command(config: Path, root: Path, *extra: str, strategy: tuple[str, ...] = FSDP2) -> list[str]:
    return [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(config), "--trainer.default_root_dir", str(root), *strategy, *extra]


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-4000:]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The full weights of a checkpoint (a sharded folder: every rank's shards)."""
    return restore_checkpoint(checkpoint)[0].state_dict()


def same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], tolerance: float = 0.0) -> None:
    """Equal, or within `tolerance` relative (per tensor, 2-norm)."""
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert ((got[name] - tensor).norm() / tensor.norm()).item() <= tolerance, name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
