"""Alpaca: `instruction`, `input`, `output`, optional `system` and `history` ([[instruction, response], ...])."""

from __future__ import annotations

from typing import Any

from sftlab.data.formats.base import ConversationFormat, field, weight
from sftlab.data.formats.records import Conversation, Message
from sftlab.errors import DataError


class Alpaca(ConversationFormat):
    """`format: alpaca`. The instruction is a user turn (its `input` kept apart for the Alpaca prompt),
    the output the assistant's answer; `history` pairs come first, `system` before them."""

    name = "alpaca"
    columns = ("instruction",)

    def read(self, record: dict[str, Any], where: str) -> Conversation:
        messages: list[Message] = []
        if system := field(record, "system", where, required=False):
            messages.append(Message("system", system))
        for turn, pair in enumerate(field(record, "history", where, list, required=False)):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise DataError(where, f"field 'history[{turn}]' must be a pair of strings [instruction, response]")
            messages += [Message("user", pair[0]), Message("assistant", pair[1])]
        instruction = field(record, "instruction", where)
        task_input = field(record, "input", where, required=False)
        messages += [Message("user", instruction, input=task_input), Message("assistant", field(record, "output", where))]
        return Conversation(tuple(messages), where, weight=weight(record, where))
