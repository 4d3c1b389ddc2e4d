"""The data report: what was read, kept, truncated and dropped (by reason), and how much trains.

Every drop and truncation is counted here and reported once at setup, so nothing is lost silently.
A mixture's report is the sum of its sources' with each source's own report beside it, the
requested weights and the rows each source gives every epoch (`planned`); what training actually
drew from each source is counted as it happens (tally.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import datasets

from sftlab.errors import SftlabError


@dataclass
class DataReport:
    split: str
    records: int  # conversations or documents read from the files
    examples: int  # after the masking strategy (e.g. `expand` makes one per assistant turn)
    kept: int
    truncated: int
    dropped: dict[str, int] = field(default_factory=dict)
    tokens: int = 0  # tokens of the kept examples, after truncation
    trainable_tokens: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)  # before truncation
    rows: int | None = None  # packed rows, when packing
    sources: dict[str, DataReport] = field(default_factory=dict)  # a mixture's sources by name
    requested: dict[str, float] = field(default_factory=dict)  # their weights, as fractions
    planned: dict[str, int] = field(default_factory=dict)  # rows each gives every epoch (map-style)

    @classmethod
    def from_tokenized(cls, split: str, records: int, tokenized: datasets.Dataset) -> DataReport:
        columns = tokenized.select_columns(["length", "truncated", "drop_reason", "trainable", "kept_tokens"]).to_dict()
        reasons = Counter(r for r in columns["drop_reason"] if r)
        kept = [not r for r in columns["drop_reason"]]
        return cls(
            split=split,
            records=records,
            examples=len(kept),
            kept=sum(kept),
            truncated=sum(t for t, k in zip(columns["truncated"], kept) if k),
            dropped=dict(reasons),
            tokens=sum(n for n, k in zip(columns["kept_tokens"], kept) if k),
            trainable_tokens=sum(n for n, k in zip(columns["trainable"], kept) if k),
            lengths=columns["length"],
        )

    @classmethod
    def combine(cls, split: str, sources: dict[str, DataReport], requested: dict[str, float], planned: dict[str, int]) -> DataReport:
        """The report of a mixture: its sources' figures summed, and each source's report kept."""
        reports = list(sources.values())
        dropped = Counter()
        for report in reports:
            dropped.update(report.dropped)
        totals = {
            key: sum(getattr(r, key) for r in reports) for key in ("records", "examples", "kept", "truncated", "tokens", "trainable_tokens")
        }
        rows = sum(r.rows if r.rows is not None else r.kept for r in reports)
        lengths = [n for r in reports for n in r.lengths]
        return cls(
            split, **totals, dropped=dict(dropped), lengths=lengths, rows=rows, sources=sources, requested=requested, planned=planned
        )

    def check_trainable(self, key: str) -> None:
        """A split with no example left is an error naming the config key, with the reasons."""
        if self.kept == 0:
            reasons = ", ".join(f"{count} {reason}" for reason, count in self.dropped.items()) or "none read"
            raise SftlabError(
                f"{key}: no example left to train on: all {self.examples} were dropped ({reasons}); "
                "see `sftlab inspect`, or raise data.max_seq_length"
            )

    @property
    def trainable_fraction(self) -> float:
        return self.trainable_tokens / self.tokens if self.tokens else 0.0

    def as_metrics(self) -> dict[str, float]:
        """Flat numbers for loggers (TensorBoard)."""
        metrics = {
            f"data/{self.split}/{k}": float(getattr(self, k))
            for k in ("records", "examples", "kept", "truncated", "tokens", "trainable_tokens")
        }
        metrics[f"data/{self.split}/trainable_fraction"] = self.trainable_fraction
        metrics.update({f"data/{self.split}/dropped/{reason}": float(n) for reason, n in self.dropped.items()})
        for name, report in self.sources.items():
            metrics.update(report.as_metrics())
            if name in self.requested:
                metrics[f"data/{self.split}/{name}/requested"] = self.requested[name]
            if self.planned:
                metrics[f"data/{self.split}/{name}/planned"] = self.planned[name] / max(sum(self.planned.values()), 1)
        return metrics

    def table(self) -> str:
        lines = [
            f"data report ({self.split})",
            f"  records read        {self.records:>10,}",
            f"  examples            {self.examples:>10,}",
            f"  kept                {self.kept:>10,}",
            f"  truncated           {self.truncated:>10,}",
        ]
        lines += [f"  dropped: {reason}  {n:,}" for reason, n in sorted(self.dropped.items())] or ["  dropped                      0"]
        lines += [
            f"  tokens              {self.tokens:>10,}",
            f"  trainable tokens    {self.trainable_tokens:>10,}  ({self.trainable_fraction:.1%})",
        ]
        if self.rows is not None:
            label = "rows" if self.sources else "packed rows"
            lines.append(f"  {label:<20}{self.rows:>10,}")
        return "\n".join(lines + self.mixture_lines())

    def mixture_lines(self) -> list[str]:
        """Per source: requested weight and planned share of an epoch's rows, examples (documents for
        text), rows (blocks, packed rows), tokens and trainable tokens."""
        if not self.sources:
            return []
        epoch = max(sum(self.planned.values()), 1)
        lines = [f"  {'source':<16} {'requested':>9} {'planned':>8} {'examples':>9} {'rows':>9} {'tokens':>12} {'trainable':>12}"]
        for name, r in self.sources.items():
            planned = f"{self.planned[name] / epoch:8.1%}" if self.planned else f"{'-':>8}"
            rows = r.rows if r.rows is not None else r.kept
            requested = f"{self.requested[name]:>9.1%}" if name in self.requested else f"{'-':>9}"
            lines.append(f"  {name:<16} {requested} {planned} {r.kept:>9,} {rows:>9,} {r.tokens:>12,} {r.trainable_tokens:>12,}")
        return lines

    def histogram(self, bins: int = 10, width: int = 40) -> str:
        """Example lengths (tokens, before truncation) as a text histogram."""
        if not self.lengths:
            return "no examples"
        low, high = min(self.lengths), max(self.lengths)
        step = max(1, -(-(high - low + 1) // bins))
        counts = Counter((n - low) // step for n in self.lengths)
        peak = max(counts.values())
        return "\n".join(
            f"  {low + b * step:>7}-{low + (b + 1) * step - 1:<7} {'#' * round(width * counts.get(b, 0) / peak):<{width}} {counts.get(b, 0)}"
            for b in range(-(-(high - low + 1) // step))
        )
