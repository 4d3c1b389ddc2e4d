"""Rendering conversations to text, with the character spans of every assistant message.

Two renderers share one contract (`render(conversation) -> Rendered`):
- `AlpacaTemplate`: the Stanford Alpaca prompt, byte for byte, target = output + eos.
- `ChatTemplate`: any Hugging Face chat template, rendered by transformers' `apply_chat_template`.

How `ChatTemplate` finds assistant spans without per-template code (see shared/design/MASKING.md):
render the conversation once; then, for each assistant message, render it again with that one
message's content replaced by a marker character that occurs nowhere else and its tool calls
removed. The two texts agree before and after the message, so their common prefix and suffix bound
exactly what the template wrote for it (content, tool calls, reasoning), wherever it sits and however
the template rewrites other turns. The end-of-turn text the template writes after an assistant message
(`<|im_end|>`, `<|eot_id|>`, ` </s>`, ...) is found once by probing the template and is trained with the
message, so the model learns to stop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from transformers import PreTrainedTokenizerBase

from sftlab.data.records import Conversation, Message
from sftlab.errors import DataError, TemplateError

log = logging.getLogger(__name__)

Span = tuple[int, int]

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

MARKER = "\ue000"  # a private-use character: never in real text, untouched by `trim` and friends


@dataclass(frozen=True)
class Rendered:
    """A conversation as text; `assistant_spans[i]` are the characters of the i-th assistant
    message, end-of-turn marker included."""

    text: str
    assistant_spans: tuple[Span, ...]


class Renderer(Protocol):
    template: str  # the template's text: part of the tokenization cache key

    def render(self, conversation: Conversation) -> Rendered: ...

    def prompt_text(self, conversation: Conversation) -> str:
        """The text a model continues to write the next assistant message of `conversation` (which
        ends with a user or tool turn), rendered exactly as in training."""
        ...

    @property
    def stop_text(self) -> str:
        """What a trained model writes when its answer is done (end-of-turn, or eos)."""
        ...


class AlpacaTemplate:
    """The Alpaca prompt. Multi-turn records (`history`) repeat the instruction/response block per
    turn; a system message replaces the preamble sentence."""

    template = ALPACA_PROMPT_INPUT + ALPACA_PROMPT_NO_INPUT

    def __init__(self, eos_token: str, bos_token: str = "") -> None:
        self.eos_token = eos_token
        self.bos_token = bos_token

    def render(self, conversation: Conversation) -> Rendered:
        messages = list(conversation.messages)
        system = messages.pop(0).content if messages[0].role == "system" else None
        text, spans = self.bos_token, []
        for turn, (user, assistant) in enumerate(self._pairs(messages, conversation.source)):
            prompt = (ALPACA_PROMPT_INPUT if user.input else ALPACA_PROMPT_NO_INPUT).format(instruction=user.content, input=user.input)
            if turn > 0:
                prompt = "\n\n" + prompt.split("\n\n", 1)[1]  # the preamble once per conversation
            elif system is not None:
                prompt = system + "\n\n" + prompt.split("\n\n", 1)[1]
            text += prompt
            spans.append((len(text), len(text) + len(assistant.content) + len(self.eos_token)))
            text += assistant.content + self.eos_token
        return Rendered(text, tuple(spans))

    def prompt_text(self, conversation: Conversation) -> str:
        answer_slot = Conversation((*conversation.messages, Message("assistant", MARKER)), conversation.source)
        text = self.render(answer_slot).text
        return text[: text.index(MARKER)]

    @property
    def stop_text(self) -> str:
        return self.eos_token

    @staticmethod
    def _pairs(messages: list[Message], source: str) -> list[tuple[Message, Message]]:
        roles = [m.role for m in messages]
        if roles != ["user", "assistant"] * (len(roles) // 2) or any(m.tool_calls for m in messages):
            raise DataError(source, f"the alpaca template needs alternating user/assistant turns without tools, got roles {roles}")
        return list(zip(messages[::2], messages[1::2]))


class ChatTemplate:
    """Any Hugging Face chat template (the tokenizer's own or a `.jinja` file's text).

    `fold_system_prompt`: None folds the system prompt into the first user turn only where the
    template has no system role (Gemma, Mistral); True always folds; False never does (and a
    template without a system role then gives a clear error)."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, template: str | None = None, fold_system_prompt: bool | None = None, name: str = ""
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template or tokenizer.chat_template
        if not self.template:
            raise TemplateError(
                f"tokenizer {tokenizer.name_or_path!r} has no chat template: set data.template to a .jinja file or 'alpaca'"
            )
        self.name = name or "the tokenizer's chat template"
        self._fold_setting = fold_system_prompt

    def _apply(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, source: str) -> str:
        try:
            return self.tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=self.template, tokenize=False)
        except Exception as err:  # jinja2 errors and the template's own raise_exception
            hint = ""
            if "_token' is undefined" in str(err):
                hint = (
                    f" (tokenizer {self.tokenizer.name_or_path!r} lacks a special token this template prints: template/tokenizer mismatch)"
                )
            raise TemplateError(f"{source}: {self.name} failed to render: {type(err).__name__}: {err}{hint}") from None

    @cached_property
    def has_system_role(self) -> bool:
        probe = [{"role": "system", "content": "S" + MARKER}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]
        try:
            return MARKER in self._apply(probe, None, "probe")
        except TemplateError:
            return False

    @cached_property
    def fold_system_prompt(self) -> bool:
        if self._fold_setting is False and not self.has_system_role:
            raise TemplateError(
                f"{self.name} has no system role and data.fold_system_prompt is false: "
                "allow folding the system prompt into the first user turn, or drop system prompts"
            )
        return self._fold_setting if self._fold_setting is not None else not self.has_system_role

    @cached_property
    def end_of_turn(self) -> str:
        """What the template writes right after an assistant message and before the next message:
        the common start of the text after a middle and after a final assistant message, cut back to a
        token boundary and without trailing whitespace (`<|im_end|>`, `<|eot_id|>`, ` </s>`, `<|end|>`):
        `<|end|>` + `<|user|>` vs `<|end|>` + `<|endoftext|>` must give `<|end|>`, not `<|end|>\n<|`."""
        turn = [{"role": "user", "content": "U"}, {"role": "assistant", "content": MARKER}]
        final = self._apply(turn, None, "end-of-turn probe").split(MARKER)[1]
        middle = self._apply(turn + [{"role": "user", "content": "V"}, {"role": "assistant", "content": "B"}], None, "end-of-turn probe")
        common = len(os.path.commonprefix([final, middle.split(MARKER)[1]]))
        token_ends = [end for _, end in self.tokenizer(final, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
        eot = final[: max((end for end in token_ends if end <= common), default=0)].rstrip()
        if not eot:
            log.warning("%s writes no end-of-turn marker after assistant messages: only their content is trained", self.name)
        return eot

    def _chat_messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        messages = list(conversation.messages)
        if messages[0].role == "system" and self.fold_system_prompt:
            system, first = messages[0], messages[1]
            messages = [dataclasses.replace(first, content=f"{system.content}\n\n{first.content}"), *messages[2:]]
        return [m.to_chat() for m in messages]

    def render(self, conversation: Conversation) -> Rendered:
        messages = self._chat_messages(conversation)
        tools = list(conversation.tools)
        text = self._apply(messages, tools, conversation.source)
        if MARKER in text:
            raise DataError(conversation.source, f"the text contains the reserved character U+{ord(MARKER):04X}")
        folded = len(conversation.messages) - len(messages)  # message numbers in errors are the record's
        spans = []
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            variant = messages[:index] + [{"role": "assistant", "content": MARKER}] + messages[index + 1 :]
            spans.append(self._message_span(text, self._apply(variant, tools, conversation.source), conversation.source, index + folded))
        return Rendered(text, tuple(spans))

    def prompt_text(self, conversation: Conversation) -> str:
        # The answer slot is rendered as a final assistant message, not with `add_generation_prompt`,
        # so what precedes an answer is byte for byte what preceded answers in training (Qwen3's
        # empty <think> block included).
        answer_slot = Conversation((*conversation.messages, Message("assistant", MARKER)), conversation.source, conversation.tools)
        text = self._apply(self._chat_messages(answer_slot), list(conversation.tools), conversation.source)
        return text[: text.index(MARKER)]

    @property
    def stop_text(self) -> str:
        return self.end_of_turn or self.tokenizer.eos_token

    def _message_span(self, text: str, variant: str, source: str, index: int) -> Span:
        """Characters of `text` that differ from `variant` (the same conversation with message
        `index` replaced by the marker), extended over the end-of-turn marker."""
        start = len(os.path.commonprefix([text, variant]))
        common_suffix = len(os.path.commonprefix([text[::-1], variant[::-1]]))
        end = len(text) - min(common_suffix, len(variant) - start)
        if end <= start or MARKER not in variant[start : len(variant) - (len(text) - end)]:
            raise DataError(
                source,
                f"field 'messages[{index}]': {self.name} did not render this assistant message (does the template support its tool calls?)",
            )
        if self.end_of_turn and text.startswith(self.end_of_turn, end):
            end += len(self.end_of_turn)
        return start, end


def make_renderer(template: str, tokenizer: PreTrainedTokenizerBase, fold_system_prompt: bool | None = None) -> Renderer:
    """`alpaca`, `chat` (the tokenizer's own template) or a path to a `.jinja` file."""
    if template == "alpaca":
        return AlpacaTemplate(tokenizer.eos_token, bos_token=bos_added_by(tokenizer))
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
