"""The data report: what was read, kept, truncated and dropped (by reason), and how much trains.

Every drop and truncation is counted here and reported once at setup, so nothing is lost silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import datasets


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
            lines.append(f"  packed rows         {self.rows:>10,}")
        return "\n".join(lines)

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
