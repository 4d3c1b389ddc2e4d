"""What a chat template writes around an assistant message, learnt once per template by rendering
tiny probe conversations with markers (no per-template code):

- `header`: what precedes every assistant message and is the prompt, not the answer: the part of the
  generation prompt (`add_generation_prompt`) that training renders also write (`<|im_start|>assistant\\n`;
  DeepSeek-R1's generation prompt adds `<think>\\n`, its training renders do not).
- `openers[part]`: what the template writes between the header and a message that starts with that part
  (Qwen3: `<think>\\n` before reasoning, an empty `<think>\\n\\n</think>\\n\\n` before a final answer);
  `call_opener`: what opens tool calls that follow other text (`\\n<tool_call>\\n{"name": "`).
- `reasoning_field`: the message key the template reads reasoning from (`reasoning_content`,
  `thinking`), or None when it reads reasoning only inside the content (`<think>…</think>`), where
  reasoning given in a field is written into the content as a `<think>` block (said once per run).
- `reads_think_blocks`: whether a `<think>` block at the start of a content renders as the reasoning
  field does (Qwen3 reads it; Gemma-4 and gpt-oss write it as text of the answer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sftlab.data.formats.records import with_think_block
from sftlab.errors import TemplateError

ANSWER, REASONING, CALL = "\ue000", "\ue001", "\ue010"  # the answer marker; call j's name is chr(0xE010 + j)
QUESTION = "\ue002"  # the probes' user content: what the template writes after it is what precedes an answer
REASONING_FIELDS = ("reasoning_content", "thinking")

Apply = Callable[[list[dict[str, Any]], bool], str]  # (messages, add_generation_prompt) -> text, or TemplateError


def marker_call(index: int, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "function", "function": {"name": chr(ord(CALL) + index), "arguments": arguments or {}}}


@dataclass(frozen=True)
class TemplateShape:
    header: str
    openers: dict[str, str]
    call_opener: str
    reasoning_field: str | None
    reads_think_blocks: bool


def _try(apply: Apply, messages: list[dict[str, Any]], generation_prompt: bool = False) -> str | None:
    try:
        return apply(messages, generation_prompt)
    except TemplateError:
        return None


USER = {"role": "user", "content": QUESTION}


def _after_user(apply: Apply, assistant: dict[str, Any], marker: str) -> str | None:
    """What the template writes from the user's content up to `marker` in the assistant message that
    follows it (None where that is not rendered): the user turn's closing text, then the header..."""
    text = _try(apply, [USER, assistant])
    if text is None or marker not in text or QUESTION not in text:
        return None
    return text[text.index(QUESTION) + 1 : text.index(marker)]


def reasoning_field(apply: Apply) -> str | None:
    """The key a template reads reasoning from: rendered on a final answer or on a tool call (Gemma-4
    shows reasoning only beside tool calls)."""
    for field in REASONING_FIELDS:
        for extra in ({"content": "A"}, {"content": "", "tool_calls": [marker_call(0)]}):
            text = _try(apply, [USER, {"role": "assistant", field: REASONING, **extra}])
            if text is not None and REASONING in text:
                return field
    return None


def reasoning_message(field: str | None, reasoning: str, answer: str) -> dict[str, Any]:
    """An assistant message carrying reasoning the way a template with that `field` reads it."""
    if field is None:
        return {"role": "assistant", "content": with_think_block(reasoning, answer)}
    return {"role": "assistant", "content": answer, field: reasoning}


def probe_shape(apply: Apply) -> TemplateShape:
    """Learn the template's shape (see the module docstring)."""
    field = reasoning_field(apply)
    generation = _try(apply, [USER], generation_prompt=True) or ""
    prompt = generation[generation.index(QUESTION) + 1 :] if QUESTION in generation else ""
    before_answer = _after_user(apply, {"role": "assistant", "content": ANSWER}, ANSWER) or ""
    # A template without a generation prompt (it writes the same with and without): all before an answer is prompt.
    header = before_answer if generation == _try(apply, [USER]) else os.path.commonprefix([before_answer, prompt])
    befores = {
        "answer": before_answer,
        "reasoning": _after_user(apply, reasoning_message(field, REASONING, "A"), REASONING)
        or _after_user(apply, {**reasoning_message(field, REASONING, ""), "tool_calls": [marker_call(0)]}, REASONING),
        "tool_calls": _after_user(apply, {"role": "assistant", "content": "", "tool_calls": [marker_call(0)]}, CALL),
    }
    openers = {part: before[len(header) :] for part, before in befores.items() if before is not None and before.startswith(header)}
    both = _try(apply, [USER, {"role": "assistant", "content": ANSWER, "tool_calls": [marker_call(0)]}]) or ""
    call_opener = openers.get("tool_calls", "")
    if ANSWER in both and CALL in both and both.index(ANSWER) < both.index(CALL):
        call_opener = both[both.index(ANSWER) + 1 : both.index(CALL)]
    return TemplateShape(header, openers, call_opener, field, _reads_think_blocks(apply, field))


def _reads_think_blocks(apply: Apply, field: str | None) -> bool:
    if field is None:
        return True
    inline = _try(apply, [USER, {"role": "assistant", "content": with_think_block(REASONING, ANSWER)}])
    return inline is not None and inline == _try(apply, [USER, reasoning_message(field, REASONING, ANSWER)])
