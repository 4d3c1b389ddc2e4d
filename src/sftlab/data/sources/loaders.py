"""Training loaders that know where the data trained so far ends, so a checkpoint resumes at the very
next batch: `ResumableDataLoader` for map-style rows (a position in the `EpochSampler`'s order) and
`StreamLoader` for streams (every worker's position in its shards, and which worker is next).

Why the datamodule saves the position, not Lightning's stateful-loader support: Lightning reads one
batch ahead of a loader without a length (a stream), so a loader's own state at checkpoint time is one
batch past what was trained; and Lightning saves only rank 0's loader state, while each rank reads its
own shards of a stream; and it drops the saved state when the optimizer's schedule asks for the run's
length before the checkpoint is restored (`max_epochs` runs; Lightning issue #20550). So each loader
queues the position after each batch it hands out; the datamodule marks the oldest one trained when
the loop takes a batch (`on_before_batch_transfer`), and saves every rank's trained position.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets
import torch
import torch.distributed as dist
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from sftlab.data.labels.tally import Tally
from sftlab.data.sources.sampler import EpochSampler, world
from sftlab.errors import SftlabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batching:
    """How rows become batches (`data.batching`)."""

    batch_size: int = 8
    """Rows per micro-batch."""
    group_by_length: bool = False
    """Draw batches of similar lengths (less padding)."""
    pad_to_multiple_of: int = 8
    """Pad each batch to a multiple of this many tokens."""
    num_workers: int = 0
    """DataLoader worker processes (streaming: they read and tokenize in parallel)."""

    def __post_init__(self) -> None:
        for name, least in (("batch_size", 1), ("pad_to_multiple_of", 1), ("num_workers", 0)):
            if getattr(self, name) < least:
                raise SftlabError(f"data.batching.{name} must be at least {least}, got {getattr(self, name)}")

    def loader(self) -> dict[str, int]:
        """A DataLoader's arguments."""
        return {"batch_size": self.batch_size, "num_workers": self.num_workers}


class TrainedPosition:
    """Positions of batches handed out and not yet trained, the position after the last trained one,
    and the tally of what was trained."""

    def __init__(self, tally: Tally) -> None:
        self.pending: deque[tuple[Any, torch.Tensor]] = deque()
        self.position: Any = None
        self.tally = tally

    def handed_out(self, position: Any, counts: torch.Tensor) -> None:
        self.pending.append((position, counts))

    def trained(self) -> None:
        self.position, counts = self.pending.popleft()
        self.tally.add(counts)


class ResumableDataLoader(DataLoader):
    """A DataLoader over an `EpochSampler` whose collate function returns `(batch, counts)`
    (`TallyingCollator`); it yields the batches, and positions are `{"epoch", "batches"}`."""

    sampler: EpochSampler

    def __init__(self, *args: Any, tally: Tally, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableDataLoader needs an EpochSampler")
        self.trained = TrainedPosition(tally)

    def __iter__(self) -> Iterator[Any]:
        # A generator: the sampler is read at the first `next`, after Lightning's `set_epoch`.
        resume = self.sampler.resume
        batches = resume[1] // self.batch_size if resume and resume[0] == self.sampler.epoch else 0
        self.trained.pending.clear()
        for batch, counts in super().__iter__():
            batches += 1
            self.trained.handed_out({"epoch": self.sampler.epoch, "batches": batches}, counts)
            yield batch

    def resume(self, position: dict[str, int]) -> None:
        log.info("resuming the training data at epoch %d, batch %d", position["epoch"], position["batches"])
        self.sampler.resume_at(position["epoch"], position["batches"] * self.batch_size)


class StreamLoader:
    """Batches of a stream through torchdata's `StatefulDataLoader`, which keeps each worker's
    position (datasets' `IterableDataset.state_dict`: shard, offset in it, the mixing generator) and
    the order of the workers, and restores them; positions are its `state_dict()` and the number of
    workers (a position holds one state per worker). Not a DataLoader and without `state_dict` of its
    own, so Lightning leaves its state to the datamodule."""

    def __init__(self, dataset: datasets.IterableDataset, tally: Tally, seed: int, **loader: Any) -> None:
        # Its own generator: the loader's base seed would otherwise be drawn from the global RNG.
        with warnings.catch_warnings():  # torchdata 0.11 calls torch.set_vital, deprecated in later torch
            warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
            self.loader = StatefulDataLoader(dataset, generator=torch.Generator().manual_seed(seed), **loader)
        self.trained = TrainedPosition(tally)

    def __iter__(self) -> Iterator[Any]:
        self.trained.pending.clear()
        for batch, counts in self.loader:
            self.trained.handed_out({"workers": self.loader.num_workers, "loader": self.loader.state_dict()}, counts)
            yield batch

    def resume(self, position: dict[str, Any]) -> None:
        if position["workers"] != self.loader.num_workers:
            raise SftlabError(
                f"ckpt_path: the checkpoint streamed its data with data.batching.num_workers {position['workers']}; resume it with as many"
            )
        log.info("resuming the training stream where the checkpoint's last trained batch ended")
        self.loader.load_state_dict(position["loader"])


def every_rank(state: Any) -> list[Any]:
    """`state` of every rank, in rank order (a collective: every rank calls it at the same point)."""
    size, _ = world()
    if size == 1:
        return [state]
    states: list[Any] = [None] * size
    dist.all_gather_object(states, state)
    return states


def own_shards(dataset: Any) -> Any:
    """This rank's part of a stream (`datasets`' `split_dataset_by_node`: whole shards where their count
    divides by the world size, else every world-size-th row); map-style data unchanged (the sampler splits it)."""
    size, rank = world()
    return split_dataset_by_node(dataset, rank, size) if isinstance(dataset, datasets.IterableDataset) and size > 1 else dataset


def resume(loader: ResumableDataLoader | StreamLoader, ranks: list[dict[str, Any]], tally: Tally) -> None:
    """Continue after the last batch the checkpoint's run trained, from this rank's saved position and
    tally; a stream's positions are per rank, so the world size must be the checkpoint's."""
    size, rank = world()
    if isinstance(loader, StreamLoader) and len(ranks) != size:
        raise SftlabError(f"ckpt_path: the checkpoint streamed its data on {len(ranks)} ranks; resume it on as many, not {size}")
    state = ranks[min(rank, len(ranks) - 1)]  # map-style positions are the same on every rank
    tally.sums = state["tally"].clone()
    if state["position"] is not None:
        loader.resume(state["position"])
