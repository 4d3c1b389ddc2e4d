"""Sharded checkpoints written whole or not at all.

Under FSDP2 a checkpoint is a folder: every rank writes its own shards with torch Distributed Checkpoint
and rank 0 writes `meta.pt` (Lightning's `ModelParallelStrategy.save_checkpoint`). Writing straight into
`last.ckpt/` would let a kill mix the shards of two steps under one index. So the folder is written
under a temporary name beside its target (`.last.ckpt.tmp-PID-N`, cleaned up by the next run when the
process is gone) and renamed into place once every rank has finished; a kill leaves the previous
checkpoint or none (then `--ckpt_path last` falls back to the newest step checkpoint, resume.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.strategies import Strategy

from sftlab.artifacts import temporary_beside


def swap_in(staging: Path, target: Path) -> None:
    """Rename the finished folder `staging` to `target`, replacing a previous checkpoint there."""
    if not target.exists():
        staging.rename(target)
        return
    retired = temporary_beside(target)
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired) if retired.is_dir() else retired.unlink()


def save_sharded_atomically(
    strategy: Strategy, checkpoint: dict[str, Any], target: Path, save: Callable[[dict[str, Any], Path], None]
) -> None:
    """`save(checkpoint, folder)` (a collective: every rank writes its part) into a temporary folder beside
    `target`, then move it into place."""
    staging = None
    if strategy.is_global_zero:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = str(temporary_beside(target))
    staging = Path(strategy.broadcast(staging))
    save(checkpoint, staging)
    strategy.barrier("sftlab: sharded checkpoint written")
    if strategy.is_global_zero:
        swap_in(staging, target)
    strategy.barrier("sftlab: sharded checkpoint in place")
