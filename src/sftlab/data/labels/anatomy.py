"""What every token of an example is and does, for `sftlab inspect`: its kind (the content of a
`system`, `user` or `tool` message; an assistant part `assistant:reasoning`, `assistant:answer`,
`assistant:tool_calls`, `assistant:end_of_turn`; or `template` text), its label and loss weight; per
assistant turn, whether it trains anything and the stop that ends it; and statistics over a data set, with
a warning for every turn that trains text but not its stop (the model would not learn to stop there).
Built with the very functions tokenization uses, so it shows what training gets.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from sftlab.data.formats.records import Conversation
from sftlab.data.labels.masking import MaskingStrategy, WeightedSpan
from sftlab.data.labels.tokenize import IGNORE_INDEX, completion_turns, encode, example_spans, example_tokens, trainable_count
from sftlab.data.rendering.spans import Rendered, Span, Turn
from sftlab.data.rendering.templates import Renderer

TEMPLATE = "template"


@dataclass(frozen=True)
class TurnFacts:
    """One assistant turn: whether the strategy selects any of it, how many of its tokens are trained
    (within max_seq_length), what it ends with (`kind`: `answer` or `tool_calls`), its stop (`stop`: the
    text that ends it, see `Turn.stop`) and whether that stop is `trained`, `not trained` or `absent`
    (the text has none after the turn)."""

    source: str
    message: int
    selected: bool
    trained_tokens: int
    end_of_turn: str
    missing: tuple[str, ...]
    kind: str = "answer"
    stop: str = ""


@dataclass(frozen=True)
class ExampleAnatomy:
    source: str
    input_ids: list[int]
    labels: list[int]
    weights: list[float]
    kinds: list[str]
    turns: tuple[TurnFacts, ...]

    @property
    def trainable(self) -> int:
        return trainable_count(self.labels)


def examples_anatomy(
    row: dict[str, Any], *, renderer: Renderer, strategy: MaskingStrategy, tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> list[ExampleAnatomy]:
    """The examples one conversation row becomes, token by token."""
    out = []
    for example in strategy.examples(Conversation.from_row(row)):
        rendered = completion_turns(renderer.render(example), example)
        spans = example_spans(strategy, rendered, example, weighted=True)
        ((ids, offsets),) = encode(tokenizer, [rendered.text], [rendered.literal_spans])
        kept, labels, weights = example_tokens((ids, offsets), spans, max_seq_length)
        offsets = offsets[:max_seq_length]
        kinds = token_kinds(offsets, rendered, renderer.content_spans(example), example)
        turns = tuple(_turn_facts(example.source, turn, rendered.text, offsets, labels, spans) for turn in rendered.turns)
        out.append(ExampleAnatomy(example.source, kept, labels, weights, kinds, turns))
    return out


def token_kinds(offsets: list[tuple[int, int]], rendered: Rendered, contents: dict[int, Span], conversation: Conversation) -> list[str]:
    """The kind of each token: that of the region its first character is in."""
    regions = sorted(
        [(a, b, f"assistant:{name}") for turn in rendered.turns for name, (a, b) in turn.parts]
        + [(a, b, conversation.messages[index].role) for index, (a, b) in contents.items()]
    )
    starts = [start for start, _, _ in regions]
    kinds = []
    for start, _ in offsets:
        found = bisect_right(starts, start) - 1
        kinds.append(regions[found][2] if found >= 0 and regions[found][1] > start else TEMPLATE)
    return kinds


def _turn_facts(
    source: str, turn: Turn, text: str, offsets: list[tuple[int, int]], labels: list[int], spans: list[WeightedSpan]
) -> TurnFacts:
    def trained_in(a: int, b: int) -> int:
        return sum(label != IGNORE_INDEX for (start, end), label in zip(offsets, labels) if start < b and a < end)

    first, last = turn.span
    stop_state = "absent" if turn.stop is None else "trained" if trained_in(*turn.stop) else "not trained"
    stop = text[turn.stop[0] : turn.stop[1]] if turn.stop else ""
    selected = any(a < last and first < b for (a, b), _ in spans)
    return TurnFacts(source, turn.message, selected, trained_in(first, last), stop_state, turn.missing, turn.kind, stop)


KIND_NAMES = {"answer": "an answer", "tool_calls": "tool calls"}


@dataclass
class AnatomyStats:
    """Totals over many examples: tokens, trained tokens and weight per kind; assistant turns by what
    ends them (an answer or tool calls, the stop text, its state); turns that train nothing; turns that
    train text but not their stop; parts the template did not render."""

    tokens: Counter = field(default_factory=Counter)
    trained: Counter = field(default_factory=Counter)
    weight: Counter = field(default_factory=Counter)
    turns: Counter = field(default_factory=Counter)
    ends: Counter = field(default_factory=Counter)
    missing: Counter = field(default_factory=Counter)
    untrained_turns: list[TurnFacts] = field(default_factory=list)
    unstopped_turns: list[TurnFacts] = field(default_factory=list)

    def add(self, example: ExampleAnatomy) -> None:
        for kind, label, weight in zip(example.kinds, example.labels, example.weights):
            self.tokens[kind] += 1
            self.trained[kind] += label != IGNORE_INDEX
            self.weight[kind] += weight
        for turn in example.turns:
            self.turns["assistant turns"] += 1
            self.ends[(turn.kind, turn.stop, turn.end_of_turn)] += 1
            self.missing.update(turn.missing)
            if not turn.trained_tokens:
                self.turns["not selected by the strategy" if not turn.selected else "selected but nothing trained"] += 1
                self.untrained_turns.append(turn)
            elif turn.end_of_turn != "trained":
                self.unstopped_turns.append(turn)

    def lines(self, flagged: int = 5) -> list[str]:
        lines = [f"  {'tokens by kind':<28}{'tokens':>10}{'trained':>10}{'weight':>10}"]
        lines += [
            f"  {kind:<28}{self.tokens[kind]:>10,}{self.trained[kind]:>10,}{self.weight[kind]:>10,.1f}" for kind in sorted(self.tokens)
        ]
        lines += [f"  {name:<38}{count:>10,}" for name, count in sorted(self.turns.items())]
        lines += [
            f"  turns ending with {KIND_NAMES[kind]}: "
            + (f"stop {json.dumps(stop, ensure_ascii=False)} {state}" if stop else "no stop in the text")
            + f": {count:,}"
            for (kind, stop, state), count in sorted(self.ends.items())
        ]
        lines += [f"  {part} given but not rendered by the template: {count:,} turns" for part, count in sorted(self.missing.items())]
        for turn in self.untrained_turns[:flagged]:
            why = "the strategy trains none of it" if not turn.selected else "nothing left within max_seq_length"
            lines.append(f"  turn trains nothing: {turn.source} field 'messages[{turn.message}]' ({why})")
        if len(self.untrained_turns) > flagged:
            lines.append(f"  ... and {len(self.untrained_turns) - flagged:,} more turns that train nothing")
        return lines + self._unstopped_lines()

    def _unstopped_lines(self) -> list[str]:
        """The warning: turns that train text but not the stop that ends them."""
        if not self.unstopped_turns:
            return []
        first = self.unstopped_turns[0]
        why = (
            "no stop in the text after it"
            if first.end_of_turn == "absent"
            else f"its stop {json.dumps(first.stop, ensure_ascii=False)} is not trained"
        )
        return [
            f"  WARNING: {len(self.unstopped_turns):,} assistant turns train text but not the stop that ends them: the model does not "
            f"learn to stop there (first: {first.source} field 'messages[{first.message}]', {why})"
        ]
