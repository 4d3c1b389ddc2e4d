"""Loss-masking strategies: which characters of a rendered conversation are trained, and how much.

A strategy answers two questions: which examples a conversation becomes (`examples`: usually the
conversation itself; `expand` makes one per assistant turn), and which character spans of each
rendered example are labels and with what loss weight (`weighted_spans`; plain 0/1 strategies only
override `trained_spans`). Tokens outside those spans get label -100 and weight 0. Spans come from
`Rendered` (spans.py): per assistant message its parts `reasoning`, `answer`, `tool_calls` and
`end_of_turn`; tool results and prompts are never assistant parts, so no part strategy trains them.

A new strategy is one subclass; configs name it by `class_path` (jsonargparse), and the built-in
ones also by their short names (`data.masking: answer_only`), listed once in `STRATEGIES`.

`data.prompt_loss_weight` w > 0 wraps any strategy in `WithPromptLoss`: the strategy's tokens keep their
weights and every other token (system, user and tool turns, the template's text; under a part strategy
also the assistant parts it leaves untrained) is trained with weight w. The precedence is per token
(tokenize.py): a token the strategy trains keeps the strategy's weight even where it straddles a span's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from sftlab.data.formats.records import Conversation
from sftlab.data.rendering.spans import PARTS, Part, Rendered, Span, Turn
from sftlab.errors import SftlabError

WeightedSpan = tuple[Span, float]


class MaskingStrategy:
    """Train every assistant message (the default behaviour of the hooks).

    `weighted`: whether `weighted_spans` may return weights other than 1. Tokenization keeps a float
    `weights` column only for weighted strategies (or data with record weights), and refuses other
    weights from a strategy that does not say so."""

    weighted: bool = False
    prompt_weight: float = 0.0  # the weight of every token outside the trained spans (`WithPromptLoss`)

    def examples(self, conversation: Conversation) -> Sequence[Conversation]:
        return [conversation]

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return rendered.assistant_spans

    def weighted_spans(self, rendered: Rendered) -> Sequence[WeightedSpan]:
        """Non-overlapping `(span, weight)` pairs, weight > 0: each token overlapping a span is trained
        with that weight (the loss is Σ w·ℓ / Σ w). Default: every trained span with weight 1."""
        return [(span, 1.0) for span in self.trained_spans(rendered)]

    def __repr__(self) -> str:  # part of the tokenization cache key
        return f"{type(self).__module__}.{type(self).__qualname__}({vars(self)})"


class TrainAll(MaskingStrategy):
    """`none`: every token is a label (pretraining-style, "train on inputs")."""

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return [(0, len(rendered.text))]


class TrainAssistant(MaskingStrategy):
    """`assistant`: everything every assistant message writes: reasoning, answer, tool calls and
    end-of-turn marker (for Alpaca data: classic prompt-masked SFT)."""


class TrainLastAssistant(MaskingStrategy):
    """`last_assistant`: only the final assistant turn."""

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return [span for turn in rendered.turns[-1:] for span in turn.spans]


class ExpandTurns(TrainLastAssistant):
    """`expand`: a conversation with k assistant turns becomes k examples, each the conversation up
    to one assistant turn (rendered on its own, as the template renders such a prefix), training only
    that turn."""

    def examples(self, conversation: Conversation) -> Sequence[Conversation]:
        return [conversation.truncated_after(i) for i in conversation.assistant_indices()]


class TrainPrompts(MaskingStrategy):
    """`prompt`: everything except the assistant messages (system, user and tool turns and the template's
    text around them). Not a way to fine-tune; it measures, in `sftlab eval ppl` and the ablations, how
    well a model predicts the inputs (what training on inputs does)."""

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        bounds = [0, *(point for span in rendered.assistant_spans for point in span), len(rendered.text)]
        return [(start, end) for start, end in zip(bounds[::2], bounds[1::2]) if end > start]


class TrainParts(MaskingStrategy):
    """Chosen parts of every assistant message (or of the last one), each with a loss weight:
    `parts` maps `reasoning`, `answer`, `tool_calls`, `end_of_turn` to weights (a part left out is not
    trained). The end-of-turn marker closes the part before it, so it is trained only where that part
    is (with `answer_only`, a tool-call turn trains nothing)."""

    def __init__(self, parts: dict[Part, float] | None = None, last_turn_only: bool = False) -> None:
        parts = dict.fromkeys(PARTS, 1.0) if parts is None else dict(parts)
        unknown = sorted(set(parts) - set(PARTS))
        if unknown or any(weight < 0 for weight in parts.values()):
            raise SftlabError(f"data.masking: parts must map {', '.join(PARTS)} to weights >= 0, got {parts}")
        self.parts = parts
        self.last_turn_only = last_turn_only

    @property
    def weighted(self) -> bool:
        return any(weight not in (0.0, 1.0) for weight in self.parts.values())

    def turn_weight(self, position: int, turns: int) -> float:
        """A factor for the `position`-th of `turns` trained assistant turns (1: all alike)."""
        return 1.0

    def weighted_spans(self, rendered: Rendered) -> Sequence[WeightedSpan]:
        turns = rendered.turns[-1:] if self.last_turn_only else rendered.turns
        return [span for position, turn in enumerate(turns) for span in self._turn_spans(turn, self.turn_weight(position, len(turns)))]

    def _turn_spans(self, turn: Turn, scale: float) -> list[WeightedSpan]:
        spans, previous = [], 0.0
        for name, span in turn.parts:
            weight = self.parts.get(name, 0.0) * (previous > 0 if name == "end_of_turn" else 1.0)
            previous = weight
            if weight > 0:
                spans.append((span, weight * scale))
        return spans

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return [span for span, _ in self.weighted_spans(rendered)]


class AnswerOnly(TrainParts):
    """`answer_only`: the answers and their end-of-turn markers; reasoning and tool calls stay visible
    but are not trained."""

    def __init__(self) -> None:
        super().__init__({"answer": 1.0, "end_of_turn": 1.0})


class ReasoningAndAnswer(TrainParts):
    """`reasoning_and_answer`: reasoning, answers and end-of-turn markers, not tool calls."""

    def __init__(self) -> None:
        super().__init__({"reasoning": 1.0, "answer": 1.0, "end_of_turn": 1.0})


class ToolCallsOnly(TrainParts):
    """`tool_calls_only`: the tool calls and the end-of-turn markers after them."""

    def __init__(self) -> None:
        super().__init__({"tool_calls": 1.0, "end_of_turn": 1.0})


class LaterTurns(TrainParts):
    """`later_turns`: every part of every assistant message, weighted by position: linearly from
    `first` for the first assistant turn to 1 for the last (later turns count more)."""

    def __init__(self, first: float = 0.5) -> None:
        if first < 0:
            raise SftlabError(f"data.masking: LaterTurns.first must be >= 0, got {first}")
        super().__init__()
        self.first = first

    @property
    def weighted(self) -> bool:
        return self.first != 1.0

    def turn_weight(self, position: int, turns: int) -> float:
        return 1.0 if turns == 1 else self.first + (1.0 - self.first) * position / (turns - 1)


class WithPromptLoss(MaskingStrategy):
    """`strategy`'s examples and weighted spans, and every token it does not train with `prompt_weight` w
    (`data.prompt_loss_weight`; OpenAI's old fine-tuning API had it, Huerta-Enochian & Ko 2024 swept it).
    w = 1 with an unweighted strategy trains every token with weight 1, as `none` does."""

    def __init__(self, strategy: MaskingStrategy, prompt_weight: float) -> None:
        self.strategy = strategy
        self.prompt_weight = prompt_weight

    @property
    def weighted(self) -> bool:
        return self.strategy.weighted or self.prompt_weight != 1.0

    def examples(self, conversation: Conversation) -> Sequence[Conversation]:
        return self.strategy.examples(conversation)

    def weighted_spans(self, rendered: Rendered) -> Sequence[WeightedSpan]:
        return self.strategy.weighted_spans(rendered)


STRATEGIES: dict[str, type[MaskingStrategy]] = {
    "none": TrainAll,
    "assistant": TrainAssistant,
    "last_assistant": TrainLastAssistant,
    "expand": ExpandTurns,
    "prompt": TrainPrompts,
    "answer_only": AnswerOnly,
    "reasoning_and_answer": ReasoningAndAnswer,
    "tool_calls_only": ToolCallsOnly,
    "later_turns": LaterTurns,
}
# The short names as a type for config signatures; tests/data/labels/test_masking.py checks it equals STRATEGIES.
MaskingName = Literal[
    "none", "assistant", "last_assistant", "expand", "prompt", "answer_only", "reasoning_and_answer", "tool_calls_only", "later_turns"
]


def make_strategy(masking: str | MaskingStrategy, prompt_loss_weight: float = 0.0) -> MaskingStrategy:
    """The strategy a `data.masking` value names; with `prompt_loss_weight` > 0 wrapped in `WithPromptLoss`
    (0 gives the very strategy: same labels, weights and cache)."""
    check_prompt_loss_weight(prompt_loss_weight, "data.prompt_loss_weight")
    if not isinstance(masking, MaskingStrategy):
        if masking not in STRATEGIES:
            raise SftlabError(f"data.masking: unknown strategy {masking!r} (built-in: {', '.join(STRATEGIES)}; or a class_path)")
        masking = STRATEGIES[masking]()
    return WithPromptLoss(masking, float(prompt_loss_weight)) if prompt_loss_weight else masking


def check_prompt_loss_weight(weight: object, where: str) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
        raise SftlabError(f"{where} must be a number >= 0, got {weight!r}")
