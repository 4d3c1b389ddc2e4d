"""The training order: seeded per epoch, optionally length-grouped, split over ranks, resumable mid-epoch.

Why not torch's `RandomSampler` + Lightning's automatic `DistributedSampler`: resuming from a
checkpoint saved mid-epoch must continue with the very next batch of the very same order, which
needs (1) an order that depends only on `seed` and the epoch, and (2) the position within the epoch
saved in the checkpoint. Lightning saves and restores the state of any train loader that has
`state_dict`/`load_state_dict` (its `_Stateful` protocol), and leaves a sampler that already is a
`DistributedSampler` as it is, so this sampler does the rank split itself.

Length grouping is HF Trainer's `group_by_length`: shuffle, cut into megabatches of
`batch_size * world_size * megabatch_size` indices, sort each by length (longest first). Rank r takes
positions r, r+W, r+2W, ..., so every rank's batch at a step comes from the same megabatch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

log = logging.getLogger(__name__)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_by_length: bool = False,
        megabatch_size: int = 50,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        world, own_rank = _world()
        num_replicas = world if num_replicas is None else num_replicas
        rank = own_rank if rank is None else rank
        super().__init__(lengths, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.lengths = list(lengths)
        self.group = batch_size * num_replicas * megabatch_size if group_by_length else 0
        self.resume: tuple[int, int] | None = None  # (epoch, samples of this rank already consumed)

    def order(self) -> list[int]:
        """All ranks' indices of this epoch, padded (by repeating the start) to a multiple of the world size."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.group:
            order = [
                i
                for start in range(0, len(order), self.group)
                for i in sorted(order[start : start + self.group], key=lambda i: -self.lengths[i])
            ]
        padding = self.total_size - len(order)
        order += (order * math.ceil(padding / len(order)))[:padding] if padding else []
        return order

    def resume_at(self, epoch: int, consumed: int) -> None:
        """Skip the first `consumed` samples of this rank the next time `epoch` is iterated."""
        self.resume = (epoch, consumed)

    def __iter__(self) -> Iterator[int]:
        own = self.order()[self.rank : self.total_size : self.num_replicas]
        skip = 0
        if self.resume is not None:
            epoch, consumed = self.resume
            skip = consumed if epoch == self.epoch else 0
            self.resume = None
        return iter(own[skip:])


class ResumableDataLoader(DataLoader):
    """A DataLoader over an `EpochSampler` whose position in the epoch goes into Lightning checkpoints.

    The position counts batches handed to the loop (not batches prefetched by workers), so a checkpoint
    saved after step k resumes at the batch that step k+1 would have drawn.
    """

    sampler: EpochSampler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableDataLoader needs an EpochSampler")
        self.position = 0

    def __iter__(self) -> Iterator[Any]:
        # A generator: the sampler is read at the first `next`, after Lightning's `set_epoch`.
        resume = self.sampler.resume
        self.position = resume[1] // self.batch_size if resume and resume[0] == self.sampler.epoch else 0
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        log.info("resuming the training data at epoch %d, batch %d", state["epoch"], state["batches"])
        self.sampler.resume_at(state["epoch"], state["batches"] * self.batch_size)
