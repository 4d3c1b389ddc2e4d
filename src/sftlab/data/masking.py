"""Loss-masking strategies: which characters of a rendered conversation are trained.

A strategy answers two questions: which examples a conversation becomes (`examples`: usually the
conversation itself; `expand` makes one per assistant turn), and which character spans of each
rendered example are labels (`trained_spans`). Tokens outside those spans get label -100.

A new strategy is one subclass; configs name it by `class_path` (jsonargparse), and the built-in
ones also by their short names (`data.masking: assistant`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sftlab.data.records import Conversation
from sftlab.data.templates import Rendered, Span
from sftlab.errors import SftlabError


class MaskingStrategy:
    """Train every assistant message (the default behaviour of the two hooks)."""

    def examples(self, conversation: Conversation) -> Sequence[Conversation]:
        return [conversation]

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return rendered.assistant_spans

    def __repr__(self) -> str:  # part of the tokenization cache key
        return f"{type(self).__module__}.{type(self).__qualname__}({vars(self)})"


class TrainAll(MaskingStrategy):
    """`none`: every token is a label (pretraining-style, "train on inputs")."""

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return [(0, len(rendered.text))]


class TrainAssistant(MaskingStrategy):
    """`assistant`: every assistant turn (for Alpaca data: classic prompt-masked SFT)."""


class TrainLastAssistant(MaskingStrategy):
    """`last_assistant`: only the final assistant turn."""

    def trained_spans(self, rendered: Rendered) -> Sequence[Span]:
        return rendered.assistant_spans[-1:]


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


STRATEGIES: dict[str, type[MaskingStrategy]] = {
    "none": TrainAll,
    "assistant": TrainAssistant,
    "last_assistant": TrainLastAssistant,
    "expand": ExpandTurns,
    "prompt": TrainPrompts,
}


def make_strategy(masking: str | MaskingStrategy) -> MaskingStrategy:
    if isinstance(masking, MaskingStrategy):
        return masking
    if masking not in STRATEGIES:
        raise SftlabError(f"data.masking: unknown strategy {masking!r} (built-in: {', '.join(STRATEGIES)}; or a class_path)")
    return STRATEGIES[masking]()
