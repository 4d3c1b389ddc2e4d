"""Readers: Alpaca, ShareGPT and OpenAI-style `messages` files become `Conversation` records;
raw text (txt / jsonl / json / parquet) becomes a `datasets` text dataset for pretraining.

`format: auto` looks at the first record of the first file and says what it found.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import datasets

from sftlab.data.formats.files import read_json_records, resolve_files
from sftlab.data.formats.records import Conversation, Message, ToolCall
from sftlab.errors import DataError, SftlabError

log = logging.getLogger(__name__)

Format = Literal["auto", "alpaca", "sharegpt", "messages", "text"]

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


def _field(record: dict[str, Any], key: str, where: str, kind: type = str, required: bool = True) -> Any:
    """`record[key]` checked to be of `kind`; missing optional fields give `kind()`."""
    if key not in record or record[key] is None:
        if required:
            raise DataError(where, f"missing field {key!r}")
        return kind()
    value = record[key]
    if not isinstance(value, kind):
        raise DataError(where, f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _tools(record: dict[str, Any], where: str) -> tuple[dict[str, Any], ...]:
    """Tool schemas, given as a list or as JSON text; bare schemas are wrapped in the
    `{"type": "function", "function": ...}` form that chat templates expect."""
    tools = record.get("tools") or []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else []
        except json.JSONDecodeError as err:
            raise DataError(where, f"field 'tools' is not valid JSON: {err.msg}") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise DataError(where, "field 'tools' must be a list of JSON objects")
    return tuple(t if "function" in t else {"type": "function", "function": t} for t in tools)


def _weight(record: dict[str, Any], where: str) -> float:
    """The record's optional loss weight (field `weight`, default 1)."""
    weight = record.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise DataError(where, f"field 'weight' must be a number, got {type(weight).__name__}")
    return float(weight)


def _tool_call(value: Any, where: str) -> ToolCall:
    """One call from `{"name": ..., "arguments": {...} or "json"}` (ShareGPT and OpenAI forms, the
    latter with the call's `id` beside `function`)."""
    call_id = value.get("id") if isinstance(value, dict) else None
    if call_id is not None and not isinstance(call_id, str):
        raise DataError(where, f"tool call 'id' must be a string, got {type(call_id).__name__}")
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise DataError(where, "a tool call must be an object with a string 'name'")
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as err:
            raise DataError(where, f"tool call 'arguments' is not valid JSON: {err.msg}") from None
    return ToolCall(value["name"], json.dumps(arguments, ensure_ascii=False), call_id or "")


def alpaca_record(record: dict[str, Any], where: str) -> Conversation:
    """`instruction`, `input`, `output`, optional `system` and `history` ([[instruction, response], ...])."""
    messages: list[Message] = []
    if system := _field(record, "system", where, required=False):
        messages.append(Message("system", system))
    for turn, pair in enumerate(_field(record, "history", where, list, required=False)):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise DataError(where, f"field 'history[{turn}]' must be a pair of strings [instruction, response]")
        messages += [Message("user", pair[0]), Message("assistant", pair[1])]
    instruction = _field(record, "instruction", where)
    task_input = _field(record, "input", where, required=False)
    messages += [Message("user", instruction, input=task_input), Message("assistant", _field(record, "output", where))]
    return Conversation(tuple(messages), where, weight=_weight(record, where))


def sharegpt_record(record: dict[str, Any], where: str) -> Conversation:
    """`conversations` of `from`/`value`, optional `system` and `tools`; `function_call` turns become
    assistant tool calls and `observation` turns tool results."""
    messages: list[Message] = []
    if system := _field(record, "system", where, required=False):
        messages.append(Message("system", system))
    for i, turn in enumerate(_field(record, "conversations", where, list)):
        field = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise DataError(where, f"field {field!r} must be an object with 'from' and 'value'")
        speaker = _field(turn, "from", f"{where} field {field!r}")
        value = _field(turn, "value", f"{where} field {field!r}")
        if speaker not in SHAREGPT_ROLES:
            raise DataError(where, f"field '{field}.from': unknown role {speaker!r} (expected one of {', '.join(SHAREGPT_ROLES)})")
        if speaker == "function_call":
            try:
                calls = json.loads(value)
            except json.JSONDecodeError as err:
                raise DataError(where, f"field '{field}.value' is not valid JSON: {err.msg}") from None
            calls = calls if isinstance(calls, list) else [calls]
            messages.append(Message("assistant", "", tuple(_tool_call(c, f"{where} field '{field}.value'") for c in calls)))
        else:
            messages.append(Message(SHAREGPT_ROLES[speaker], value))
    return Conversation(tuple(messages), where, _tools(record, where), _weight(record, where))


def _content_text(content: Any, where: str) -> str:
    """OpenAI content: a string or a list of `{"type": "text"}` parts (null is handled by the caller)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise DataError(where, "field 'content' must be a string or a list of text parts")


def _reasoning(raw: dict[str, Any], where: str) -> str:
    """An assistant's reasoning from `reasoning_content` (Qwen3, DeepSeek) or `thinking` (gpt-oss)."""
    given = {key: raw[key] for key in ("reasoning_content", "thinking") if raw.get(key) is not None}
    for key, value in given.items():
        if not isinstance(value, str):
            raise DataError(where, f"field {key!r} must be a string, got {type(value).__name__}")
    if len(set(given.values())) > 1:
        raise DataError(where, "fields 'reasoning_content' and 'thinking' differ: give the reasoning once")
    return next(iter(given.values()), "")


def messages_message(raw: Any, at: str) -> Message:
    """One OpenAI-style message: `role`, `content`, and per role `tool_calls` (with `id`s),
    `reasoning_content`/`thinking` (assistant), `tool_call_id` and `name` (tool)."""
    if not isinstance(raw, dict):
        raise DataError(at, "must be an object with 'role' and 'content'")
    role = _field(raw, "role", at)
    calls = tuple(_tool_call(c, at) for c in _field(raw, "tool_calls", at, list, required=False))
    if "content" not in raw and not calls:
        raise DataError(at, "missing field 'content'")
    if raw.get("content") is None and not (role == "assistant" and calls):
        raise DataError(at, f"field 'content' is null: a {role} message needs text (only an assistant's tool-call turn may have none)")
    content = _content_text(raw["content"], at) if raw.get("content") is not None else ""
    tool_ref = {key: _field(raw, key, at, required=False) for key in ("tool_call_id", "name")} if role == "tool" else {}
    return Message(role, content, calls, reasoning=_reasoning(raw, at), **tool_ref)


def messages_record(record: dict[str, Any], where: str) -> Conversation:
    """OpenAI-style `messages` (see `messages_message`), optional `tools` and `weight`."""
    messages = tuple(
        messages_message(raw, f"{where} field 'messages[{i}]'") for i, raw in enumerate(_field(record, "messages", where, list))
    )
    return Conversation(messages, where, _tools(record, where), _weight(record, where))


CONVERSATION_READERS = {"alpaca": alpaca_record, "sharegpt": sharegpt_record, "messages": messages_record}


def detect_format(path: Path, text_field: str = "text") -> str:
    """The format of a data file, from its extension and first record."""
    if path.suffix in (".txt", ".parquet"):
        return "text"
    first = next(read_json_records(path), None)
    if first is None:
        raise DataError(str(path), "the file holds no records (an empty JSON list)")
    where, record = first
    if not isinstance(record, dict):
        raise DataError(where, f"a record must be a JSON object, got {type(record).__name__}")
    for key, name in (("conversations", "sharegpt"), ("messages", "messages"), ("instruction", "alpaca"), (text_field, "text")):
        if key in record:
            return name
    raise DataError(
        where,
        f"cannot detect the format from fields {sorted(record)}: expected 'conversations' (sharegpt), "
        f"'messages', 'instruction' (alpaca) or {text_field!r} (text); set data.format",
    )


def resolve_format(files: list[Path], fmt: Format, text_field: str = "text") -> str:
    if fmt != "auto":
        return fmt
    detected = detect_format(files[0], text_field)
    log.info("data format: detected %r from %s", detected, files[0])
    return detected


def read_record(record: Any, where: str, fmt: str) -> Conversation:
    """One JSON record as a validated conversation; a DataError names the record and field."""
    if not isinstance(record, dict):
        raise DataError(where, f"a record must be a JSON object, got {type(record).__name__}")
    return CONVERSATION_READERS[fmt](record, where).validate()


def bad_row(where: str, error: str) -> dict[str, Any]:
    """The row standing for a record skipped with `data.bad_records: skip` (same columns as a good one,
    so the dataset keeps one schema; tokenization counts it as dropped, reason `bad_record`)."""
    message = {"role": "user", "content": "", "input": "", "reasoning": "", "tool_call_id": "", "name": "", "tool_calls": []}
    return {"messages": [message], "tools": "", "source": where, "weight": 1.0, "error": error}


def code_fingerprint() -> str:
    """A hash of the data package's source: part of every cache key, so upgrading sftlab never reuses
    records or tokens made by other code (a stale cache once lacked a column the new code reads)."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parents[1].rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def iter_conversations(files: list[tuple[str, int, int]], fmt: str, skip_bad: bool = False, code: str = "") -> Iterator[dict[str, Any]]:
    """Validated conversation rows from every `(path, size, mtime)` file (a generator for
    `Dataset.from_generator`, whose cache key hashes these arguments). A bad record is an error, or
    with `skip_bad` a `bad_row` (logged)."""
    for path, _size, _mtime in files:
        for where, record in read_json_records(Path(path)):
            try:
                yield read_record(record, where, fmt).to_row()
            except DataError as err:
                if not skip_bad:
                    raise
                log.warning("skipped (data.bad_records: skip): %s", err)
                yield bad_row(where, str(err))


def file_names_and_sizes(files: list[Path]) -> list[tuple[str, int]]:
    """What identifies a dataset across machines (not paths or modification times, which a copy changes)."""
    return [(p.name, p.stat().st_size) for p in files]


def file_stamps(files: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, modification time) of each file: what identifies its contents in cache keys."""
    return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def load_conversations(files: list[Path], fmt: str, cache_dir: str | None = None, skip_bad: bool = False) -> datasets.Dataset:
    """Read conversation files into a disk-backed `datasets.Dataset` of `Conversation` rows.

    The files' sizes and modification times are part of the generator's arguments, so the cache is
    reused exactly while the files stay the same."""
    try:
        return datasets.Dataset.from_generator(
            iter_conversations,
            gen_kwargs={"files": file_stamps(files), "fmt": fmt, "skip_bad": skip_bad, "code": code_fingerprint()},
            cache_dir=cache_dir,
        )
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, SftlabError):  # our own message, unwrapped from datasets' wrapper
            raise err.__cause__ from None
        raise


def load_text(
    files: list[Path], text_field: str = "text", streaming: bool = False, cache_dir: str | None = None
) -> datasets.Dataset | datasets.IterableDataset:
    """Raw documents as a dataset with one `text` column, through `datasets`' own builders
    (streaming for corpora that do not fit in memory)."""
    kinds = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
    builders = {kinds.get(p.suffix) for p in files}
    if None in builders or len(builders) != 1:
        raise DataError(
            str(files[0].parent), f"text data must be all .txt, all .json/.jsonl or all .parquet, got {sorted({p.suffix for p in files})}"
        )
    builder = builders.pop()
    try:
        dataset = datasets.load_dataset(
            builder, data_files=[str(p) for p in files], split="train", streaming=streaming, cache_dir=cache_dir
        )
    except datasets.exceptions.DatasetGenerationError as err:
        if builder == "json":  # find the first bad line for a message that names it
            for path in files:
                for _ in read_json_records(path):
                    pass
        raise DataError(str(files[0]), f"cannot read the text data: {err.__cause__ or err}") from None
    columns = dataset.column_names or list(dataset.features or {})
    if text_field not in columns:
        raise DataError(str(files[0]), f"missing field {text_field!r} (fields: {columns}); set data.text_field")
    return (
        dataset.select_columns([text_field]).rename_column(text_field, "text") if text_field != "text" else dataset.select_columns(["text"])
    )


def resolve(path: str, fmt: Format, text_field: str = "text", max_files: int | None = None) -> tuple[list[Path], str]:
    """The files behind `path` and their format."""
    files = resolve_files(path, max_files)
    return files, resolve_format(files, fmt, text_field)
