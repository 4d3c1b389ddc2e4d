"""`sftlab inspect` on reasoning and tool data: parts, weights and the turn statistics it prints, with
Qwen3's template and SmolLM2's tokenizer (shipped; it has Qwen3's `<|im_start|>`/`<|im_end|>` as
special tokens) in the default tier, and with Qwen3's own tokenizer in the `shared` tier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlab.data.datamodule import SFTDataModule
from sftlab.inspect import run_inspect

RECORDS = [
    {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temperature": 21}'},
            {"role": "assistant", "content": "21 degrees.", "reasoning_content": "The tool said 21."},
        ],
        "weight": 2,
    },
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\nAdd.\n</think>\n\n4"}]},
]


def _module(testdata: Path, tokenizer: Path, tmp_path: Path, masking: str) -> SFTDataModule:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    return SFTDataModule(
        train_path=str(path),
        tokenizer=str(tokenizer),
        template=str(testdata / "chat_templates/qwen3.jinja"),
        masking=masking,
        cache_dir=str(tmp_path / "cache"),
    )


def _check_text_report(module: SFTDataModule, capsys) -> None:
    run_inspect(module, limit=2)
    out = capsys.readouterr().out
    assert "example 0:" in out and "example 1:" in out and "The tool said 21." in out
    what_ends_turns = (
        'turns ending with an answer: stop "<|im_end|>" trained: 2',
        'turns ending with tool calls: stop "<|im_end|>" not trained: 1',
    )
    for line in ("assistant:reasoning", "assistant:tool_calls", *what_ends_turns, "not selected by the strategy"):
        assert line in out, out
    assert "turn trains nothing: " in out and "field 'messages[1]' (the strategy trains none of it)" in out
    assert "legend:" in out


def test_inspect_prints_parts_weights_and_turn_statistics(testdata, tmp_path, capsys):
    _check_text_report(_module(testdata, testdata / "tokenizers/smollm2-135m-instruct", tmp_path, "answer_only"), capsys)


@pytest.mark.shared
def test_inspect_prints_parts_weights_and_turn_statistics_with_qwen3s_tokenizer(testdata, shared, tmp_path, capsys):
    _check_text_report(_module(testdata, shared / "tokenizers/qwen3", tmp_path, "answer_only"), capsys)


def _check_json(module: SFTDataModule, capsys) -> None:
    run_inspect(module, limit=2, as_json=True)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(row["kinds"]) for row in rows] == [len(row["input_ids"]) for row in rows] == [len(row["weights"]) for row in rows]
    first = rows[0]
    weights = {kind: {w for w, k in zip(first["weights"], first["kinds"]) if k == kind} for kind in set(first["kinds"])}
    assert weights["assistant:reasoning"] == {2.0} and weights["assistant:tool_calls"] == {0.0}  # the record weighs 2
    assert weights["tool"] == {0.0} and weights["user"] == {0.0}


def test_inspect_json_gives_weights_and_the_kind_of_every_token(testdata, tmp_path, capsys):
    _check_json(_module(testdata, testdata / "tokenizers/smollm2-135m-instruct", tmp_path, "reasoning_and_answer"), capsys)


@pytest.mark.shared
def test_inspect_json_with_qwen3s_tokenizer(testdata, shared, tmp_path, capsys):
    _check_json(_module(testdata, shared / "tokenizers/qwen3", tmp_path, "reasoning_and_answer"), capsys)


def test_inspect_reads_each_source_as_fit_does_with_its_own_masking(testdata, tmp_path, capsys):
    """inspect takes the very path of training: a source's own masking (not data.masking) decides its labels."""
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    settings = {"tokenizer": str(testdata / "tokenizers/smollm2-135m-instruct"), "template": str(testdata / "chat_templates/qwen3.jinja")}
    module = SFTDataModule(
        sources=[{"path": str(path), "masking": "answer_only"}], masking="assistant", cache_dir=str(tmp_path / "c"), **settings
    )
    run_inspect(module, limit=2, as_json=True)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    reasoning = {w for row in rows for w, k in zip(row["weights"], row["kinds"]) if k == "assistant:reasoning"}
    assert reasoning == {0.0}  # answer_only, the source's: reasoning is shown, not trained
    module.setup("fit")
    assert [row["labels"] for row in rows] == module.datasets["train"]["labels"]  # what fit trains, token for token
