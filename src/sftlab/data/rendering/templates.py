"""Rendering conversations to text, with the character spans of every part of every assistant message.

Two renderers share one contract (`render(conversation) -> Rendered`, see spans.py):
- `AlpacaTemplate`: the Stanford Alpaca prompt, byte for byte, target = output + eos.
- `ChatTemplate` (chat_template.py): any Hugging Face chat template, rendered by transformers'
  `apply_chat_template`, its parts found with markers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Protocol

from transformers import PreTrainedTokenizerBase

from sftlab.data.formats.records import THINK_CLOSE, THINK_OPEN, Conversation, Message, reasoning_apart
from sftlab.data.rendering.chat_template import ChatTemplate
from sftlab.data.rendering.spans import Part, Rendered, Span, Turn
from sftlab.data.rendering.template_probes import ANSWER
from sftlab.errors import DataError, TemplateError

__all__ = ["ALPACA_PROMPT_INPUT", "ALPACA_PROMPT_NO_INPUT", "AlpacaTemplate", "ChatTemplate", "Rendered", "Renderer", "Span", "Turn"]

# Stanford Alpaca's PROMPT_DICT (train.py), byte for byte; the response follows "### Response:" directly.
ALPACA_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


class Renderer(Protocol):
    template: str  # the template's text: part of the tokenization cache key

    def render(self, conversation: Conversation) -> Rendered: ...

    def prompt_text(self, conversation: Conversation) -> str:
        """The text a model continues to write the next assistant message of `conversation` (which
        ends with a user or tool turn), rendered exactly as in training."""
        ...

    def content_spans(self, conversation: Conversation) -> dict[int, Span]:
        """Where the content of each non-assistant message sits, by message index (for statistics)."""
        ...

    @property
    def stop_text(self) -> str:
        """What a trained model writes when its answer is done (end-of-turn, or eos)."""
        ...


class AlpacaTemplate:
    """The Alpaca prompt. Multi-turn records (`history`) repeat the instruction/response block per
    turn; a system message replaces the preamble sentence; reasoning is written before the output as
    `<think>\n…\n</think>\n\n`. `special_tokens`: the tokenizer's special-token texts, which data text
    may hold but must not act as (see `Rendered.literal_spans`)."""

    template = ALPACA_PROMPT_INPUT + ALPACA_PROMPT_NO_INPUT

    def __init__(self, eos_token: str, bos_token: str = "", special_tokens: tuple[str, ...] = ()) -> None:
        self.eos_token = eos_token
        self.bos_token = bos_token
        ordered = sorted(special_tokens, key=len, reverse=True)
        self._special = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def _layout(self, conversation: Conversation) -> tuple[str, list[Turn], dict[int, Span], list[Span]]:
        """The text, the assistant turns, the spans of the other messages, and the spans of all data text."""
        messages = [reasoning_apart(message) for message in conversation.messages]
        offset = 1 if messages[0].role == "system" else 0
        text, turns, others, data = self.bos_token, [], {}, []

        def add(piece: str, is_data: bool = False) -> Span:
            nonlocal text
            span = (len(text), len(text) + len(piece))
            text += piece
            if is_data and piece:
                data.append(span)
            return span

        for turn, (user, assistant) in enumerate(self._pairs(messages[offset:], conversation.source)):
            index = offset + 2 * turn
            if turn == 0 and offset:
                others[0] = add(messages[0].content, is_data=True)
            elif turn == 0:
                add((ALPACA_PROMPT_INPUT if user.input else ALPACA_PROMPT_NO_INPUT).split("\n\n", 1)[0])
            add("\n\n### Instruction:\n")
            others[index] = add(user.content, is_data=True)
            if user.input:
                add("\n\n### Input:\n")
                others[index] = (others[index][0], add(user.input, is_data=True)[1])
            add("\n\n### Response:")
            turns.append(self._answer(assistant, index + 1, add))
        return text, turns, others, data

    def _answer(self, message: Message, index: int, add: Callable[..., Span]) -> Turn:
        parts: list[tuple[Part, Span]] = []
        if message.reasoning:
            start = add(THINK_OPEN + "\n")[0]
            add(message.reasoning, True)
            parts.append(("reasoning", (start, add("\n" + THINK_CLOSE + "\n\n")[1])))
        parts.append(("answer", add(message.content, True)))
        eos = add(self.eos_token)
        return Turn(index, (*parts, ("end_of_turn", eos)), stop=eos)

    def render(self, conversation: Conversation) -> Rendered:
        text, turns, _, data = self._layout(conversation)
        literal = [(start + found.start(), start + found.end()) for start, end in data for found in self._finds(text[start:end])]
        return Rendered(text, tuple(turns), tuple(literal))

    def _finds(self, piece: str) -> list[re.Match]:
        return list(self._special.finditer(piece)) if self._special else []

    def content_spans(self, conversation: Conversation) -> dict[int, Span]:
        return self._layout(conversation)[2]

    def prompt_text(self, conversation: Conversation) -> str:
        answer_slot = Conversation((*conversation.messages, Message("assistant", ANSWER)), conversation.source)
        text = self.render(answer_slot).text
        return text[: text.index(ANSWER)]

    @property
    def stop_text(self) -> str:
        return self.eos_token

    @staticmethod
    def _pairs(messages: list[Message], source: str) -> list[tuple[Message, Message]]:
        roles = [m.role for m in messages]
        if roles != ["user", "assistant"] * (len(roles) // 2) or any(m.tool_calls for m in messages):
            raise DataError(source, f"the alpaca template needs alternating user/assistant turns without tools, got roles {roles}")
        return list(zip(messages[::2], messages[1::2]))


def make_renderer(template: str, tokenizer: PreTrainedTokenizerBase, fold_system_prompt: bool | None = None) -> Renderer:
    """`alpaca`, `chat` (the tokenizer's own template) or a path to a `.jinja` file."""
    if template == "alpaca":
        specials = tuple(token.content for token in tokenizer.added_tokens_decoder.values() if token.special)
        return AlpacaTemplate(tokenizer.eos_token, bos_token=bos_added_by(tokenizer), special_tokens=specials)
    if template == "chat":
        return ChatTemplate(tokenizer, fold_system_prompt=fold_system_prompt)
    try:
        with open(template, encoding="utf-8") as file:
            text = file.read()
    except OSError as err:
        raise TemplateError(f"data.template: cannot read {template!r} ({err.strerror}); use 'alpaca', 'chat' or a .jinja file") from None
    return ChatTemplate(tokenizer, text, fold_system_prompt, name=os.path.basename(template))


def bos_added_by(tokenizer: PreTrainedTokenizerBase) -> str:
    """The BOS text that the tokenizer would add by default (Llama-style), rendered explicitly so
    tokenization never adds special tokens and the Alpaca text starts exactly as the recipe's."""
    with_special = tokenizer("x").input_ids
    without = tokenizer("x", add_special_tokens=False).input_ids
    return tokenizer.bos_token if with_special[: len(with_special) - len(without)] == [tokenizer.bos_token_id] else ""
