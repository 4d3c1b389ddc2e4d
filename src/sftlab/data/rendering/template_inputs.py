"""The form in which a chat template reads the messages it renders, learnt once per template by probing
(no per-template code), so that what a record says reaches every template:

- `content_as_parts`: the content as a list of text parts (`[{"type": "text", "text": ...}]`) instead
  of a string: Idefics3, SmolVLM and Llava-Next iterate over parts and render nothing of a string.
- `arguments_as_text`: tool-call arguments as JSON text instead of a dict: DeepSeek-V3 concatenates them
  to its text (a dict fails to render), and a template that prints a dict as Python's repr
  (`{'city': 'Paris'}`) expects text too. Most templates read a dict (`| tojson`, or key by key).

`InputForms.sent` turns messages built the usual way (string contents, dict arguments) into that form;
the renderer sends every message through it, its probes' included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sftlab.errors import TemplateError

RawApply = Callable[[list[dict[str, Any]]], str]  # messages -> text, or TemplateError
PROBE_ARGUMENTS = {"city": "Paris"}


@dataclass(frozen=True)
class InputForms:
    content_as_parts: bool = False
    arguments_as_text: bool = False

    def sent(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages in this form (the same list where nothing changes)."""
        if not (self.content_as_parts or self.arguments_as_text):
            return messages
        return [self._message(message) for message in messages]

    def _message(self, message: dict[str, Any]) -> dict[str, Any]:
        message = dict(message)
        if self.content_as_parts and isinstance(message.get("content"), str):
            message["content"] = [{"type": "text", "text": message["content"]}]
        if self.arguments_as_text and message.get("tool_calls"):
            message["tool_calls"] = [_with_text_arguments(call) for call in message["tool_calls"]]
        return message


def _with_text_arguments(call: dict[str, Any]) -> dict[str, Any]:
    arguments = call["function"]["arguments"]
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {**call, "function": {**call["function"], "arguments": text}}


def _try(apply: RawApply, messages: list[dict[str, Any]]) -> str | None:
    try:
        return apply(messages)
    except TemplateError:
        return None


def probe_forms(apply: RawApply, answer: str, question: str) -> InputForms:
    """The forms `apply` (the template, messages sent as given) reads; `answer` and `question` are
    marker characters for an assistant's and a user's content."""
    turn = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    as_text = _try(apply, turn)
    parts = as_text is None or answer not in as_text
    if parts:
        as_parts = _try(apply, InputForms(content_as_parts=True).sent(turn))
        parts = as_parts is not None and answer in as_parts
    forms = InputForms(content_as_parts=parts)
    call = {"type": "function", "function": {"name": "get_weather", "arguments": PROBE_ARGUMENTS}}
    with_dict = _try(apply, forms.sent([turn[0], {"role": "assistant", "content": "", "tool_calls": [call]}]))
    if with_dict is None or repr(PROBE_ARGUMENTS) in with_dict:
        text_forms = InputForms(parts, arguments_as_text=True)
        with_text = _try(apply, text_forms.sent([turn[0], {"role": "assistant", "content": "", "tool_calls": [call]}]))
        if with_text is not None and json.dumps(PROBE_ARGUMENTS) in with_text:
            return text_forms
    return forms
