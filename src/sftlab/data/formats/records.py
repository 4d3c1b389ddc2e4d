"""The one internal conversation record that every reader produces and every renderer consumes.

Records travel through `datasets` as Arrow rows, so each type has a plain-dict form
(`to_row` / `from_row`): tool-call arguments and tool schemas are kept as JSON text there,
because Arrow cannot hold dicts whose keys differ from record to record.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from sftlab.errors import DataError

ROLES = ("system", "user", "assistant", "tool")

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ToolCall:
    """One function call made by the assistant; `arguments` is JSON text; `id` (optional) is what a
    tool message's `tool_call_id` refers to (templates such as Gemma-4 match results to calls by it)."""

    name: str
    arguments: str = "{}"
    id: str = ""


@dataclass(frozen=True)
class Message:
    """One turn. `input` is Alpaca's optional task input for a user turn (kept apart so the Alpaca
    prompt can place it under `### Input:`; chat templates see it appended to `content`).
    `reasoning` is an assistant's reasoning trace (data fields `reasoning_content` / `thinking`, or a
    leading `<think>…</think>` block of the content). `tool_call_id` and `name` belong to tool results."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    input: str = ""
    reasoning: str = ""
    tool_call_id: str = ""
    name: str = ""

    def chat_content(self) -> str:
        return f"{self.content}\n\n{self.input}" if self.input else self.content


@dataclass(frozen=True)
class ThinkBlock:
    """An assistant content that starts with a `<think>…</think>` block, in four pieces that are the
    content when joined: `opening` (what precedes the reasoning: whitespace, `<think>`, newlines),
    `reasoning`, `closing` (newlines, `</think>`, newlines) and `answer`. Kept piece by piece so a
    renderer can pass the content on exactly as the data gives it and still say where each piece is."""

    opening: str
    reasoning: str
    closing: str
    answer: str

    def text(self, reasoning: str | None = None, answer: str | None = None) -> str:
        """The content, with the reasoning or the answer replaced where given."""
        return (
            f"{self.opening}{self.reasoning if reasoning is None else reasoning}{self.closing}{self.answer if answer is None else answer}"
        )


def think_block(content: str) -> ThinkBlock | None:
    """The leading `<think>…</think>` block of a content, or None (the newlines around the reasoning
    and before the answer are the block's, as Qwen3 and DeepSeek-R1 read it)."""
    stripped = content.lstrip()
    if not stripped.startswith(THINK_OPEN) or THINK_CLOSE not in stripped:
        return None
    inner, after = stripped[len(THINK_OPEN) :].split(THINK_CLOSE, 1)
    reasoning, answer = inner.strip("\n"), after.lstrip("\n")
    lead = inner[: len(inner) - len(inner.lstrip("\n"))] if reasoning else inner
    trail = inner[len(inner.rstrip("\n")) :] if reasoning else ""
    opening = content[: len(content) - len(stripped)] + THINK_OPEN + lead
    return ThinkBlock(opening, reasoning, trail + THINK_CLOSE + after[: len(after) - len(answer)], answer)


def reasoning_apart(message: Message) -> Message:
    """An assistant message whose content starts with a `<think>…</think>` block, with that block as
    its `reasoning` (surrounding newlines dropped, as Qwen3 and DeepSeek-R1 do), so a renderer of its
    own (Alpaca) gets reasoning one way; other messages unchanged."""
    block = think_block(message.content) if message.role == "assistant" and not message.reasoning else None
    return replace(message, reasoning=block.reasoning, content=block.answer) if block else message


def with_think_block(reasoning: str, answer: str) -> str:
    """The content form of reasoning for templates that read no reasoning field (DeepSeek-R1, SmolLM3,
    Phi-4-reasoning, plain ChatML): the layout Qwen3 and DeepSeek-R1 write."""
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{answer}"


@dataclass(frozen=True)
class Conversation:
    """A whole example: ordered messages, optional tool schemas, where it came from (`source`, e.g.
    "data/train.jsonl line 12") for error messages, and the record's loss `weight` (data field
    `weight`, default 1: it scales the weight of every trained token of the record).
    `completion_start`: the first message that may be trained; assistant messages before it are
    context (TRL's prompt-completion records: only the completion is trained)."""

    messages: tuple[Message, ...]
    source: str
    tools: tuple[dict[str, Any], ...] = field(default=())
    weight: float = 1.0
    completion_start: int = 0

    def assistant_indices(self) -> list[int]:
        """The assistant messages that may be trained (those from `completion_start` on)."""
        return [i for i, message in enumerate(self.messages) if message.role == "assistant" and i >= self.completion_start]

    def truncated_after(self, index: int) -> Conversation:
        """The conversation up to and including message `index` (used by per-turn expansion)."""
        return Conversation(self.messages[: index + 1], self.source, self.tools, self.weight, self.completion_start)

    def validate(self) -> Conversation:
        """Check what every strategy relies on; raise a `DataError` naming the record and field."""
        if not self.messages:
            raise DataError(self.source, "field 'messages': the conversation is empty")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise DataError(self.source, f"field 'weight' must be a finite number >= 0, got {self.weight}")
        for i, message in enumerate(self.messages):
            where = f"field 'messages[{i}]'"
            if message.role not in ROLES:
                raise DataError(self.source, f"{where}: unknown role {message.role!r} (expected one of {', '.join(ROLES)})")
            if message.role == "assistant" and not message.content.strip() and not message.tool_calls:
                raise DataError(self.source, f"{where}: assistant message has empty content")
            if message.reasoning and message.role != "assistant":
                raise DataError(self.source, f"{where}: only assistant messages carry reasoning, not {message.role!r} ones")
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
                    "reasoning": m.reasoning,
                    "tool_call_id": m.tool_call_id,
                    "name": m.name,
                    "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in m.tool_calls],
                }
                for m in self.messages
            ],
            "tools": json.dumps(list(self.tools)) if self.tools else "",
            "source": self.source,
            "weight": self.weight,
            "completion_start": self.completion_start,
            "error": "",
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Conversation:
        messages = tuple(
            Message(
                role=m["role"],
                content=m["content"],
                input=m["input"],
                reasoning=m["reasoning"],
                tool_call_id=m["tool_call_id"],
                name=m["name"],
                tool_calls=tuple(ToolCall(c["name"], c["arguments"], c["id"]) for c in m["tool_calls"]),
            )
            for m in row["messages"]
        )
        tools = tuple(json.loads(row["tools"])) if row["tools"] else ()
        return cls(messages, row["source"], tools, row["weight"], row["completion_start"])
