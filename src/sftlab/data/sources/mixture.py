"""Mixtures of sources: rows of several tokenized sources drawn by weight.

Map-style (`Mixture`): each epoch takes from every source its share of the epoch's rows, exactly
(largest remainders), and which rows and in what order is drawn from the seed and the epoch: a fresh
sample every epoch, the same one in every run with that seed. The epoch's length follows
`data.stopping_strategy`, as in `datasets.interleave_datasets`: `first_exhausted` ends it when the
first source has given all of its rows (others are subsampled), `all_exhausted` when the last has
(others are repeated). Streams are mixed by `datasets.interleave_datasets` itself: each row comes
from a source drawn with the weights as probabilities, from a seeded generator whose state is part of
the stream's state.

Rows of different sources meet in one batch, so they get the same columns: `position_ids`, `weights`
and `prompt_mask` are filled in where a source has none (`align_columns`); other columns stay when every
source has them. `source_index` says which source a row came from (what the realised mixture counts).
A mixture's order is drawn before DataLoader workers read rows, and a stream's mixing generator is
part of each worker's stream state, so both resume exactly (loaders.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import datasets
import numpy as np
import torch

from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.data.sources.build import Rows
from sftlab.data.sources.report import DataReport
from sftlab.data.sources.specs import StoppingStrategy

# Columns a row can lack, and their value for it: what the collator would assume without them.
FILLERS = {
    "position_ids": lambda row: list(range(len(row["input_ids"]))),
    "weights": lambda row: [float(label != IGNORE_INDEX) for label in row["labels"]],
    "prompt_mask": lambda row: [False] * len(row["labels"]),
}


@dataclass(frozen=True)
class Mixture:
    """Rows of each source (`sizes`, in concatenation order) and their requested `weights`."""

    sizes: tuple[int, ...]
    weights: tuple[float, ...]
    stopping_strategy: StoppingStrategy = "first_exhausted"

    @property
    def shares(self) -> np.ndarray:
        return np.asarray(self.weights, dtype=np.float64) / sum(self.weights)

    @property
    def epoch_size(self) -> int:
        ratios = np.asarray(self.sizes) / self.shares
        return int(ratios.min()) if self.stopping_strategy == "first_exhausted" else int(np.ceil(ratios.max() - 1e-9))

    def counts(self) -> list[int]:
        """Rows per source in every epoch: the shares of `epoch_size`, rounded by largest remainders."""
        exact = self.shares * self.epoch_size
        counts = np.floor(exact).astype(int)
        for source in np.argsort(-(exact - counts), kind="stable")[: self.epoch_size - counts.sum()]:
            counts[source] += 1
        return counts.tolist()

    def order(self, generator: torch.Generator) -> list[int]:
        """An epoch's rows as indices into the concatenated sources, in training order."""
        offsets = np.cumsum((0, *self.sizes))
        chosen = []
        for source, count in enumerate(self.counts()):
            passes = -(-count // self.sizes[source])  # whole permutations of the source, then a cut
            rows = torch.cat([torch.randperm(self.sizes[source], generator=generator) for _ in range(passes)])[:count]
            chosen.append(rows + int(offsets[source]))
        rows = torch.cat(chosen)
        return rows[torch.randperm(len(rows), generator=generator)].tolist()


def fill_columns(batch: dict[str, list[Any]], *, columns: tuple[str, ...]) -> dict[str, list[Any]]:
    """A batch of rows with the `FILLERS` columns in `columns` added (a `datasets.map` function)."""
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    return {column: [FILLERS[column](row) for row in rows] for column in columns}


def with_source_index(batch: dict[str, list[Any]], *, index: int) -> dict[str, list[int]]:
    return {"source_index": [index] * len(batch["input_ids"])}


def align_columns(
    sources: list[datasets.Dataset | datasets.IterableDataset], columns: list[list[str]]
) -> list[datasets.Dataset | datasets.IterableDataset]:
    """Each source with the fillable columns any source has, a `source_index`, and only the columns
    all of them share (`columns`: each source's column names). The per-record `source` is left out:
    it names a conversation file's record, which a text block has no counterpart of."""
    fillable = tuple(column for column in FILLERS if any(column in names for names in columns))
    shared = set.intersection(*(set(names) | set(fillable) for names in columns)) - {"source"}
    aligned = []
    for index, (dataset, names) in enumerate(zip(sources, columns)):
        missing = tuple(column for column in fillable if column not in names)
        if missing:
            dataset = dataset.map(partial(fill_columns, columns=missing), batched=True)
        dataset = dataset.map(partial(with_source_index, index=index), batched=True)
        aligned.append(dataset.select_columns(sorted(shared | {"source_index"})))
    return aligned


def mix(
    sources: list[datasets.Dataset | datasets.IterableDataset],
    columns: list[list[str]],
    weights: list[float],
    seed: int,
    stopping_strategy: StoppingStrategy,
) -> tuple[datasets.Dataset | datasets.IterableDataset, Mixture | None]:
    """Several sources' rows as one dataset: streams interleaved by weight (`datasets.interleave_datasets`),
    map-style sources concatenated, with the `Mixture` that draws each epoch's rows from them."""
    aligned = align_columns(sources, columns)
    if isinstance(aligned[0], datasets.IterableDataset):
        probabilities = (np.asarray(weights) / sum(weights)).tolist()
        return datasets.interleave_datasets(aligned, probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy), None
    return datasets.concatenate_datasets(aligned), Mixture(tuple(len(rows) for rows in aligned), tuple(weights), stopping_strategy)


def combine(
    split: str, built: dict[str, Rows], requested: dict[str, float], seed: int, stopping: StoppingStrategy
) -> tuple[Any, DataReport | None, Mixture | None]:
    """A split's rows from its sources' (`built`, by name): training rows mixed by the `requested`
    weights, validation rows kept by source; the split's report, with each source's planned rows."""
    if len(built) == 1:
        ((name, (rows, report, _)),) = built.items()
        return (rows if split == "train" else {name: rows}), report, None
    reports = {name: report for name, (_, report, _) in built.items() if report is not None}
    requested = requested if split == "train" else {}
    report = DataReport.combine(split, reports, requested, {}) if reports else None
    if split == "val":
        return {name: rows for name, (rows, _, _) in built.items()}, report, None
    rows, columns = [rows for rows, _, _ in built.values()], [columns for _, _, columns in built.values()]
    mixed, mixture = mix(rows, columns, list(requested.values()), seed, stopping)
    if report is not None:
        report.planned = dict(zip(requested, mixture.counts()))
    return mixed, report, mixture
