"""The one internal conversation record that every reader produces and every renderer consumes.

Records travel through `datasets` as Arrow rows, so each type has a plain-dict form
(`to_row` / `from_row`): tool-call arguments and tool schemas are kept as JSON text there,
because Arrow cannot hold dicts whose keys differ from record to record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sftlab.errors import DataError

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCall:
    """One function call made by the assistant; `arguments` is JSON text."""

    name: str
    arguments: str = "{}"

    def to_chat(self) -> dict[str, Any]:
        """The OpenAI / transformers form that chat templates expect (arguments as a dict)."""
        return {"type": "function", "function": {"name": self.name, "arguments": json.loads(self.arguments)}}


@dataclass(frozen=True)
class Message:
    """One turn. `input` is Alpaca's optional task input for a user turn (kept apart so the Alpaca
    prompt can place it under `### Input:`; chat templates see it appended to `content`)."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    input: str = ""

    def chat_content(self) -> str:
        return f"{self.content}\n\n{self.input}" if self.input else self.content

    def to_chat(self) -> dict[str, Any]:
        """The dict that `apply_chat_template` renders."""
        message: dict[str, Any] = {"role": self.role, "content": self.chat_content()}
        if self.tool_calls:
            message["tool_calls"] = [call.to_chat() for call in self.tool_calls]
        return message


@dataclass(frozen=True)
class Conversation:
    """A whole example: ordered messages, optional tool schemas, and where it came from
    (`source`, e.g. "data/train.jsonl line 12") for error messages."""

    messages: tuple[Message, ...]
    source: str
    tools: tuple[dict[str, Any], ...] = field(default=())

    def assistant_indices(self) -> list[int]:
        return [i for i, message in enumerate(self.messages) if message.role == "assistant"]

    def truncated_after(self, index: int) -> Conversation:
        """The conversation up to and including message `index` (used by per-turn expansion)."""
        return Conversation(self.messages[: index + 1], self.source, self.tools)

    def validate(self) -> Conversation:
        """Check what every strategy relies on; raise a `DataError` naming the record and field."""
        if not self.messages:
            raise DataError(self.source, "field 'messages': the conversation is empty")
        for i, message in enumerate(self.messages):
            where = f"field 'messages[{i}]'"
            if message.role not in ROLES:
                raise DataError(self.source, f"{where}: unknown role {message.role!r} (expected one of {', '.join(ROLES)})")
            if message.role == "assistant" and not message.content.strip() and not message.tool_calls:
                raise DataError(self.source, f"{where}: assistant message has empty content")
        first = next((m for m in self.messages if m.role != "system"), None)
        if first is None or first.role != "user":
            found = "only system messages" if first is None else f"a {first.role!r} message"
            raise DataError(self.source, f"field 'messages': the conversation must start with a user turn, found {found}")
        if not self.assistant_indices():
            raise DataError(self.source, "field 'messages': the conversation has no assistant message to train on")
        return self

    def to_row(self) -> dict[str, Any]:
        return {
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "input": m.input,
                    "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in m.tool_calls],
                }
                for m in self.messages
            ],
            "tools": json.dumps(list(self.tools)) if self.tools else "",
            "source": self.source,
            "error": "",
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Conversation:
        messages = tuple(
            Message(
                role=m["role"],
                content=m["content"],
                input=m["input"],
                tool_calls=tuple(ToolCall(c["name"], c["arguments"]) for c in m["tool_calls"]),
            )
            for m in row["messages"]
        )
        tools = tuple(json.loads(row["tools"])) if row["tools"] else ()
        return cls(messages, row["source"], tools)
