"""A data format of your own: Anthropic HH-RLHF's dialogues, given as one text per record.

HH-RLHF (and sets built like it) stores a whole dialogue in one string, turns introduced by
"\\n\\nHuman: " and "\\n\\nAssistant: ", the preferred dialogue in `chosen` and the other in `rejected`.
No mapping of field names reads that; a `ConversationFormat` of ten lines does: it says which fields
identify the records (`columns`) and turns one record into a `Conversation`. sftlab does the rest
(containers, slicing, templates, masking, packing), and `sftlab inspect` shows what it trains:

    PYTHONPATH=examples sftlab inspect --config configs/tiny.yaml --config examples/own_format.yaml
"""

from __future__ import annotations

import re
from typing import Any

from sftlab.data.formats.base import ConversationFormat, field
from sftlab.data.formats.records import Conversation, Message
from sftlab.errors import DataError

SPEAKERS = {"Human": "user", "Assistant": "assistant"}


class Transcript(ConversationFormat):
    """One dialogue as text (`chosen` by default), each turn after "\\n\\nHuman: " or "\\n\\nAssistant: "."""

    name = "transcript"
    columns = ("chosen",)

    def __init__(self, text: str = "chosen") -> None:
        """
        Args:
            text: The field that holds the dialogue to train on (`chosen`; `rejected` would train the other).
        """
        self.text = text

    def read(self, record: dict[str, Any], where: str) -> Conversation:
        pieces = re.split(r"\n\n(Human|Assistant): ", "\n\n" + field(record, self.text, where).lstrip("\n"))
        if pieces[0]:
            raise DataError(where, f"field {self.text!r} must start with 'Human: '")
        turns = zip(pieces[1::2], pieces[2::2])
        return Conversation(tuple(Message(SPEAKERS[speaker], text.strip()) for speaker, text in turns), where)
