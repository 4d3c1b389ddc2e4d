"""A length-grouped sampler: batches of similar lengths waste less compute on padding.

Like HF Trainer's `group_by_length`: shuffle, cut into megabatches of `batch_size * megabatch_size`
indices, sort each megabatch by length (longest first). Under DDP, Lightning wraps it in
`DistributedSamplerWrapper`, which hands rank r the indices r, r+W, r+2W, ... of this order, so every
rank's batch at a step comes from the same megabatch, and forwards `set_epoch` to reshuffle.
All ranks draw the same order because the order depends only on `seed` and the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, megabatch_size: int = 50) -> None:
        self.lengths = list(lengths)
        self.group = batch_size * megabatch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        for start in range(0, len(order), self.group):
            yield from sorted(order[start:start + self.group], key=lambda i: -self.lengths[i])
