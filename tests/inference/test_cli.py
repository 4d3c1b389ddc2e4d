"""`sftlab generate` and `sftlab chat` through the real command (chat in a real pseudo-terminal)."""

from __future__ import annotations

import json
import os
import sys

import pexpect
import pytest

from tests.test_cli import REPO, sftlab


@pytest.mark.slow
def test_generate_writes_answers_for_a_dataset_with_references(smollm2_gguf, tmp_path):
    output = tmp_path / "answers.jsonl"
    result = sftlab(
        "generate",
        "--model",
        str(smollm2_gguf),
        "--data",
        str(REPO / "data/demo/alpaca_sample.json"),
        "--limit",
        "3",
        "--max_new_tokens",
        "24",
        "--batch_size",
        "3",
        "--output",
        str(output),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert row["answer"] and row["reference"] and row["answer_tokens"] <= 24
        assert row["rendered_prompt"].endswith("<|im_start|>assistant\n") and row["prompt"] in row["rendered_prompt"]
        assert row["finish_reason"] in ("stop", "length") and row["seconds"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--prompts", "EMPTY"), "holds no prompts"),
        (("--prompt", "hi", "--prompts", "EMPTY"), "exactly one of --prompt, --prompts FILE, --data FILE"),
    ],
    ids=["empty-prompts-file", "two-sources"],
)
def test_generate_input_errors_are_one_line(smollm2_gguf, tmp_path, args, message):
    (tmp_path / "empty.txt").write_text("\n\n")
    args = tuple(str(tmp_path / "empty.txt") if a == "EMPTY" else a for a in args)
    result = sftlab("generate", "--model", str(smollm2_gguf), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.splitlines()[-1]


def test_generate_with_a_missing_model_is_one_line(tmp_path):
    result = sftlab("generate", "--model", str(tmp_path / "nope"), "--prompt", "hi")
    assert result.returncode == 2 and result.stderr.splitlines()[-1] == f"sftlab: error: model: no such file or folder: {tmp_path / 'nope'}"


@pytest.mark.slow
def test_chat_in_a_terminal_keeps_history_and_resets(smollm2_gguf):
    chat = pexpect.spawn(
        sys.executable,
        ["-m", "sftlab.cli", "chat", "--model", str(smollm2_gguf), "--max_new_tokens", "24"],
        cwd=str(REPO),
        encoding="utf-8",
        timeout=None,  # each expect waits as long as the model takes: no wall-clock limit
        env=dict(os.environ),
    )
    try:
        chat.expect("you> ")
        chat.sendline("My name is Ada.")
        chat.expect("assistant> ")
        chat.expect("you> ")
        chat.sendline("What is my name?")
        chat.expect("you> ")
        chat.sendline("/history")
        chat.expect(r"\((\d+) messages\)")
        assert chat.match.group(1) == "4"
        chat.expect("user: My name is Ada.")
        chat.expect("user: What is my name?")
        chat.expect("you> ")
        chat.sendline("/reset")
        chat.expect(r"\(conversation cleared\)")
        chat.sendline("/history")
        chat.expect(r"\(0 messages\)")
        chat.sendline("/exit")
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0
