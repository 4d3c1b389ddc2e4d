"""Records from every file kind `datasets` reads and writes: JSON / JSON Lines (parsed by hand, see
files.py), Parquet, and Arrow (the IPC stream files of a `save_to_disk` folder, or IPC files).

Columnar files are read a batch at a time (`RECORDS_PER_BATCH` rows), so a large Parquet set is never
held in Python objects whole; a record is named `file.parquet row 12` in errors. Arrow's struct columns
hold every key any record has, a missing one as null: null values are dropped from columnar records, so
a record reads the same from Parquet as from the JSON it came from (`{"weight": null}` means no weight).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sftlab.data.formats.files import read_json_records
from sftlab.errors import DataError

KINDS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow", ".txt": "text"}
RECORDS_PER_BATCH = 1000


def kind(path: Path) -> str:
    """`json`, `parquet`, `arrow` or `text`: the `datasets` builder that reads the file."""
    if path.suffix not in KINDS:
        raise DataError(str(path), f"not a data file sftlab reads ({', '.join(KINDS)})")
    return KINDS[path.suffix]


def without_nulls(value: Any) -> Any:
    """`value` with null-valued keys of its objects left out, at every depth."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def _arrow_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow file, IPC stream (what `datasets` writes) or IPC file format."""
    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        try:
            file = pa.ipc.open_file(source)
        except pa.ArrowInvalid as err:
            raise DataError(str(path), f"not an Arrow file: {err}") from None
        yield from (file.get_batch(i) for i in range(file.num_record_batches))
        return
    yield from reader


def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(str(path), f"not a Parquet file: {err}") from None


def columns(path: Path) -> tuple[str, list[str]]:
    """What the fields of a file's records are read from (the file, or its first record) and the fields: a
    columnar file's schema, or a JSON file's first record's keys."""
    if kind(path) == "parquet":
        return str(path), _parquet(path).schema_arrow.names
    if kind(path) == "arrow":
        first = next(_arrow_batches(path), None)
        return str(path), first.schema.names if first is not None else []
    if kind(path) == "text":
        return str(path), ["text"]
    first = next(read_json_records(path), None)
    if first is None:
        raise DataError(str(path), "the file holds no records (an empty JSON list)")
    where, record = first
    if not isinstance(record, dict):
        raise DataError(where, f"a record must be a JSON object, got {type(record).__name__}")
    return where, list(record)


def count(path: Path) -> int:
    """How many records a file holds (Parquet: from its footer; Arrow: its batches' lengths)."""
    if kind(path) == "parquet":
        return _parquet(path).metadata.num_rows
    if kind(path) == "arrow":
        return sum(batch.num_rows for batch in _arrow_batches(path))
    return sum(1 for _ in read_json_records(path))


def records(path: Path, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, Any]]:
    """`(where, record)` for records `start` to `stop` of a JSON, Parquet or Arrow file."""
    if kind(path) == "json":
        for index, item in enumerate(read_json_records(path)):
            if stop is not None and index >= stop:
                return
            if index >= start:
                yield item
        return
    batches = _parquet(path).iter_batches(batch_size=RECORDS_PER_BATCH) if kind(path) == "parquet" else _arrow_batches(path)
    offset = 0
    for batch in batches:
        begin, end = max(start - offset, 0), batch.num_rows if stop is None else min(stop - offset, batch.num_rows)
        if begin < end:
            for index, record in enumerate(batch.slice(begin, end - begin).to_pylist(), start=offset + begin):
                yield f"{path} row {index}", without_nulls(record)
        offset += batch.num_rows
        if stop is not None and offset >= stop:
            return
