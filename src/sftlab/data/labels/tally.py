"""The realised mixture: rows, tokens and trainable tokens trained from each source so far.

The collator of a training loader counts them per batch (in the worker that builds the batch); a
batch's counts join the tally when the loop trains that batch, so the tally is what was trained,
not what was prefetched. It goes into checkpoints with the data position, so a resumed run goes on
counting from where the killed one stopped.
"""

from __future__ import annotations

from typing import Any

import torch

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.tokenize import IGNORE_INDEX

COUNTS = ("rows", "tokens", "trainable_tokens")


class TallyingCollator:
    """The collator's batch and its counts per source (`[sources, 3]`, COUNTS order); rows without a
    `source_index` (one source) count for the first."""

    def __init__(self, collator: Collator, sources: int) -> None:
        self.collator = collator
        self.sources = sources

    def __call__(self, rows: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = self.collator(rows)
        index = torch.tensor([row.get("source_index", 0) for row in rows])
        trainable = (batch["labels"][:, 1:] != IGNORE_INDEX).sum(1)  # the first label is never predicted
        per_row = torch.stack([torch.ones_like(trainable), batch["lengths"], trainable], 1).double()
        return batch, torch.zeros(self.sources, len(COUNTS), dtype=torch.float64).index_add_(0, index, per_row)


class Tally:
    """Counts trained per source, with the requested shares (`weights` normalised) to compare them with."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.requested = {name: weight / sum(weights.values()) for name, weight in weights.items()}
        self.sums = torch.zeros(len(weights), len(COUNTS), dtype=torch.float64)

    def add(self, counts: torch.Tensor) -> None:
        self.sums += counts

    def metrics(self, sums: torch.Tensor, split: str = "train") -> dict[str, float]:
        """`data/<split>/<source>/trained_{rows,tokens,trainable_tokens}` and the realised shares of rows
        (`realised`) and of tokens (`realised_tokens`), from `sums` (this tally's, or all ranks')."""
        totals = sums.sum(0).clamp(min=1)
        metrics = {}
        for name, counts in zip(self.requested, sums):
            metrics.update({f"data/{split}/{name}/trained_{key}": float(value) for key, value in zip(COUNTS, counts)})
            metrics[f"data/{split}/{name}/realised"] = float(counts[0] / totals[0])
            metrics[f"data/{split}/{name}/realised_tokens"] = float(counts[1] / totals[1])
        return metrics

    def table(self, sums: torch.Tensor) -> str:
        """Requested vs. realised shares per source, for the log and TensorBoard."""
        totals = sums.sum(0).clamp(min=1)
        lines = [f"{'source':<16} {'requested':>9} {'realised':>9} {'of tokens':>9} {'rows':>10} {'tokens':>12} {'trainable':>12}"]
        for (name, share), (rows, tokens, trainable) in zip(self.requested.items(), sums.tolist()):
            lines.append(
                f"{name:<16} {share:>9.1%} {rows / totals[0]:>9.1%} {tokens / totals[1]:>9.1%} {rows:>10,.0f} {tokens:>12,.0f} {trainable:>12,.0f}"
            )
        return "\n".join(lines)
