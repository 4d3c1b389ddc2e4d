"""ShareGPT: `conversations` of `from`/`value` turns, optional `system` and `tools`."""

from __future__ import annotations

import json
from typing import Any

from sftlab.data.formats.base import ConversationFormat, field, tool_call, tools, weight
from sftlab.data.formats.records import Conversation, Message
from sftlab.errors import DataError

ROLES = {
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


class ShareGPT(ConversationFormat):
    """`format: sharegpt`. Speakers `human`/`user`, `gpt`/`assistant`/`model`, `system`; `function_call`
    turns become assistant tool calls and `observation`/`tool` turns tool results. `roles` adds speaker
    names of other data sets (`{bot: assistant}`: a turn `from: bot` is the assistant's)."""

    name = "sharegpt"
    columns = ("conversations",)

    def __init__(self, roles: dict[str, str] | None = None) -> None:
        """
        Args:
            roles: More speaker names, each mapped to user, assistant, system, tool or function_call.
        """
        self.roles = {**ROLES, **{speaker: ROLES.get(role, role) for speaker, role in (roles or {}).items()}}
        # A sorted tuple, not a set: the format's repr is part of cache keys and must not vary between processes.
        self.calls = tuple(sorted({"function_call", *(speaker for speaker, role in (roles or {}).items() if role == "function_call")}))

    def read(self, record: dict[str, Any], where: str) -> Conversation:
        messages: list[Message] = []
        if system := field(record, "system", where, required=False):
            messages.append(Message("system", system))
        for i, turn in enumerate(field(record, "conversations", where, list)):
            messages.append(self._turn(turn, f"conversations[{i}]", where))
        return Conversation(tuple(messages), where, tools(record, where), weight(record, where))

    def _turn(self, turn: Any, name: str, where: str) -> Message:
        if not isinstance(turn, dict):
            raise DataError(where, f"field {name!r} must be an object with 'from' and 'value'")
        speaker = field(turn, "from", f"{where} field {name!r}")
        value = field(turn, "value", f"{where} field {name!r}")
        if speaker not in self.roles:
            raise DataError(where, f"field '{name}.from': unknown role {speaker!r} (expected one of {', '.join(self.roles)})")
        if speaker not in self.calls:
            return Message(self.roles[speaker], value)
        try:
            calls = json.loads(value)
        except json.JSONDecodeError as err:
            raise DataError(where, f"field '{name}.value' is not valid JSON: {err.msg}") from None
        calls = calls if isinstance(calls, list) else [calls]
        return Message("assistant", "", tuple(tool_call(c, f"{where} field '{name}.value'") for c in calls))
