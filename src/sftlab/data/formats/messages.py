"""OpenAI-style `messages` (TRL's conversational format): `role`/`content` messages with tool calls and
results, reasoning, optional `tools` (schemas) and `weight`."""

from __future__ import annotations

from typing import Any

from sftlab.data.formats.base import ConversationFormat, openai_messages, tools, weight
from sftlab.data.formats.records import Conversation


class Messages(ConversationFormat):
    """`format: messages`. Each message: `role` (system, user, assistant, tool), `content` (text or text
    parts; null only on an assistant's tool-call turn), `tool_calls` with their `id`s, `reasoning_content`
    or `thinking` (assistant), `tool_call_id` and `name` (tool)."""

    name = "messages"
    columns = ("messages",)

    def read(self, record: dict[str, Any], where: str) -> Conversation:
        return Conversation(openai_messages(record, "messages", where), where, tools(record, where), weight(record, where))
