"""What a data format is: a class a config names by `class_path` (the built-in ones also by their short
names, `data.format: alpaca`), exactly as masking strategies are.

A conversation format says which record fields identify it (`columns`: what `format: auto` looks for in a
file's columns, and what a Parquet or Arrow file must have) and turns one record, a plain dict, into a
`Conversation` (`read`), raising a `DataError` that names the record and field. That is the whole
interface: a researcher's own format is one subclass (see examples/own_format.py). Pretraining text is
the `Text` format (text.py): documents, not conversations.

The helpers below read the fields every format shares (tools, weights, tool calls, OpenAI-style messages).
`rename` applies `data.fields` (sftlab's field names mapped to the record's) before a format reads a record.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, ClassVar

from sftlab.data.formats.records import Conversation, Message, ToolCall
from sftlab.errors import DataError


class DataFormat:
    """A record layout. `name` is what `format: auto` reports; `columns` the fields that identify it."""

    name: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()

    def matches(self, columns: Collection[str]) -> bool:
        """Whether records with these fields (after `data.fields`) are in this format."""
        return bool(self.columns) and all(column in columns for column in self.columns)

    def __repr__(self) -> str:  # part of cache keys, like a masking strategy's
        return f"{type(self).__module__}.{type(self).__qualname__}({vars(self)})"


class ConversationFormat(DataFormat):
    """Records that are conversations (what supervised fine-tuning trains on)."""

    def read(self, record: dict[str, Any], where: str) -> Conversation:
        """One record as a conversation (validated by the caller); `where` names it in errors."""
        raise NotImplementedError


def rename(record: dict[str, Any], fields: dict[str, str] | None) -> dict[str, Any]:
    """`record` with its field names as sftlab reads them: `fields` maps sftlab's name to the record's
    (`{messages: conversation}`, `{role: speaker}`), on the record and on the objects of its lists (turns)."""
    if not fields:
        return record
    back = {theirs: ours for ours, theirs in fields.items()}

    def renamed(value: Any) -> Any:
        return {back.get(key, key): item for key, item in value.items()} if isinstance(value, dict) else value

    return {back.get(key, key): [renamed(item) for item in value] if isinstance(value, list) else value for key, value in record.items()}


def renamed_columns(columns: Collection[str], fields: dict[str, str] | None) -> list[str]:
    back = {theirs: ours for ours, theirs in (fields or {}).items()}
    return [back.get(column, column) for column in columns]


def field(record: dict[str, Any], key: str, where: str, kind: type = str, required: bool = True) -> Any:
    """`record[key]` checked to be of `kind`; missing optional fields give `kind()`."""
    if key not in record or record[key] is None:
        if required:
            raise DataError(where, f"missing field {key!r}")
        return kind()
    value = record[key]
    if not isinstance(value, kind):
        raise DataError(where, f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def tools(record: dict[str, Any], where: str) -> tuple[dict[str, Any], ...]:
    """Tool schemas, given as a list or as JSON text; bare schemas are wrapped in the
    `{"type": "function", "function": ...}` form that chat templates expect."""
    given = record.get("tools") or []
    if isinstance(given, str):
        try:
            given = json.loads(given) if given.strip() else []
        except json.JSONDecodeError as err:
            raise DataError(where, f"field 'tools' is not valid JSON: {err.msg}") from None
    if not isinstance(given, list) or not all(isinstance(t, dict) for t in given):
        raise DataError(where, "field 'tools' must be a list of JSON objects")
    return tuple(t if "function" in t else {"type": "function", "function": t} for t in given)


def weight(record: dict[str, Any], where: str) -> float:
    """The record's optional loss weight (field `weight`, default 1)."""
    value = record.get("weight", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(where, f"field 'weight' must be a number, got {type(value).__name__}")
    return float(value)


def tool_call(value: Any, where: str) -> ToolCall:
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


def openai_message(raw: Any, at: str) -> Message:
    """One OpenAI-style message: `role`, `content`, and per role `tool_calls` (with `id`s),
    `reasoning_content`/`thinking` (assistant), `tool_call_id` and `name` (tool)."""
    if not isinstance(raw, dict):
        raise DataError(at, "must be an object with 'role' and 'content'")
    role = field(raw, "role", at)
    calls = tuple(tool_call(c, at) for c in field(raw, "tool_calls", at, list, required=False))
    if "content" not in raw and not calls:
        raise DataError(at, "missing field 'content'")
    if raw.get("content") is None and not (role == "assistant" and calls):
        raise DataError(at, f"field 'content' is null: a {role} message needs text (only an assistant's tool-call turn may have none)")
    content = _content_text(raw["content"], at) if raw.get("content") is not None else ""
    tool_ref = {key: field(raw, key, at, required=False) for key in ("tool_call_id", "name")} if role == "tool" else {}
    return Message(role, content, calls, reasoning=_reasoning(raw, at), **tool_ref)


def openai_messages(record: dict[str, Any], key: str, where: str) -> tuple[Message, ...]:
    """The message list `record[key]`, each message read by `openai_message`."""
    return tuple(openai_message(raw, f"{where} field '{key}[{i}]'") for i, raw in enumerate(field(record, key, where, list)))
