"""Token anatomy for `sftlab inspect`: the kind of every token, the facts of every assistant turn, and
the statistics over examples, on real templates."""

from __future__ import annotations

import pytest

from sftlab.data.anatomy import AnatomyStats, examples_anatomy
from sftlab.data.masking import make_strategy
from sftlab.data.templates import ChatTemplate
from sftlab.data.tokenize import IGNORE_INDEX
from tests.data.test_parts import REASONING, TOOLS_CONVERSATION


def _anatomy(renderer, tokenizer, conversation, masking: str, max_seq_length: int = 1024):
    return examples_anatomy(
        conversation.to_row(), renderer=renderer, strategy=make_strategy(masking), tokenizer=tokenizer, max_seq_length=max_seq_length
    )


@pytest.mark.shared
def test_kinds_and_turn_facts_under_answer_only(shared, tokenizers):
    tokenizer = tokenizers["qwen3"]
    renderer = ChatTemplate(tokenizer, (shared / "chat_templates/qwen3.jinja").read_text())
    (example,) = _anatomy(renderer, tokenizer, TOOLS_CONVERSATION, "answer_only")
    trained = {kind for kind, label in zip(example.kinds, example.labels) if label != IGNORE_INDEX}
    assert trained == {"assistant:answer", "assistant:end_of_turn"}
    assert {"system", "user", "tool", "template", "assistant:tool_calls"} <= set(example.kinds)
    calls, answer = example.turns
    assert (calls.selected, calls.trained_tokens, calls.end_of_turn) == (False, 0, "not trained")
    assert answer.selected and answer.trained_tokens > 5 and answer.end_of_turn == "trained"
    decoded = tokenizer.decode([token for token, kind in zip(example.input_ids, example.kinds) if kind == "tool"])
    assert decoded.strip() == '{"temperature": 21}'


@pytest.mark.shared
def test_statistics_count_turns_missing_parts_and_flag_turns_that_train_nothing(shared, tokenizers):
    tokenizer = tokenizers["qwen3"]
    stats = AnatomyStats()
    r1 = ChatTemplate(tokenizer, (shared / "chat_templates/deepseek-r1-distill.jinja").read_text())
    for example in _anatomy(r1, tokenizer, REASONING, "assistant"):
        stats.add(example)
    assert stats.missing == {"reasoning": 2} and stats.turns["end-of-turn marker trained"] == 2
    qwen3 = ChatTemplate(tokenizer, (shared / "chat_templates/qwen3.jinja").read_text())
    for example in _anatomy(qwen3, tokenizer, TOOLS_CONVERSATION, "assistant", max_seq_length=180):  # the answer is cut off
        stats.add(example)
    assert stats.turns["selected but nothing trained"] == 1 and stats.turns["assistant turns"] == 4
    report = "\n".join(stats.lines())
    assert "reasoning given but not rendered by the template: 2 turns" in report
    assert "turn trains nothing: test field 'messages[4]' (nothing left within max_seq_length)" in report
    assert stats.trained["assistant:tool_calls"] > 0 and stats.trained["tool"] == 0
