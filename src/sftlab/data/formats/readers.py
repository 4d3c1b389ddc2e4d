"""Reading a source's records with its format: conversations into `datasets` rows of `Conversation`,
pretraining text into a `datasets` text dataset; and the format itself, named (`alpaca`, `sharegpt`,
`messages`, `prompt_completion`, `text`), given by `class_path`, or detected.

`format: auto` looks at the fields of the first file's records (a Parquet or Arrow file's columns, a JSON
file's first record), after `data.fields`, never at the file's suffix alone (only a `.txt` file, which has
no fields, is text by its suffix); it says what it found. A format named explicitly is checked against a
columnar file's columns before anything is read, so a missing column is an error that lists those it has.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import datasets

from sftlab.data.formats import containers
from sftlab.data.formats.alpaca import Alpaca
from sftlab.data.formats.base import ConversationFormat, DataFormat, rename, renamed_columns
from sftlab.data.formats.messages import Messages
from sftlab.data.formats.prompt_completion import PromptCompletion
from sftlab.data.formats.records import Conversation
from sftlab.data.formats.sharegpt import ShareGPT
from sftlab.data.formats.splits import DataFiles
from sftlab.data.formats.text import Text
from sftlab.errors import DataError, SftlabError

log = logging.getLogger(__name__)

FormatName = Literal["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"]
FORMATS: dict[str, type[DataFormat]] = {
    "sharegpt": ShareGPT,
    "messages": Messages,
    "prompt_completion": PromptCompletion,
    "alpaca": Alpaca,
    "text": Text,
}  # in the order `auto` tries them


def make_format(fmt: FormatName | DataFormat) -> DataFormat | None:
    """The format an argument names (None for `auto`: detected from the files)."""
    if isinstance(fmt, DataFormat):
        return fmt
    if fmt == "auto":
        return None
    if fmt not in FORMATS:
        raise SftlabError(f"data.format: unknown format {fmt!r} (built-in: auto, {', '.join(FORMATS)}; or a class_path)")
    return FORMATS[fmt]()


def detect_format(path: Path, fields: dict[str, str] | None = None) -> DataFormat:
    """The built-in format whose fields a file's records have."""
    where, found = containers.columns(path)
    columns = renamed_columns(found, fields)
    for kind in FORMATS.values():
        if kind().matches(columns):
            return kind()
    expected = ", ".join(f"{' and '.join(map(repr, kind.columns))} ({name})" for name, kind in FORMATS.items())
    raise DataError(
        where, f"cannot detect the format from the fields {sorted(columns)}: expected {expected}; set data.format or data.fields"
    )


def resolve_format(files: list[Path], fmt: FormatName | DataFormat, fields: dict[str, str] | None = None) -> DataFormat:
    """The format of a source's files: `fmt`, checked against the columns of columnar files, or detected."""
    chosen = make_format(fmt)
    if chosen is None:
        chosen = detect_format(files[0], fields)
        log.info("data format: detected %r from %s", chosen.name, files[0])
    for path in files:
        if containers.kind(path) in ("parquet", "arrow"):
            columns = renamed_columns(containers.columns(path)[1], fields)
            if missing := [column for column in chosen.columns if column not in columns]:
                raise DataError(
                    str(path),
                    f"no column {missing[0]!r} for format {chosen.name or type(chosen).__name__} (its columns: {', '.join(columns)}); "
                    "map yours with data.fields, e.g. {" + f"{missing[0]}: NAME" + "}",
                )
    return chosen


def read_record(record: Any, where: str, fmt: ConversationFormat, fields: dict[str, str] | None = None) -> Conversation:
    """One record as a validated conversation; a DataError names the record and field."""
    if not isinstance(record, dict):
        raise DataError(where, f"a record must be a JSON object, got {type(record).__name__}")
    return fmt.read(rename(record, fields), where).validate()


def bad_row(where: str, error: str) -> dict[str, Any]:
    """The row standing for a record skipped with `data.bad_records: skip` (same columns as a good one,
    so the dataset keeps one schema; tokenization counts it as dropped, reason `bad_record`)."""
    message = {"role": "user", "content": "", "input": "", "reasoning": "", "tool_call_id": "", "name": "", "tool_calls": []}
    return {"messages": [message], "tools": "", "source": where, "weight": 1.0, "completion_start": 0, "error": error}


def code_fingerprint() -> str:
    """A hash of the data package's source: part of every cache key, so upgrading sftlab never reuses
    records or tokens made by other code (a stale cache once lacked a column the new code reads)."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parents[1].rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def iter_conversations(
    files: list[tuple[str, int, int, int, int | None]],
    fmt: ConversationFormat,
    fields: dict[str, str] | None = None,
    skip_bad: bool = False,
    code: str = "",
) -> Iterator[dict[str, Any]]:
    """Validated conversation rows of every `(path, size, mtime, start, stop)` file's records `start` to
    `stop` (a generator for `Dataset.from_generator`, whose cache key hashes these arguments). A bad
    record is an error, or with `skip_bad` a `bad_row` (logged)."""
    for path, _size, _mtime, start, stop in files:
        for where, record in containers.records(Path(path), start, stop):
            try:
                yield read_record(record, where, fmt, fields).to_row()
            except DataError as err:
                if not skip_bad:
                    raise
                log.warning("skipped (data.bad_records: skip): %s", err)
                yield bad_row(where, str(err))


def file_names_and_sizes(files: list[Path]) -> list[tuple[str, int]]:
    """What identifies a dataset across machines (not paths or modification times, which a copy changes)."""
    return [(p.name, p.stat().st_size) for p in files]


def file_stamps(data: DataFiles) -> list[tuple[str, int, int, int, int | None]]:
    """(path, size, modification time, first row, end row) of each file: what identifies the rows read in cache keys."""
    return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns, start, stop) for p, start, stop in data.rows()]


def load_conversations(
    data: DataFiles, fmt: ConversationFormat, fields: dict[str, str] | None = None, cache_dir: str | None = None, skip_bad: bool = False
) -> datasets.Dataset:
    """Read conversation records into a disk-backed `datasets.Dataset` of `Conversation` rows.

    The files' sizes, modification times and row ranges are part of the generator's arguments, so the
    cache is reused exactly while the rows read stay the same."""
    stamps = file_stamps(data)
    try:
        return datasets.Dataset.from_generator(
            iter_conversations,
            gen_kwargs={"files": stamps, "fmt": fmt, "fields": fields, "skip_bad": skip_bad, "code": code_fingerprint()},
            cache_dir=cache_dir,
        )
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, SftlabError):  # our own message, unwrapped from datasets' wrapper
            raise err.__cause__ from None
        raise


def load_text(
    data: DataFiles, fields: dict[str, str] | None = None, streaming: bool = False, cache_dir: str | None = None
) -> datasets.Dataset | datasets.IterableDataset:
    """Raw documents as a dataset with one `text` column, through `datasets`' own builders (streaming
    for corpora that do not fit in memory); `fields` may name the text's field (`{text: content}`)."""
    files = list(data.files)
    builders = {containers.kind(p) for p in files}
    if len(builders) != 1:
        raise DataError(
            str(files[0].parent),
            f"text data must be of one kind (.txt, .json/.jsonl, .parquet or .arrow), got {sorted({p.suffix for p in files})}",
        )
    builder = builders.pop()
    column = "text" if builder == "text" else (fields or {}).get("text", "text")  # a .txt line is the text
    if streaming and data.slice:
        raise DataError(str(files[0]), f"a streamed text corpus cannot be sliced ({data.slice}): give the files to read")
    try:
        dataset = datasets.load_dataset(
            builder, data_files=[str(p) for p in files], split=f"train{data.slice}", streaming=streaming, cache_dir=cache_dir
        )
    except datasets.exceptions.DatasetGenerationError as err:
        if builder == "json":  # find the first bad line for a message that names it
            for path in files:
                for _ in containers.records(path):
                    pass
        raise DataError(str(files[0]), f"cannot read the text data: {err.__cause__ or err}") from None
    # A stream's builder may not know its columns before reading (the text builder's never does): the first record tells.
    columns = dataset.column_names or list(dataset.features or {}) or list(next(iter(dataset.take(1)), {}))
    if column not in columns:
        raise DataError(
            str(files[0]), f"missing field {column!r} (fields: {columns}); map the text's field with data.fields: {{text: NAME}}"
        )
    return dataset.select_columns([column]).rename_column(column, "text") if column != "text" else dataset.select_columns(["text"])
