"""Batches: right padding to a multiple of `pad_to_multiple_of`, labels padded with -100, loss
weights (float32) with 0.

Unpacked rows get an `attention_mask`. Packed rows (they carry `position_ids`) get none: their
position ids, restarting at 0 per example, are what makes attention block-causal (see packing.py),
and the padding tail becomes one more segment of its own. Every batch also carries `lengths`
(real tokens per row), from which the padding fraction is logged, and `weights`: the rows' own
(weighted strategies, see tokenize.py) or, for rows without, 1 where the label is trained and 0 elsewhere;
and `prompt_mask` (bool, padded with False) where the rows have one (`data.prompt_loss_weight` > 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sftlab.data.labels.tokenize import IGNORE_INDEX


@dataclass
class Collator:
    pad_token_id: int
    pad_to_multiple_of: int = 8

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(row["input_ids"]) for row in rows)
        width = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        packed = "position_ids" in rows[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids" if packed else "attention_mask": []}
        for row in rows:
            pad = width - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * pad)
            batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * pad)
            if packed:
                batch["position_ids"].append(list(row["position_ids"]) + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * pad)
        tensors = {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
        tensors["lengths"] = torch.tensor([len(row["input_ids"]) for row in rows], dtype=torch.long)
        if "weights" in rows[0]:
            tensors["weights"] = torch.tensor(
                [list(row["weights"]) + [0.0] * (width - len(row["weights"])) for row in rows], dtype=torch.float32
            )
        else:
            tensors["weights"] = (tensors["labels"] != IGNORE_INDEX).float()
        if "prompt_mask" in rows[0]:
            tensors["prompt_mask"] = torch.tensor([list(row["prompt_mask"]) + [False] * (width - len(row["prompt_mask"])) for row in rows])
        return tensors
