"""The ablation's data: disjoint, deterministic splits per source; the reasoning problems are right and
rendered as reasoning; the tool template renders chats exactly as SmolLM2's own template and trains tool
calls, never tool results."""

from __future__ import annotations

import json
import re

from experiments.masking_ablation.reasoning_data import answer_key, problems
from experiments.masking_ablation.runner import REPO
from experiments.masking_ablation.sources import SIZES, SOURCES, load_source, prepare_data
from sftlab.data.formats.records import Conversation
from sftlab.data.labels.masking import make_strategy
from sftlab.data.labels.tokenize import IGNORE_INDEX, tokenize_conversations
from sftlab.data.rendering.templates import make_renderer

TEMPLATE = str(REPO / "experiments/masking_ablation/data/smollm2_tools.jinja")


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_splits_are_disjoint_sized_and_the_same_every_time(testdata, tmp_path):
    paths = prepare_data("smoke", tmp_path / "a", testdata)
    again = prepare_data("smoke", tmp_path / "b", testdata)
    assert all(paths[key].read_text() == again[key].read_text() for key in paths)
    train = {json.dumps(r, sort_keys=True) for r in records(paths["train"])}
    sizes = SIZES["smoke"]
    assert len(train) == sizes.train * 3 + sizes.train * 3  # oasst, fastchat, tools; three reasoning problems per slot
    curve = [json.dumps(r, sort_keys=True) for r in records(paths["curve"])]
    for source in SOURCES:
        heldout = {json.dumps(r, sort_keys=True) for r in records(paths[f"heldout/{source}"])}
        assert len(heldout) == (sizes.heldout_reasoning if source == "reasoning" else sizes.heldout)
        assert not heldout & train
        assert sum(r in heldout for r in curve) == sizes.curve  # the validation split: the first held-out records


def test_reasoning_problems_are_distinct_deterministic_and_right():
    generated = problems(70)
    assert generated == problems(70) and len({r["messages"][0]["content"] for r in generated}) == 70
    for record in generated:
        reasoning, answer = record["messages"][1]["reasoning_content"], record["messages"][1]["content"]
        last_line = reasoning.splitlines()[-1]
        for left, right in re.findall(r"(\d+ [-+×] \d+) = (\d+)", reasoning):
            a, op, b = left.split()
            assert {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op] == int(right), reasoning
        assert answer_key(answer) in last_line, (reasoning, answer)


def test_the_tool_template_renders_chats_as_smollm2s_own_and_reasoning_as_a_think_block(testdata, smollm2_tokenizer):
    ours, theirs = make_renderer(TEMPLATE, smollm2_tokenizer), make_renderer("chat", smollm2_tokenizer)
    for row in load_source("oasst", 0, testdata)[:5] + load_source("fastchat", 0, testdata)[:5]:
        conversation = Conversation.from_row(_row(row))
        assert ours.render(conversation).text == theirs.render(conversation).text
    rendered = ours.render(Conversation.from_row(_row(problems(1)[0])))
    (turn,) = rendered.turns
    assert [name for name, _ in turn.parts] == ["reasoning", "answer", "end_of_turn"]
    assert rendered.text[slice(*turn.spans_of("reasoning")[0])].startswith("<think>\n")


def test_tool_calls_are_trained_and_tool_results_never(smollm2_tokenizer):
    renderer = make_renderer(TEMPLATE, smollm2_tokenizer)
    rows = [_row(r) for r in load_source("tools", 0) if any(m.get("tool_calls") for m in r["messages"])][:10]
    batch = {key: [row[key] for row in rows] for key in rows[0]}
    for masking, calls_trained in (("assistant", True), ("tool_calls_only", True), ("answer_only", False)):
        out = tokenize_conversations(
            batch, renderer=renderer, strategy=make_strategy(masking), tokenizer=smollm2_tokenizer, max_seq_length=512, weighted=False
        )
        trained = "".join(smollm2_tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) for labels in out["labels"])
        assert ("<tool_call>" in trained or '"name": "' in trained) == calls_trained, masking
        assert "<tool_response>" not in trained and "tool_response" not in trained


def _row(record: dict) -> dict:
    from sftlab.data.formats.messages import Messages
    from sftlab.data.formats.readers import read_record

    return read_record(record, "test record", Messages()).to_row()
