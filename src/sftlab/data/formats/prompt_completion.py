"""TRL's prompt-completion format: `prompt` and `completion`, both text or both message lists."""

from __future__ import annotations

from typing import Any

from sftlab.data.formats.base import ConversationFormat, field, openai_messages, tools, weight
from sftlab.data.formats.records import Conversation, Message
from sftlab.errors import DataError


class PromptCompletion(ConversationFormat):
    """`format: prompt_completion`. Text: the prompt is a user turn and the completion the assistant's
    answer, rendered by the template like any conversation. Message lists (TRL's conversational form):
    the prompt's messages, then the completion's. Only the completion is trained: assistant messages of
    the prompt are context (`Conversation.completion_start`), whatever the masking strategy selects."""

    name = "prompt_completion"
    columns = ("prompt", "completion")

    def read(self, record: dict[str, Any], where: str) -> Conversation:
        prompt, completion = field(record, "prompt", where, object), field(record, "completion", where, object)
        if isinstance(prompt, str) and isinstance(completion, str):
            messages = (Message("user", prompt), Message("assistant", completion))
            return Conversation(messages, where, tools(record, where), weight(record, where), completion_start=1)
        if not (isinstance(prompt, list) and isinstance(completion, list)):
            kinds = f"{type(prompt).__name__} and {type(completion).__name__}"
            raise DataError(where, f"fields 'prompt' and 'completion' must both be text or both message lists, got {kinds}")
        before, after = openai_messages(record, "prompt", where), openai_messages(record, "completion", where)
        if not any(message.role == "assistant" for message in after):
            raise DataError(where, "field 'completion': no assistant message to train on")
        return Conversation(before + after, where, tools(record, where), weight(record, where), completion_start=len(before))
