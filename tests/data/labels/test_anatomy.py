"""Token anatomy for `sftlab inspect`: the kind of every token, the facts of every assistant turn, and
the statistics over examples, on real templates: with SmolLM2's tokenizer (shipped) in the default
tier, and with Qwen3's own in the `shared` tier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlab.data.formats.records import Conversation, Message, ToolCall
from sftlab.data.labels.anatomy import AnatomyStats, examples_anatomy
from sftlab.data.labels.masking import make_strategy
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.data.rendering.templates import ChatTemplate
from tests.data.rendering.test_parts import REASONING, TOOLS_CONVERSATION


def _anatomy(renderer, tokenizer, conversation, masking: str, max_seq_length: int = 1024):
    return examples_anatomy(
        conversation.to_row(), renderer=renderer, strategy=make_strategy(masking), tokenizer=tokenizer, max_seq_length=max_seq_length
    )


def _check_kinds_and_turn_facts(testdata, tokenizer) -> None:
    renderer = ChatTemplate(tokenizer, (testdata / "chat_templates/qwen3.jinja").read_text())
    (example,) = _anatomy(renderer, tokenizer, TOOLS_CONVERSATION, "answer_only")
    trained = {kind for kind, label in zip(example.kinds, example.labels) if label != IGNORE_INDEX}
    assert trained == {"assistant:answer", "assistant:end_of_turn"}
    assert {"system", "user", "tool", "template", "assistant:tool_calls"} <= set(example.kinds)
    calls, answer = example.turns
    assert (calls.selected, calls.trained_tokens, calls.end_of_turn) == (False, 0, "not trained")
    assert answer.selected and answer.trained_tokens > 5 and answer.end_of_turn == "trained"
    decoded = tokenizer.decode([token for token, kind in zip(example.input_ids, example.kinds) if kind == "tool"])
    assert decoded.strip() == '{"temperature": 21}'


def test_kinds_and_turn_facts_under_answer_only(testdata, smollm2_tokenizer):
    _check_kinds_and_turn_facts(testdata, smollm2_tokenizer)


@pytest.mark.shared
def test_kinds_and_turn_facts_with_qwen3s_own_tokenizer(testdata, tokenizers):
    _check_kinds_and_turn_facts(testdata, tokenizers["qwen3"])


def _tokens_before_last_turn(renderer, tokenizer, conversation) -> int:
    """A max_seq_length that cuts the last assistant turn off: the number of tokens that end before it
    starts (a count that depends on the tokenizer, so it is measured, not written down)."""
    rendered = renderer.render(conversation)
    start = rendered.turns[-1].span[0]
    offsets = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return sum(end <= start for _, end in offsets)


def _check_statistics(testdata, tokenizer) -> None:
    stats = AnatomyStats()
    r1 = ChatTemplate(tokenizer, (testdata / "chat_templates/deepseek-r1-distill.jinja").read_text())
    for example in _anatomy(r1, tokenizer, REASONING, "assistant"):
        stats.add(example)
    assert stats.missing == {"reasoning": 2} and stats.ends == {("answer", "<｜end▁of▁sentence｜>", "trained"): 2}
    qwen3 = ChatTemplate(tokenizer, (testdata / "chat_templates/qwen3.jinja").read_text())
    cut = _tokens_before_last_turn(qwen3, tokenizer, TOOLS_CONVERSATION)
    for example in _anatomy(qwen3, tokenizer, TOOLS_CONVERSATION, "assistant", max_seq_length=cut):  # the answer is cut off
        stats.add(example)
    assert stats.turns["selected but nothing trained"] == 1 and stats.turns["assistant turns"] == 4
    report = "\n".join(stats.lines())
    assert "reasoning given but not rendered by the template: 2 turns" in report
    assert "turn trains nothing: test field 'messages[4]' (nothing left within max_seq_length)" in report
    assert stats.trained["assistant:tool_calls"] > 0 and stats.trained["tool"] == 0


def test_statistics_count_turns_missing_parts_and_flag_turns_that_train_nothing(testdata, smollm2_tokenizer):
    _check_statistics(testdata, smollm2_tokenizer)


@pytest.mark.shared
def test_statistics_with_qwen3s_own_tokenizer(testdata, tokenizers):
    _check_statistics(testdata, tokenizers["qwen3"])


GPT_OSS_LIKE = Path(__file__).parents[1] / "chat_templates/channels.jinja"
ANSWER_CALL_ANSWER = Conversation(
    (
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "Weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", json.dumps({"city": "Paris"})),)),
        Message("tool", "21"),
        Message("assistant", "It is 21 degrees."),
    ),
    "test",
)


def test_statistics_say_what_ends_each_kind_of_turn_and_warn_where_a_turn_trains_text_but_not_its_stop(smollm2_tokenizer):
    """gpt-oss ends an earlier answer with `<|end|>`, which is not its stop (`<|return|>` is): that turn trains
    its answer and no stop, and the statistics say so; `expand`, where each answer is the last, warns of nothing."""
    renderer = ChatTemplate(smollm2_tokenizer, GPT_OSS_LIKE.read_text(), name="gpt-oss-like")
    stats = AnatomyStats()
    for example in _anatomy(renderer, smollm2_tokenizer, ANSWER_CALL_ANSWER, "assistant"):
        stats.add(example)
    assert stats.ends == {("answer", "", "absent"): 1, ("tool_calls", "}<|call|>", "trained"): 1, ("answer", "<|return|>", "trained"): 1}
    report = "\n".join(stats.lines())
    assert 'turns ending with tool calls: stop "}<|call|>" trained: 1' in report
    assert "turns ending with an answer: no stop in the text: 1" in report
    assert (
        "WARNING: 1 assistant turns train text but not the stop that ends them: the model does not learn to stop there "
        "(first: test field 'messages[1]', no stop in the text after it)"
    ) in report
    expanded = AnatomyStats()
    for example in _anatomy(renderer, smollm2_tokenizer, ANSWER_CALL_ANSWER, "expand"):
        expanded.add(example)
    assert not expanded.unstopped_turns and "WARNING" not in "\n".join(expanded.lines())
