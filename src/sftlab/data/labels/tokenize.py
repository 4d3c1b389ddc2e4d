"""Rendered text + weighted spans -> `input_ids`, `labels` (-100 = not trained) and `weights`.

Pure batch functions for `datasets.map`. Text is tokenized once, with `add_special_tokens=False`
(the template already wrote BOS and friends: no double BOS), and offset mappings turn character
spans into token labels: a token is trained when its characters overlap a trained span, so a token
that straddles a boundary (" Hello" right after `[/INST]`) is trained. Where the data itself holds a
special token's text (`Rendered.literal_spans`), the text between the template's own special tokens is
tokenized with `split_special_tokens`, so `<|im_end|>` typed by a user stays text.

The `weights` contract: a float per token beside `labels`, aligned with it (position t weighs the
loss of predicting `labels[t]`); 0 exactly where the label is -100, else the weight of the span the
token overlaps times the record's `weight`. The column exists only when the strategy is weighted or
the data has record weights (`weighted=True`); batches without it get weights = (labels != -100).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from sftlab.data.formats.records import Conversation
from sftlab.data.labels.masking import MaskingStrategy, WeightedSpan
from sftlab.data.rendering.spans import Span
from sftlab.data.rendering.templates import Rendered, Renderer
from sftlab.errors import SftlabError

IGNORE_INDEX = -100

log = logging.getLogger(__name__)

DROP_NO_TRAINABLE = "no trainable token within max_seq_length"
DROP_BAD_RECORD = "bad record (skipped)"
DROP_BLANK_DOCUMENT = "blank document"

Encoding = tuple[list[int], list[tuple[int, int]]]


def token_weights(offsets: Sequence[tuple[int, int]], spans: Sequence[WeightedSpan]) -> np.ndarray:
    """The weight of each token: that of the first span it overlaps, else 0. Vectorised (a binary
    search per token), as it runs on every token of every example."""
    weights = np.zeros(len(offsets), dtype=np.float32)
    spans = sorted((span, weight) for span, weight in spans if weight > 0 and span[1] > span[0])
    if not spans or not len(offsets):
        return weights
    span_array = np.array([span for span, _ in spans], dtype=np.int64)
    span_weights = np.array([weight for _, weight in spans], dtype=np.float32)
    offset_array = np.asarray(offsets, dtype=np.int64)
    starts, ends = offset_array[:, 0], np.maximum(offset_array[:, 1], offset_array[:, 0] + 1)
    candidate = np.minimum(
        np.searchsorted(span_array[:, 1], starts, side="right"), len(span_array) - 1
    )  # first span ending after the start
    trained = (span_array[candidate, 1] > starts) & (span_array[candidate, 0] < ends)
    return np.where(trained, span_weights[candidate], np.float32(0))


def token_labels(input_ids: Sequence[int], offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[int]:
    """Labels for one tokenized text: the token id where the token overlaps a span, else -100."""
    weights = token_weights(offsets, [(span, 1.0) for span in spans])
    return np.where(weights > 0, np.asarray(input_ids, dtype=np.int64), IGNORE_INDEX).tolist()


def trainable_count(labels: Sequence[int]) -> int:
    """Labels that produce a loss: the first position is never predicted (labels shift by one)."""
    return len(labels) - 1 - labels[1:].count(IGNORE_INDEX) if labels else 0


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], literal_spans: Sequence[Sequence[Span]]) -> list[Encoding]:
    """Token ids and character offsets of each text, in one batched call; texts with literal spans
    get their special-token text tokenized as text (`encode_literals`)."""
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    pairs = list(zip(encoded["input_ids"], encoded["offset_mapping"]))
    return [encode_literals(tokenizer, text, pair, spans) if spans else pair for text, pair, spans in zip(texts, pairs, literal_spans)]


def encode_literals(tokenizer: PreTrainedTokenizerBase, text: str, encoding: Encoding, literal: Sequence[Span]) -> Encoding:
    """`encoding` of `text` with every stretch between two of the template's own special tokens that
    holds a literal span tokenized again with `split_special_tokens` (what that stretch is: text)."""
    special = set(tokenizer.all_special_ids) | {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    ids, offsets = encoding
    is_literal = [any(start < b and a < end for a, b in literal) for start, end in offsets]
    own = [i for i, token in enumerate(ids) if token in special and not is_literal[i]]
    out_ids, out_offsets = [], []
    for low, high in zip([-1, *own], [*own, len(ids)]):
        stretch = range(low + 1, high)
        if any(is_literal[i] for i in stretch):
            begin = offsets[low][1] if low >= 0 else 0
            again_ids, again_offsets = as_text(
                tokenizer, text[begin : offsets[high][0] if high < len(ids) else len(text)], mid_text=low >= 0
            )
            out_ids += again_ids
            out_offsets += [(a + begin, b + begin) for a, b in again_offsets]
        else:
            out_ids += [ids[i] for i in stretch]
            out_offsets += [offsets[i] for i in stretch]
        if high < len(ids):
            out_ids.append(ids[high])
            out_offsets.append(offsets[high])
    return out_ids, out_offsets


def as_text(tokenizer: PreTrainedTokenizerBase, text: str, mid_text: bool) -> Encoding:
    """`text` tokenized with special-token text as plain text. `mid_text`: it follows other text, so no
    start-of-input mark (SentencePiece-style tokenizers write `▁` before their input's first word: the
    text is then tokenized after a newline, whose tokens are dropped)."""
    context = tokenizer.all_special_tokens[0] if tokenizer.all_special_tokens else ""
    marks_start = (
        bool(context)
        and tokenizer(context + "a", add_special_tokens=False)["input_ids"][1:] != tokenizer("a", add_special_tokens=False)["input_ids"]
    )
    if mid_text and marks_start:
        encoded = tokenizer("\n" + text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
        pairs = list(zip(encoded["input_ids"], encoded["offset_mapping"]))
        if any(start == 1 for _, (start, _) in pairs) and all(end <= 1 or start >= 1 for _, (start, end) in pairs):
            kept = [(token, (start - 1, end - 1)) for token, (start, end) in pairs if start >= 1]
            return [token for token, _ in kept], [span for _, span in kept]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
    return encoded["input_ids"], encoded["offset_mapping"]


def _rows(batch: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(batch, values)) for values in zip(*batch.values())]


def _render_row(
    row: dict[str, Any], renderer: Renderer, strategy: MaskingStrategy, skip_bad: bool
) -> list[tuple[Conversation, Rendered]] | None:
    """The rendered examples of one record, or None for a record skipped as bad."""
    if row.get("error"):
        return None
    try:
        return [(example, completion_turns(renderer.render(example), example)) for example in strategy.examples(Conversation.from_row(row))]
    except SftlabError as err:  # DataError / TemplateError naming the record
        if not skip_bad:
            raise
        log.warning("skipped (data.bad_records: skip): %s", err)
        return None


def completion_turns(rendered: Rendered, example: Conversation) -> Rendered:
    """`rendered` with only the assistant turns that may be trained: those of a prompt-completion record's
    completion (its prompt's assistant messages are context for every strategy)."""
    if not example.completion_start:
        return rendered
    return replace(rendered, turns=tuple(turn for turn in rendered.turns if turn.message >= example.completion_start))


def example_spans(strategy: MaskingStrategy, rendered: Rendered, example: Conversation, weighted: bool) -> list[WeightedSpan]:
    """The strategy's weighted spans scaled by the record's weight; an unweighted run refuses weights
    other than 1 (they would be lost)."""
    spans = [(span, weight * example.weight) for span, weight in strategy.weighted_spans(rendered)]
    if not weighted and any(weight != 1.0 for _, weight in spans):
        raise SftlabError(
            f"{example.source}: data.masking {strategy!r} returned loss weights other than 1 but does not set `weighted = True`"
        )
    return spans


def tokenize_conversations(
    batch: dict[str, list[Any]],
    *,
    renderer: Renderer,
    strategy: MaskingStrategy,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    skip_bad: bool = False,
    weighted: bool = False,
) -> dict[str, list[Any]]:
    """A batch of conversation rows -> one row per example, truncated to `max_seq_length`, with
    bookkeeping columns: `length` (before truncation), `kept_tokens`, `trainable` (tokens with a
    loss), `truncated`, `drop_reason` ('' = kept) and `source` (file and record), plus `weights` when
    `weighted`. Rows of records skipped when read, and (with `skip_bad`) records the template refuses,
    are dropped as `bad_record`."""
    texts, spans, literals, sources, reasons = [], [], [], [], []
    for row in _rows(batch):
        rendered_examples = _render_row(row, renderer, strategy, skip_bad)
        for example, rendered in rendered_examples or [(None, Rendered("", ()))]:
            texts.append(rendered.text)
            spans.append(example_spans(strategy, rendered, example, weighted) if example else [])
            literals.append(rendered.literal_spans)
            sources.append(example.source if example else row["source"])
            reasons.append("" if example else DROP_BAD_RECORD)
    columns = ("input_ids", "labels", "length", "kept_tokens", "trainable", "truncated", "drop_reason", *(("weights",) if weighted else ()))
    out: dict[str, list[Any]] = {key: [] for key in columns}
    out["source"] = sources
    for encoding, weighted_spans, reason in zip(encode(tokenizer, texts, literals), spans, reasons):
        ids, labels, weights = example_tokens(encoding, weighted_spans, max_seq_length)
        trainable = trainable_count(labels)
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        if weighted:
            out["weights"].append(weights)
        out["length"].append(len(encoding[0]))
        out["kept_tokens"].append(len(ids))
        out["trainable"].append(trainable)
        out["truncated"].append(len(encoding[0]) > max_seq_length)
        out["drop_reason"].append(reason or ("" if trainable else DROP_NO_TRAINABLE))
    return out


def example_tokens(encoding: Encoding, spans: Sequence[WeightedSpan], max_seq_length: int) -> tuple[list[int], list[int], list[float]]:
    """`input_ids`, `labels` and `weights` of one example, truncated to `max_seq_length`."""
    ids, offsets = encoding
    weights = token_weights(offsets[:max_seq_length], spans)
    kept = ids[:max_seq_length]
    labels = np.where(weights > 0, np.asarray(kept, dtype=np.int64), IGNORE_INDEX).tolist()
    return kept, labels, weights.tolist()


def tokenize_documents(batch: dict[str, list[str]], *, tokenizer: PreTrainedTokenizerBase) -> dict[str, list[list[int]]]:
    """Raw documents -> token ids, each ending with eos (so the model learns where documents end).
    Blank documents (a whitespace-only line of a .txt corpus) are left out: they hold no text and would
    become a lone eos; the data report counts them (`blank document`)."""
    documents = [text for text in batch["text"] if text and text.strip()]
    encoded = tokenizer(documents, add_special_tokens=False)["input_ids"] if documents else []
    return {"input_ids": [ids + [tokenizer.eos_token_id] for ids in encoded]}
