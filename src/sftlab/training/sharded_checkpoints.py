"""Sharded checkpoints written whole or not at all.

Under FSDP2 a checkpoint is a folder: every rank writes its own shards with torch Distributed Checkpoint
and rank 0 writes `meta.pt` (Lightning's `ModelParallelStrategy.save_checkpoint`). Writing straight into
`last.ckpt/` would let a kill mix the shards of two steps under one index. So the folder is written
under a temporary name beside its target (`.last.ckpt.tmp-PID-N`, cleaned up by the next run when the
process is gone) and renamed into place once every rank has finished; a kill leaves the previous
checkpoint or none (then `--ckpt_path last` falls back to the newest step checkpoint, resume.py).

A rank that cannot write its part (a full disk, a quota, a read-only folder; torch's own writer says
`RuntimeError: ... unexpected pos` for a full disk) fails the save on every rank alike: the ranks agree
on the outcome before anything is moved, the temporary folder is removed (it only takes room), the
previous checkpoints stay as they were, and every rank raises the same one-line error naming the
checkpoint, its folder and which rank could not write what.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.distributed as dist
from lightning.pytorch.strategies import Strategy
from torch.distributed.checkpoint import CheckpointException

from sftlab.artifacts import temporary_beside
from sftlab.errors import SftlabError


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
    try:
        save(checkpoint, staging)
        problem = None
    except (Exception, CheckpointException) as err:  # any rank's failure must reach every rank, or they would wait
        problem = write_problem(err, strategy.global_rank, staging if staging.is_dir() else target.parent)
    if problems := every_ranks_problems(problem):
        if strategy.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)
        raise SftlabError(
            f"cannot write the checkpoint {target}: {problems}; the checkpoints already in {target.parent} are whole: "
            "make room and relaunch with --ckpt_path last"
        )
    strategy.barrier("sftlab: sharded checkpoint written")
    if strategy.is_global_zero:
        swap_in(staging, target)
    strategy.barrier("sftlab: sharded checkpoint in place")


def write_problem(err: BaseException, rank: int, folder: Path) -> str | None:
    """What stopped this rank writing its part, None when only other ranks failed (torch Distributed
    Checkpoint raises their failures on every rank, keyed by rank). torch's file writer turns the OS's
    error into `RuntimeError: ... unexpected pos`: then a small write into `folder` says what it was."""
    if isinstance(err, CheckpointException):
        if rank not in err.failures:
            return None
        err = err.failures[rank][0]
    if isinstance(err, OSError) and err.strerror:
        return f"rank {rank}: {err.strerror}"
    if isinstance(err, SftlabError):
        return f"rank {rank}: {err}"
    return f"rank {rank}: {write_probe(folder) or f'{type(err).__name__}: {err}'}"


def write_probe(folder: Path) -> str | None:
    """Why writing 1 MiB into `folder` fails now (the OS's words), None when it does not."""
    probe = temporary_beside(folder / "write-probe")
    try:
        with probe.open("wb") as file:
            file.write(bytes(2**20))
            file.flush()
            os.fsync(file.fileno())
    except OSError as err:
        return err.strerror or str(err)
    finally:
        probe.unlink(missing_ok=True)
    return None


def every_ranks_problems(problem: str | None) -> str:
    """The problems of all ranks, joined (a collective); empty when every rank wrote its part."""
    problems = [problem]
    if dist.is_initialized() and dist.get_world_size() > 1:
        problems = [None] * dist.get_world_size()
        dist.all_gather_object(problems, problem)
    return "; ".join(p for p in problems if p)
