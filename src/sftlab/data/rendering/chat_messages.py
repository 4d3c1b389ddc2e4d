"""A record's message as the dict `apply_chat_template` renders: the record as given (a `<think>` block at
the start of a content stays in the content, as the data spells it), its reasoning from a field in the field
the template reads, or, on a template that reads none, in the content as a `<think>` block (said once
per run). Marker renders replace one piece of it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from sftlab.data.formats.records import Message, ThinkBlock, think_block
from sftlab.data.rendering.template_probes import reasoning_message


def inline_reasoning(message: Message) -> ThinkBlock | None:
    """The `<think>` block an assistant content starts with, where it holds reasoning and no field does."""
    block = think_block(message.content) if message.role == "assistant" and not message.reasoning else None
    return block if block is not None and block.reasoning else None


def chat_message(
    message: Message,
    reasoning_field: str | None,
    answer: str | None = None,
    reasoning: str | None = None,
    names: list[str] | None = None,
    drop: bool = False,
) -> dict[str, Any]:
    """The dict of `message` for a template that reads reasoning from `reasoning_field` (None: none);
    `answer`, `reasoning` and the call `names` replace the message's own; `drop` leaves out reasoning
    from a field (the template drops it where it would be written as a `<think>` block)."""
    block = inline_reasoning(message)
    if block is not None:
        chat = {"content": block.text(reasoning, answer)}
    else:
        content = message.chat_content() if answer is None else answer
        given = "" if drop else message.reasoning if reasoning is None else reasoning
        chat = reasoning_message(reasoning_field, given, content) if given else {"content": content}
    chat["role"] = message.role
    if message.tool_calls:
        chat["tool_calls"] = [
            {"type": "function", "function": {"name": names[j] if names else call.name, "arguments": json.loads(call.arguments)}}
            | ({"id": call.id} if call.id else {})
            for j, call in enumerate(message.tool_calls)
        ]
    chat.update({key: value for key, value in (("tool_call_id", message.tool_call_id), ("name", message.name)) if value})
    return chat


def data_text(message: Message) -> list[str]:
    """Every piece of text the data gives in `message`."""
    return [
        message.content,
        message.input,
        message.reasoning,
        *(piece for call in message.tool_calls for piece in (call.name, call.arguments)),
    ]


def with_data_text(message: Message, change: Callable[[str], str]) -> Message:
    """`message` with `change` applied to every piece of its data text."""
    calls = tuple(dataclasses.replace(call, name=change(call.name), arguments=change(call.arguments)) for call in message.tool_calls)
    return dataclasses.replace(
        message, content=change(message.content), input=change(message.input), reasoning=change(message.reasoning), tool_calls=calls
    )
