"""Strategies by short name and by class_path, as the README shows."""

from __future__ import annotations

import pytest

from sftlab.cli import inspect_parser
from sftlab.data.masking import ExpandTurns, MaskingStrategy, TrainAll, TrainAssistant, TrainLastAssistant, make_strategy
from sftlab.data.records import Conversation, Message
from sftlab.data.spans import Rendered, Turn
from sftlab.errors import SftlabError


class FirstAssistantOnly(MaskingStrategy):
    def trained_spans(self, rendered):
        return rendered.assistant_spans[:1]


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
            "--data.masking",
            '{"class_path": "tests.data.test_masking.FirstAssistantOnly"}',
        ]
    )
    module = parser.instantiate_classes(config).data  # the tokenizer is loaded lazily, so "t" is never read
    assert isinstance(module.strategies["train"], FirstAssistantOnly) and isinstance(module.strategies["val"], FirstAssistantOnly)
    assert list(module.strategies["train"].trained_spans(RENDERED)) == [(2, 4)]
    assert {type(make_strategy(n)) for n in ("none", "assistant", "last_assistant")} == {TrainAll, TrainAssistant, TrainLastAssistant}


def test_prompt_strategy_trains_exactly_the_complement_of_assistant_spans():
    from sftlab.data.masking import make_strategy

    spans = make_strategy("prompt").trained_spans(RENDERED)
    covered = sorted(set(range(len(RENDERED.text))) - {i for start, end in RENDERED.assistant_spans for i in range(start, end)})
    assert sorted(i for start, end in spans for i in range(start, end)) == covered
