"""How a chat template ends each kind of assistant turn, learnt once per template by rendering tiny probe
conversations with markers (no per-template code).

A turn's end is the last thing the model writes in it, its stop: trained with the turn, it is how the
model learns to stop. Per kind of turn (one that ends with an answer, one that ends with tool calls):

- `marker`: what the template writes after every such turn, last or not, before anything else:
  `<|im_end|>`, `<|eot_id|>`, ` </s>`, and after Nemotron-3's tool calls `\\n<|im_end|>` (whitespace between
  the content and the marker is the model's to write too). It is the common start of what follows such
  a turn in the middle of a conversation and at its end, cut where a marker can end (before whitespace).
- `last_marker`: where no marker ends every such turn, what ends the last one: gpt-oss ends its last
  answer with `<|return|>` (its stop token) and earlier ones with `<|end|>`, the form `<|return|>` takes in
  the history, which the model never writes and which is no stop token; those earlier answers have no
  stop in the text (`sftlab inspect` warns; `expand` makes each answer the last one).
- `closer_stops`: the tool calls' own closing text ends the turn (gpt-oss `}<|call|>`, Gemma-4
  `<tool_call|><|tool_response>`): the stop is trained with the calls.
- `stop_tag`: templates that write nothing after a turn (GLM-4.5): the model stops by writing the
  role tag of the message that follows (`<|user|>`, `<|observation|>` after tool calls: its stop tokens
  at inference). That tag, up to the first whitespace, ends the turn it follows; after the last turn,
  where the template writes none, it is added to the text (the one thing sftlab adds to a template's
  rendering), so every turn learns to stop.

The eos a template writes after the whole conversation (Phi-4-mini: `<|end|>` after every message and
`<|endoftext|>` after the last) is the template's padding, not something the model writes after its turn:
the probes render eos as a marker, which ends no turn unless the template writes it after every turn
(Llama-2, Mistral, Zephyr: ` </s>`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sftlab.data.rendering.spans import Span, TurnKind
from sftlab.data.rendering.template_probes import ANSWER, USER, marker_call
from sftlab.errors import TemplateError

EOS = "\ue003"  # the eos_token in these probes
NEXT = "\ue004"  # the content of the message after the probed turn

EosApply = Callable[[list[dict[str, Any]]], str]  # messages -> text with eos_token = EOS, or TemplateError


@dataclass(frozen=True)
class TurnEnd:
    marker: str = ""
    last_marker: str = ""
    closer_stops: bool = False
    stop_tag: str = ""


@dataclass(frozen=True)
class TurnEnds:
    answer: TurnEnd
    tool_calls: TurnEnd
    call_closer: str  # what closes the tool calls of a message (`}}\\n</tool_call>`), its end-of-turn marker excluded

    def of(self, kind: TurnKind) -> TurnEnd:
        return self.answer if kind == "answer" else self.tool_calls

    @property
    def by_role_tags(self) -> bool:
        return bool(self.answer.stop_tag)


def _try(apply: EosApply, messages: list[dict[str, Any]]) -> str | None:
    try:
        return apply(messages)
    except TemplateError:
        return None


def _common_suffix(a: str, b: str) -> str:
    return a[len(a) - len(os.path.commonprefix([a[::-1], b[::-1]])) :]


def cut(common: str, final: str) -> str:
    """The longest start of `common` after which `final` goes on with whitespace, eos or nothing (where
    a marker can end: `<|` is no marker of `<|end|><|user|>` and `<|return|>`), trailing whitespace dropped."""
    for end in range(len(common), 0, -1):
        following = final[end : end + 1]
        if following in ("", EOS) or following.isspace():
            return common[:end].rstrip()
    return ""


def _without_padding(tail: str) -> str:
    return tail.rstrip().removesuffix(EOS).rstrip()


def _tag(between: str) -> str:
    """The role tag that opens the next message: its text up to the first whitespace, leading whitespace kept."""
    found = re.match(r"\s*\S+", between.split(NEXT)[0])
    return found.group() if found else ""


def _answer_end(apply: EosApply) -> TurnEnd:
    final = _try(apply, [USER, {"role": "assistant", "content": ANSWER}])
    if final is None or ANSWER not in final:
        return TurnEnd()
    tail = final.split(ANSWER, 1)[1]
    middle = _try(apply, [USER, {"role": "assistant", "content": ANSWER}, {"role": "user", "content": NEXT}])
    between = middle.split(ANSWER, 1)[1].split(NEXT)[0] if middle and ANSWER in middle and NEXT in middle else None
    if between is None:
        return TurnEnd(marker=_without_padding(tail))
    if marker := cut(os.path.commonprefix([tail, between]), tail):
        return TurnEnd(marker=marker)
    if last := _without_padding(tail):
        return TurnEnd(last_marker=last)
    return TurnEnd(stop_tag=_tag(between))


def _after_arguments(apply: EosApply, after: list[dict[str, Any]]) -> str | None:
    """What the template writes after a tool call's arguments, through the end of the text: the common end
    of the renders of a call without and with arguments (followed by the messages `after`)."""
    renders = [
        _try(apply, [USER, {"role": "assistant", "content": "", "tool_calls": [marker_call(0, arguments)]}, *after])
        for arguments in ({}, {"a": "b"})
    ]
    if None in renders or renders[0] == renders[1]:
        return None
    return _common_suffix(*renders)


def _calls_end(apply: EosApply, answer: TurnEnd) -> tuple[str, TurnEnd]:
    """The call closer and how a turn that ends with tool calls ends."""
    final = _after_arguments(apply, [])
    if final is None:
        return "", TurnEnd()
    middle = _after_arguments(apply, [{"role": "tool", "content": NEXT}])
    between = middle.split(NEXT)[0] if middle and NEXT in middle else None
    closed = cut(os.path.commonprefix([final, between]), final) if between is not None else _without_padding(final)
    eot = answer.marker.strip()
    if eot and closed.endswith(eot):
        closer = closed[: len(closed) - len(eot)].rstrip()
        return closer, TurnEnd(marker=closed[len(closer) :])
    if answer.stop_tag:
        return closed, TurnEnd(stop_tag=_tag(between[len(closed) :]) if between is not None else "")
    return closed, TurnEnd(closer_stops=not _without_padding(final[len(closed) :]))


def probe_turn_ends(apply: EosApply, eos_token: str) -> TurnEnds:
    """How `apply`'s template ends turns; the eos marker in what ends them is spelt `eos_token`."""
    answer = _answer_end(apply)
    closer, calls = _calls_end(apply, answer)

    def spelt(end: TurnEnd) -> TurnEnd:
        return TurnEnd(*(text.replace(EOS, eos_token) for text in (end.marker, end.last_marker)), end.closer_stops, end.stop_tag)

    return TurnEnds(spelt(answer), spelt(calls), closer.replace(EOS, eos_token))


def matched(text: str, end: int, marker: str) -> int | None:
    """Where `marker` ends when it follows position `end` of `text`, whitespace between allowed."""
    found = re.compile(r"\s*" + re.escape(marker.lstrip())).match(text, end) if marker.strip() else None
    return found.end() if found else None


def turn_end(ends: TurnEnds, text: str, end: int, kind: TurnKind, last: bool) -> tuple[Span | None, str]:
    """The end-of-turn span of a turn of that `kind` whose parts end at `end` of `text`, and the text to
    add after it (the stop tag after the last turn of a template whose turns end by the next role tag)."""
    way = ends.of(kind)
    if way.stop_tag and last:
        tail = text[end:]
        added = way.stop_tag[len(tail) :] if way.stop_tag.startswith(tail) else way.stop_tag.lstrip() if not tail.strip() else ""
        return ((end, len(text) + len(added)), added) if added else (None, "")
    found = matched(text, end, way.marker or (way.last_marker if last else "") or way.stop_tag)
    return ((end, found), "") if found is not None else (None, "")


def closer_stop(ends: TurnEnds, text: str, end: int, kind: TurnKind) -> Span | None:
    """Where the tool calls' own closing text ends the turn (gpt-oss `}<|call|>`), that text."""
    closer = ends.call_closer
    if kind == "tool_calls" and ends.tool_calls.closer_stops and closer and text.endswith(closer, 0, end):
        return end - len(closer), end
    return None
