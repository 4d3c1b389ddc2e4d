"""Strategies by short name and by class_path, as the README shows."""

from __future__ import annotations

import pytest

from sftlab.cli import inspect_parser
from sftlab.data.formats.records import Conversation, Message
from sftlab.data.labels.masking import ExpandTurns, MaskingStrategy, TrainAll, TrainAssistant, TrainLastAssistant, make_strategy
from sftlab.data.rendering.spans import Rendered, Turn
from sftlab.errors import SftlabError


class FirstAssistantOnly(MaskingStrategy):
    def trained_spans(self, rendered):
        return [span for turn in rendered.turns[:1] for span in turn.spans]


RENDERED = Rendered("abcdefghij", (Turn(1, (("answer", (2, 3)), ("end_of_turn", (3, 4)))), Turn(3, (("answer", (6, 8)),))))


def test_built_in_strategies_choose_spans():
    assert make_strategy("none").trained_spans(RENDERED) == [(0, 10)]
    assert list(make_strategy("assistant").trained_spans(RENDERED)) == [(2, 4), (6, 8)]
    assert list(make_strategy("last_assistant").trained_spans(RENDERED)) == [(6, 8)]
    assert isinstance(make_strategy("expand"), ExpandTurns)
    with pytest.raises(SftlabError, match="unknown strategy 'bogus'"):
        make_strategy("bogus")


def test_expand_makes_prefixes_ending_at_each_assistant_turn():
    conversation = Conversation(
        (Message("system", "s"), Message("user", "a"), Message("assistant", "b"), Message("user", "c"), Message("assistant", "d")), "t"
    )
    examples = ExpandTurns().examples(conversation)
    assert [len(e.messages) for e in examples] == [3, 5]
    assert all(e.messages[-1].role == "assistant" for e in examples)


def test_a_custom_strategy_is_a_class_path_in_the_config():
    parser = inspect_parser()
    config = parser.parse_args(
        [
            "--data.tokenizer",
            "t",
            "--data.train_path",
            "x",
            "--data.val_path",
            "y",
            "--data.masking",
            '{"class_path": "tests.data.labels.test_masking.FirstAssistantOnly"}',
        ]
    )
    module = parser.instantiate_classes(config).data  # the tokenizer is loaded lazily, so "t" is never read
    (train,), (val,) = module.sources["train"], module.sources["val"]
    assert isinstance(train.masking, FirstAssistantOnly) and isinstance(val.masking, FirstAssistantOnly)
    assert list(train.masking.trained_spans(RENDERED)) == [(2, 4)]
    assert {type(make_strategy(n)) for n in ("none", "assistant", "last_assistant")} == {TrainAll, TrainAssistant, TrainLastAssistant}


def test_prompt_strategy_trains_exactly_the_complement_of_assistant_spans():
    from sftlab.data.labels.masking import make_strategy

    spans = make_strategy("prompt").trained_spans(RENDERED)
    covered = sorted(set(range(len(RENDERED.text))) - {i for start, end in RENDERED.assistant_spans for i in range(start, end)})
    assert sorted(i for start, end in spans for i in range(start, end)) == covered


# One assistant turn whose template writes a tool result between its calls and its answer (Gemma-4), at 6:9.
RESULT_INSIDE = Rendered("0123456789abcdefghij", (Turn(1, (("tool_calls", (2, 6)), ("answer", (9, 12)), ("end_of_turn", (12, 14)))),))


def test_text_between_two_parts_of_a_turn_is_trained_by_no_assistant_strategy():
    assert RESULT_INSIDE.turns[0].spans == RESULT_INSIDE.assistant_spans == ((2, 6), (9, 14))
    for name in ("assistant", "last_assistant"):
        assert list(make_strategy(name).trained_spans(RESULT_INSIDE)) == [(2, 6), (9, 14)], name
    assert list(FirstAssistantOnly().trained_spans(RESULT_INSIDE)) == [(2, 6), (9, 14)]
    assert make_strategy("prompt").trained_spans(RESULT_INSIDE) == [(0, 2), (6, 9), (14, 20)]


# An assistant turn with every part, and a later one with only an answer (character positions).
PARTS = Rendered(
    "0123456789abcdefghijklmnopqrstuvwxyz",
    (
        Turn(1, (("reasoning", (2, 6)), ("tool_calls", (6, 10)), ("end_of_turn", (10, 12)))),
        Turn(3, (("reasoning", (20, 24)), ("answer", (24, 30)), ("end_of_turn", (30, 32)))),
    ),
)


def test_part_strategies_select_parts_and_the_end_of_turn_after_a_selected_part():
    assert make_strategy("answer_only").trained_spans(PARTS) == [(24, 30), (30, 32)]
    assert make_strategy("reasoning_and_answer").trained_spans(PARTS) == [(2, 6), (20, 24), (24, 30), (30, 32)]
    assert make_strategy("tool_calls_only").trained_spans(PARTS) == [(6, 10), (10, 12)]
    spans = [span for name, span in (*PARTS.turns[0].parts, *PARTS.turns[1].parts)]
    assert make_strategy("assistant").trained_spans(PARTS) == ((2, 12), (20, 32)) and spans[0][0] == 2


def test_part_weights_and_later_turns():
    from sftlab.data.labels.masking import LaterTurns, TrainParts

    weighted = TrainParts({"reasoning": 0.25, "answer": 1.0, "end_of_turn": 1.0})
    assert weighted.weighted and not make_strategy("answer_only").weighted
    assert weighted.weighted_spans(PARTS) == [((2, 6), 0.25), ((20, 24), 0.25), ((24, 30), 1.0), ((30, 32), 1.0)]
    later = LaterTurns(first=0.5)
    assert {weight for _, weight in later.weighted_spans(PARTS)} == {0.5, 1.0}
    assert [weight for span, weight in later.weighted_spans(PARTS) if span == (2, 6)] == [0.5]
    assert TrainParts(last_turn_only=True).trained_spans(PARTS) == [(20, 24), (24, 30), (30, 32)]
    with pytest.raises(SftlabError, match="parts must map"):
        TrainParts({"answers": 1.0})


def test_masking_names_are_the_registry():
    from typing import get_args

    from sftlab.data.datamodule import MaskingName as DataModuleMaskingName
    from sftlab.data.labels.masking import STRATEGIES, MaskingName

    assert get_args(MaskingName) == tuple(STRATEGIES) and DataModuleMaskingName is MaskingName
    assert all(isinstance(make_strategy(name), MaskingStrategy) for name in STRATEGIES)
