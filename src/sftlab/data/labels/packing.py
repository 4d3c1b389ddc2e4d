"""Packing: pretraining blocks and SFT bins, as batch functions for `datasets.map`.

Packed rows carry `position_ids` that restart at 0 for every example. With no attention mask and
`use_cache=False`, transformers 5 builds a block-causal mask from such position ids for SDPA and
eager attention, so packed examples never attend to each other (tests/data/labels/test_packing.py proves it
on logits). Layers that are no attention need the examples' boundaries instead: sftlab.model.packing
measures on the model which way keeps its examples apart, or refuses packing.
"""

from __future__ import annotations

from typing import Any

from sftlab.data.labels.tokenize import IGNORE_INDEX


def chunk_documents(batch: dict[str, list[list[int]]], *, block_size: int, reset_position_ids: bool = False) -> dict[str, list[Any]]:
    """Concatenate documents and cut blocks of `block_size` tokens (labels = input_ids). The last,
    shorter block is kept, not dropped. With `reset_position_ids`, positions restart at each
    document start (documents split across blocks continue their positions from 0 in the new block)."""
    ids = [token for doc in batch["input_ids"] for token in doc]
    positions = [p for doc in batch["input_ids"] for p in range(len(doc))] if reset_position_ids else None
    out: dict[str, list[Any]] = {"input_ids": [], "labels": []}
    if reset_position_ids:
        out["position_ids"] = []
    for start in range(0, len(ids), block_size):
        block = ids[start : start + block_size]
        out["input_ids"].append(block)
        out["labels"].append(list(block))
        if positions is not None:
            block_positions = positions[start : start + block_size]
            offset = block_positions[0]  # a document cut by the block boundary restarts at 0 here
            first_reset = next((i for i, p in enumerate(block_positions) if p == 0), len(block_positions))
            out["position_ids"].append([p - offset for p in block_positions[:first_reset]] + block_positions[first_reset:])
    return out


def pack_examples(batch: dict[str, list[list[int]]], *, max_seq_length: int) -> dict[str, list[Any]]:
    """Bin-pack tokenized SFT examples into rows of at most `max_seq_length` tokens
    (first-fit decreasing within the batch). Each example keeps its own positions (restarting at
    0), and its first label becomes -100 (weight 0): it would otherwise be predicted from the previous
    example. `weights` and `prompt_mask`, where the examples have them, are concatenated the same way."""
    order = sorted(range(len(batch["input_ids"])), key=lambda i: -len(batch["input_ids"][i]))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        size = len(batch["input_ids"][i])
        slot = next((b for b, free in enumerate(room) if free >= size), None)
        if slot is None:
            bins.append([i])
            room.append(max_seq_length - size)
        else:
            bins[slot].append(i)
            room[slot] -= size
    beside = {key: first for key, first in (("weights", 0.0), ("prompt_mask", False)) if key in batch}  # and their first value
    columns = ("input_ids", "labels", "position_ids", *beside)
    out: dict[str, list[Any]] = {key: [] for key in (*columns, "examples")}
    for members in bins:
        row: dict[str, list[Any]] = {key: [] for key in columns}
        for i in members:
            row["input_ids"] += batch["input_ids"][i]
            row["labels"] += [IGNORE_INDEX] + list(batch["labels"][i][1:])
            row["position_ids"] += range(len(batch["input_ids"][i]))
            for key, first in beside.items():
                row[key] += [first] + list(batch[key][i][1:])
        for key in columns:
            out[key].append(row[key])
        out["examples"].append(len(members))
    return out
