"""One source's rows, as batches will draw them: files -> records -> tokens + labels -> (packed) rows.

`open_source` is the one way a source is made ready to read (its files, its format, its renderer), for
training and for `sftlab inspect` alike; `source_rows` builds its rows, `source_conversations` its records.

Pure functions over `datasets`: map-style datasets are tokenized once and cached under a key of
everything that shapes them (input files, tokenizer, template, strategy, length, the code of this
package's data modules), so a second run does not tokenize again; streams are the same functions
applied lazily, row by row, by whichever process reads them (DataLoader workers: in parallel).
Pretraining text is cut into blocks 1,000 documents at a time, so a stream holds at most that much
text besides the block it is cutting (`chunk_documents`: at most one shorter block per 1,000 documents).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import datasets
import pyarrow.compute as pc
from transformers import PreTrainedTokenizerBase

from sftlab.data.formats import readers
from sftlab.data.formats.base import ConversationFormat, DataFormat
from sftlab.data.formats.splits import DataFiles, data_files
from sftlab.data.formats.text import Text
from sftlab.data.labels.masking import MaskingStrategy
from sftlab.data.labels.packing import chunk_documents, pack_examples
from sftlab.data.labels.tokenize import DROP_BLANK_DOCUMENT, tokenize_conversations, tokenize_documents
from sftlab.data.rendering.templates import Renderer
from sftlab.data.sources.report import DataReport
from sftlab.data.sources.specs import Source
from sftlab.errors import DataError, SftlabError

DOCUMENTS_PER_CHUNK = 1000


@dataclass(frozen=True)
class Shape:
    """The `data.*` settings every source shares: how rows are cut, read and cached (and, once it is
    loaded, the `tokenizer`: `with_tokenizer`)."""

    max_seq_length: int
    packing: bool = False
    reset_position_ids: bool = False
    skip_bad: bool = False
    fold_system_prompt: bool | None = None
    num_proc: int | None = None
    cache_dir: str | None = None
    streaming: bool = False
    max_files: int | None = None
    tokenizer: PreTrainedTokenizerBase | None = None

    def __post_init__(self) -> None:
        for name, value, least in (("max_seq_length", self.max_seq_length, 2), ("num_proc", self.num_proc or 1, 1)):
            if value < least:
                raise SftlabError(f"data.{name} must be at least {least}, got {value}")

    def with_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> Shape:
        return replace(self, tokenizer=tokenizer)


@dataclass(frozen=True)
class OpenSource:
    """A source ready to read: its `files` (and rows), its `format`, and for conversations its `renderer`."""

    source: Source
    files: DataFiles
    format: DataFormat
    renderer: Renderer | None

    @property
    def pretraining(self) -> bool:
        return isinstance(self.format, Text)


def open_source(source: Source, shape: Shape, renderer: Callable[[str], Renderer]) -> OpenSource:
    """Find a source's files (a Hub data set through the cache), resolve its format and its template's
    renderer (`renderer(template)`); the one way training and `sftlab inspect` read a source."""
    files = data_files(source.path, source.split, source.subset, source.revision, shape.max_files, source.key)
    fmt = readers.resolve_format(list(files.files), source.format, source.fields)
    if not isinstance(fmt, (ConversationFormat, Text)):
        raise SftlabError(f"{source.key}: the format {fmt!r} is neither a ConversationFormat nor Text")
    return OpenSource(source, files, fmt, None if isinstance(fmt, Text) else renderer(source.template))


class Rows(NamedTuple):
    """A source's rows, its report (none for a stream: nothing is read ahead) and the rows' columns."""

    data: datasets.Dataset | datasets.IterableDataset
    report: DataReport | None
    columns: list[str]


def cache_key(tokenizer: PreTrainedTokenizerBase, *parts: object) -> str:
    """A tokenized dataset's cache key: sftlab's data code, the tokenizer and `parts`."""
    digest = hashlib.sha256()
    for part in (readers.code_fingerprint(), tokenizer.backend_tokenizer.to_str(), str(tokenizer.special_tokens_map), *parts):
        digest.update(str(part).encode())
    return digest.hexdigest()[:32]


def row_lengths(dataset: datasets.Dataset) -> list[int]:
    """Tokens of every row, read column-wise from Arrow (no Python lists of token ids)."""
    batches = dataset.select_columns(["input_ids"]).with_format("arrow").iter(batch_size=10_000)
    return [n for batch in batches for n in pc.list_value_length(batch["input_ids"]).to_pylist()]


def source_rows(opened: OpenSource, shape: Shape, pack: bool = True, desc: str = "") -> Rows:
    """A source's rows: pretraining blocks, or SFT examples (packed when `shape.packing` and `pack`)."""
    if opened.pretraining:
        return text_blocks(opened.files, opened.source.fields, shape, desc)
    if shape.streaming:
        return sft_stream(opened, shape, pack)
    examples, report = sft_examples(opened, shape, desc)
    if not (pack and shape.packing):
        return Rows(examples, report, examples.column_names)
    rows = examples.map(
        packing_function(shape), batched=True, batch_size=1000, remove_columns=examples.column_names, desc=f"packing {desc}"
    )
    report.rows = len(rows)
    return Rows(rows, report, rows.column_names)


def source_conversations(opened: OpenSource, shape: Shape) -> datasets.Dataset:
    """A conversation source's validated records (cached; what tokenization and `sftlab inspect` read)."""
    return readers.load_conversations(opened.files, opened.format, opened.source.fields, shape.cache_dir, shape.skip_bad)


def packing_function(shape: Shape) -> partial:
    return partial(pack_examples, max_seq_length=shape.max_seq_length)


def sft_examples(opened: OpenSource, shape: Shape, desc: str = "") -> tuple[datasets.Dataset, DataReport]:
    """Tokenized, truncated conversations (cached), without those that train nothing, and the report."""
    records, strategy = source_conversations(opened, shape), opened.source.masking
    # A float `weights` column only where weights can differ from the labels' 0/1 (memory).
    weighted = strategy.weighted or any(weight != 1.0 for weight in records["weight"])
    key = (readers.file_stamps(opened.files), repr(opened.format), opened.source.fields, opened.renderer.template, repr(strategy))
    tokenized = records.map(
        conversation_function(opened.renderer, strategy, shape, weighted),
        batched=True,
        remove_columns=records.column_names,
        num_proc=shape.num_proc,
        new_fingerprint=cache_key(shape.tokenizer, *key, shape.max_seq_length, shape.fold_system_prompt, shape.skip_bad, weighted),
        desc=f"tokenizing {desc}",
    )
    report = DataReport.from_tokenized(desc, len(records), tokenized)
    kept = tokenized.filter(lambda reason: not reason, input_columns="drop_reason", desc=f"dropping untrainable {desc} examples")
    return kept.select_columns(["input_ids", "labels", *(["weights"] if weighted else []), "source"]), report


def conversation_function(renderer: Renderer, strategy: MaskingStrategy, shape: Shape, weighted: bool) -> partial:
    return partial(
        tokenize_conversations,
        renderer=renderer,
        strategy=strategy,
        tokenizer=shape.tokenizer,
        max_seq_length=shape.max_seq_length,
        skip_bad=shape.skip_bad,
        weighted=weighted,
    )


def sft_stream(opened: OpenSource, shape: Shape, pack: bool) -> Rows:
    """A stream of tokenized conversations (one shard per file). Rows always carry `weights`: whether
    records have weights other than 1 is not known before reading them all."""
    settings = {"fmt": opened.format, "fields": opened.source.fields, "skip_bad": shape.skip_bad}
    records = datasets.IterableDataset.from_generator(
        readers.iter_conversations, gen_kwargs={"files": readers.file_stamps(opened.files), **settings}
    )
    tokenized = records.map(
        conversation_function(opened.renderer, opened.source.masking, shape, weighted=True),
        batched=True,
        remove_columns=list(readers.bad_row("", "")),
    )
    columns = ["input_ids", "labels", "weights"]
    examples = tokenized.filter(lambda reason: not reason, input_columns="drop_reason").select_columns(columns)
    if not (pack and shape.packing):
        return Rows(examples, None, columns)
    packed = examples.map(packing_function(shape), batched=True, batch_size=1000, remove_columns=columns)
    columns = ["input_ids", "labels", "position_ids", "weights"]
    return Rows(packed.select_columns(columns), None, columns)


def text_blocks(files: DataFiles, fields: dict[str, str] | None, shape: Shape, desc: str = "") -> Rows:
    """Pretraining blocks of `max_seq_length` tokens (labels = input_ids)."""
    documents = readers.load_text(files, fields, shape.streaming, shape.cache_dir)
    extra = {} if shape.streaming else {"num_proc": shape.num_proc, "desc": f"tokenizing {desc} documents"}
    tokenized = documents.map(partial(tokenize_documents, tokenizer=shape.tokenizer), batched=True, remove_columns=["text"], **extra)
    if not shape.streaming and not len(tokenized):
        blank = "lines" if files.files[0].suffix == ".txt" else f"{(fields or {}).get('text', 'text')!r} fields"
        raise DataError(", ".join(map(str, files.files)), f"no documents: all {len(documents)} {blank} are blank")
    chunk = partial(chunk_documents, block_size=shape.max_seq_length, reset_position_ids=shape.reset_position_ids)
    blocks = tokenized.map(chunk, batched=True, batch_size=DOCUMENTS_PER_CHUNK, remove_columns=["input_ids"], **extra)
    if shape.streaming:
        columns = ["input_ids", "labels", *(["position_ids"] if shape.reset_position_ids else [])]
        return Rows(blocks.select_columns(columns), None, columns)
    lengths = row_lengths(tokenized)
    blank = len(documents) - len(tokenized)
    report = DataReport(
        desc,
        len(documents),
        len(documents),
        len(tokenized),
        0,
        dropped={DROP_BLANK_DOCUMENT: blank} if blank else {},
        tokens=sum(lengths),
        trainable_tokens=sum(lengths),
        lengths=lengths,
        rows=len(blocks),
    )
    return Rows(blocks, report, blocks.column_names)
