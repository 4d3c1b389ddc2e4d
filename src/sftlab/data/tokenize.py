"""Rendered text + trained spans -> `input_ids` and `labels` (-100 = not trained).

Pure batch functions for `datasets.map`. Text is tokenized once, with `add_special_tokens=False`
(the template already wrote BOS and friends: no double BOS), and offset mappings turn character
spans into token labels: a token is trained when its characters overlap a trained span, so a token
that straddles a boundary (" Hello" right after `[/INST]`) is trained.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from sftlab.data.masking import MaskingStrategy
from sftlab.data.records import Conversation
from sftlab.data.templates import Renderer, Span
from sftlab.errors import SftlabError

IGNORE_INDEX = -100

log = logging.getLogger(__name__)

DROP_NO_TRAINABLE = "no trainable token within max_seq_length"
DROP_BAD_RECORD = "bad record (skipped)"


def token_labels(input_ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[int]:
    """Labels for one tokenized text: the token id where the token overlaps a span, else -100.
    Vectorised (a binary search per token), as it runs on every token of every example."""
    if not spans or not input_ids:
        return [IGNORE_INDEX] * len(input_ids)
    span_array = np.array(sorted(spans), dtype=np.int64)
    offset_array = np.asarray(offsets, dtype=np.int64)
    starts, ends = offset_array[:, 0], np.maximum(offset_array[:, 1], offset_array[:, 0] + 1)
    candidate = np.searchsorted(span_array[:, 1], starts, side="right")  # first span ending after the token starts
    inside = candidate < len(span_array)
    trained = inside & (span_array[np.minimum(candidate, len(span_array) - 1), 0] < ends)
    return np.where(trained, np.asarray(input_ids, dtype=np.int64), IGNORE_INDEX).tolist()


def trainable_count(labels: Sequence[int]) -> int:
    """Labels that produce a loss: the first position is never predicted (labels shift by one)."""
    return len(labels) - 1 - labels[1:].count(IGNORE_INDEX) if labels else 0


def _rows(batch: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(batch, values)) for values in zip(*batch.values())]


def tokenize_conversations(
    batch: dict[str, list[Any]],
    *,
    renderer: Renderer,
    strategy: MaskingStrategy,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    skip_bad: bool = False,
) -> dict[str, list[Any]]:
    """A batch of conversation rows -> one row per example, truncated to `max_seq_length`, with
    bookkeeping columns: `length` (before truncation), `kept_tokens`, `trainable` (tokens with a
    loss), `truncated`, `drop_reason` ('' = kept) and `source` (file and record). Rows of records
    skipped when read, and (with `skip_bad`) records the template refuses, are dropped as `bad_record`."""
    texts, spans, sources, reasons = [], [], [], []
    for row in _rows(batch):
        if row.get("error"):
            texts.append(""), spans.append(()), sources.append(row["source"]), reasons.append(DROP_BAD_RECORD)
            continue
        try:
            rendered_examples = [(example, renderer.render(example)) for example in strategy.examples(Conversation.from_row(row))]
        except SftlabError as err:  # DataError / TemplateError naming the record
            if not skip_bad:
                raise
            log.warning("skipped (data.bad_records: skip): %s", err)
            texts.append(""), spans.append(()), sources.append(row["source"]), reasons.append(DROP_BAD_RECORD)
            continue
        for example, rendered in rendered_examples:
            texts.append(rendered.text)
            spans.append(strategy.trained_spans(rendered))
            sources.append(example.source)
            reasons.append("")
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out: dict[str, list[Any]] = {
        key: [] for key in ("input_ids", "labels", "length", "kept_tokens", "trainable", "truncated", "drop_reason")
    }
    out["source"] = sources
    for ids, offsets, example_spans, reason in zip(encoded["input_ids"], encoded["offset_mapping"], spans, reasons):
        labels = token_labels(ids, offsets, example_spans)
        kept_ids, kept_labels = ids[:max_seq_length], labels[:max_seq_length]
        out["input_ids"].append(kept_ids)
        out["labels"].append(kept_labels)
        trainable = trainable_count(kept_labels)
        out["length"].append(len(ids))
        out["kept_tokens"].append(len(kept_ids))
        out["trainable"].append(trainable)
        out["truncated"].append(len(ids) > max_seq_length)
        out["drop_reason"].append(reason or ("" if trainable else DROP_NO_TRAINABLE))
    return out


def tokenize_documents(batch: dict[str, list[str]], *, tokenizer: PreTrainedTokenizerBase) -> dict[str, list[list[int]]]:
    """Raw documents -> token ids, each ending with eos (so the model learns where documents end)."""
    encoded = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
    return {"input_ids": [ids + [tokenizer.eos_token_id] for ids in encoded]}
