"""The training order: seeded per epoch, optionally mixed from several sources by weight (mixture.py),
optionally length-grouped, split over ranks, resumable mid-epoch.

Why not torch's `RandomSampler` + Lightning's automatic `DistributedSampler`: resuming from a
checkpoint saved mid-epoch must continue with the very next batch of the very same order, which
needs (1) an order that depends only on `seed` and the epoch, and (2) the position within the epoch
saved in the checkpoint (loaders.py). Lightning leaves a sampler that already is a `DistributedSampler`
as it is, so this sampler does the rank split itself.

Length grouping is HF Trainer's `group_by_length`: shuffle, cut into megabatches of
`batch_size * world_size * megabatch_size` indices, sort each by length (longest first). Rank r takes
positions r, r+W, r+2W, ..., so every rank's batch at a step comes from the same megabatch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from sftlab.data.sources.mixture import Mixture


def world() -> tuple[int, int]:
    """(world size, rank) of the process group, (1, 0) without one."""
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
        mixture: Mixture | None = None,
    ) -> None:
        """`lengths`: tokens of every row (of all sources, concatenated, with a `mixture`)."""
        size, own_rank = world()
        num_replicas = size if num_replicas is None else num_replicas
        rank = own_rank if rank is None else rank
        epoch = range(mixture.epoch_size) if mixture else lengths
        super().__init__(epoch, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.lengths = list(lengths)
        self.mixture = mixture
        self.group = batch_size * num_replicas * megabatch_size if group_by_length else 0
        self.resume: tuple[int, int] | None = None  # (epoch, samples of this rank already consumed)

    def order(self) -> list[int]:
        """All ranks' indices of this epoch, padded (by repeating the start) to a multiple of the world size."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = self.mixture.order(generator) if self.mixture else torch.randperm(len(self.lengths), generator=generator).tolist()
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
