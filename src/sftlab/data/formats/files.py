"""Finding data files (a file or a glob) and reading JSON / JSON Lines records with errors that name
the file and line.

Why by hand for conversations: Arrow's JSON reader (behind `datasets`' "json" builder) reports a
malformed line or a field whose type differs between records as a schema error with no line number,
and it cannot hold ShareGPT/messages records whose nested fields change type from record to record.
Conversation files are small next to pretraining corpora, so we parse them with `json` and hand the
validated records to `datasets` (see `readers.py`); raw-text corpora go through `datasets` builders, and
Parquet and Arrow files are read a batch at a time (containers.py).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sftlab.errors import DataError


def resolve_files(path: str) -> list[Path]:
    """Expand `path` (a file, or a glob) into a sorted list of files (folders: splits.py). Raises
    `DataError` when nothing matches."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return [candidate]
    if any(ch in path for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(candidate), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(str(path), "the glob matches no file")
        return files
    raise DataError(str(path), "no such file or folder")


def read_text(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark is accepted, other encodings are an error."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}", f"not valid UTF-8 (byte {err.start}: {data[err.start : err.start + 1]!r})") from None


def read_json_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield `(where, record)` for each record of a `.json` array or a JSON Lines file, where
    `where` names the file and the record ("f.jsonl line 3", "f.json record 7")."""
    text = read_text(path)
    if not text.strip():
        raise DataError(str(path), "the file is empty")
    if path.suffix == ".json" and text.lstrip()[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":  # "Extra data" means JSON Lines saved as .json: read it so below
                raise DataError(f"{path} line {err.lineno} column {err.colno}", f"invalid JSON: {err.msg}") from None
        else:
            records = data if isinstance(data, list) else [data]
            for index, record in enumerate(records):
                yield f"{path} record {index}", record
            return
    # Lines end at "\n" only (a "\r" before it is JSON whitespace): str.splitlines would also split
    # at U+2028, U+2029 and U+0085, which JSON strings may hold raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path} line {number}", json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path} line {number} column {err.colno}", f"invalid JSON: {err.msg}") from None
