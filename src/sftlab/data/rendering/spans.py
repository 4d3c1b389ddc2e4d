"""Character spans of a rendered conversation: what each assistant message's parts are, and the
text arithmetic of the marker technique that finds them (see chat_template.py).

A rendered assistant message is a run of parts in text order, each a character span:
`reasoning`, `answer` (its content), `tool_calls`, `end_of_turn`. The parts are contiguous: text
the template writes between two parts belongs to the earlier one (Qwen3's `\\n</think>\\n\\n` closes the
reasoning), except a tool call's own opening text (`<tool_call>\\n{"name": "`), and the text between
the message's header (what `add_generation_prompt` writes) and its first part belongs to the first part
(Qwen3's `<think>\\n`): that is what the model must write. Except where the template writes another
message's text between two parts (Gemma-4 writes the tool results inside the model turn, between the calls
and the answer): the model does not write that, so the earlier part ends with its own text, the later one
begins after it as a message's first part does, and what lies between (the results and what wraps them)
is no part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, get_args

Span = tuple[int, int]
Part = Literal["reasoning", "answer", "tool_calls", "end_of_turn"]
PARTS: tuple[Part, ...] = get_args(Part)


TurnKind = Literal["answer", "tool_calls"]


def turn_kind(parts: tuple[tuple[Part, Span], ...] | list[tuple[Part, Span]]) -> TurnKind:
    """What a turn with these parts ends with: tool calls, or an answer (its reasoning, where it has nothing else)."""
    written = [name for name, _ in parts if name != "end_of_turn"]
    return "tool_calls" if written[-1:] == ["tool_calls"] else "answer"


@dataclass(frozen=True)
class Turn:
    """One assistant message as rendered: `message` is its index in the conversation's messages,
    `parts` its parts in text order, `missing` the parts it has in the data that the template did not
    render (DeepSeek-R1 drops reasoning; Qwen3 drops the reasoning of turns before the last user turn),
    `stop` the text that ends it, the last thing the model writes in it: its end-of-turn part, or the end of
    its tool calls where their closing text ends the turn (gpt-oss `<|call|>`); None where the text has no
    stop after it (gpt-oss writes an earlier answer's `<|return|>` as `<|end|>`, which is not a stop)."""

    message: int
    parts: tuple[tuple[Part, Span], ...]
    missing: tuple[Part, ...] = ()
    stop: Span | None = None

    @property
    def kind(self) -> TurnKind:
        return turn_kind(self.parts)

    @property
    def span(self) -> Span:
        """Its bounds: from its first part (after the header) through its end-of-turn marker, other
        messages' text written inside it included (see `spans`)."""
        return self.parts[0][1][0], self.parts[-1][1][1]

    @property
    def spans(self) -> tuple[Span, ...]:
        """What the message writes: its parts, joined where they touch; more than one span where the
        template writes another message's text between two parts (Gemma-4's tool results), which the
        model does not write and must not learn."""
        runs: list[Span] = []
        for _, (start, end) in self.parts:
            if runs and runs[-1][1] == start:
                start = runs.pop()[0]
            runs.append((start, end))
        return tuple(runs)

    def spans_of(self, *names: Part) -> list[Span]:
        return [span for name, span in self.parts if name in names]


@dataclass(frozen=True)
class Rendered:
    """A conversation as text; `turns[i]` is the i-th assistant message. `literal_spans` are the
    places where the data itself holds a special token's text (a user writing `<|im_end|>`): they are
    tokenized as plain text, so data can never forge the template's own markers."""

    text: str
    turns: tuple[Turn, ...]
    literal_spans: tuple[Span, ...] = ()

    @property
    def assistant_spans(self) -> tuple[Span, ...]:
        """What the assistant messages write, end-of-turn markers included, in text order: each
        message's `Turn.spans` (one span per message, except around text of other messages inside it)."""
        return tuple(span for turn in self.turns for span in turn.spans)


def changed_span(text: str, variant: str, marker: str) -> Span | None:
    """The characters of `text` that differ from `variant`, the same render with one thing replaced
    by `marker`; None when the template did not render that thing (no marker among the differences)."""
    start = len(os.path.commonprefix([text, variant]))
    suffix = len(os.path.commonprefix([text[::-1], variant[::-1]]))
    suffix = min(suffix, len(text) - start, len(variant) - start)
    if marker not in variant[start : len(variant) - suffix]:
        return None
    return start, len(text) - suffix


def substituted(variant: str, values: dict[str, str]) -> tuple[str, list[tuple[str, int]]]:
    """`variant` with each marker character replaced by its value, and where each marker's value
    landed in the result, in text order (the way back from a marker render to the real one)."""
    pieces: list[str] = []
    found: list[tuple[str, int]] = []
    length = 0
    for char in variant:
        value = values.get(char)
        if value is not None:
            found.append((char, length))
        piece = char if value is None else value
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces), found


def overlap_length(glue: str, opener: str) -> int:
    """The length of the longest end of `opener` that `glue` ends with."""
    for k in range(min(len(glue), len(opener)), 0, -1):
        if glue.endswith(opener[-k:]):
            return k
    return 0


def first_part_start(text: str, core_start: int, openers: list[str], header: str, floor: int) -> int:
    """Where an assistant message's trained text begins: right after its `header` (what the generation
    prompt writes), the last one between `floor` (the previous message's end) and its first part's core,
    whatever the template writes between the two (Nemotron-3's `</think>\n\n` of an earlier turn); where no
    header precedes (Gemma-4 continues a model turn after tool results), the longest end of an opener
    (what the template writes between the header and such a part; the first of `openers` that fits)."""
    at = text.rfind(header, floor, core_start) if header else -1
    if at >= 0:
        return at + len(header)
    for opener in openers:
        for k in range(min(len(opener), core_start - floor), 0, -1):
            if text[core_start - k : core_start] == opener[-k:]:
                return core_start - k
    return core_start


def assemble_parts(text: str, cores: dict[Part, Span], start: int, call_opener: str) -> list[tuple[Part, Span]]:
    """Contiguous parts from their cores (the exact characters of each), in text order: the first part
    begins at `start`, the text between two parts goes to the earlier one except the tool calls' own
    opening text (the longest end of `call_opener` found there)."""
    parts: list[tuple[Part, Span]] = []
    for name, (core_start, core_end) in sorted(cores.items(), key=lambda item: item[1]):
        if not parts:
            parts.append((name, (start, core_end)))
            continue
        previous_name, (previous_start, previous_end) = parts[-1]
        begin = max(core_start, previous_end)
        if name == "tool_calls":
            begin -= overlap_length(text[previous_end:begin], call_opener)
        parts[-1] = (previous_name, (previous_start, begin))
        if core_end > begin:
            parts.append((name, (begin, core_end)))
    return parts
