"""`sftlab eval mtbench --limit 3` on the real SmolLM2 model, graded by a loopback judge."""

from __future__ import annotations

import json
import re

import pytest

from sftlab.evaluation.mtbench import load_questions
from tests.test_cli import sftlab


def test_packaged_questions_are_the_80_two_turn_questions(testdata):
    questions = load_questions()
    assert len(questions) == 80 and all(len(q.turns) == 2 for q in questions)
    assert [q.turns for q in questions] == [q.turns for q in load_questions(testdata / "data/mt_bench/question.jsonl")]


@pytest.mark.slow
def test_mtbench_answers_both_turns_and_summarises_the_judge(smollm2_gguf, openai_stub, tmp_path):
    first_questions = [q.turns[0] for q in load_questions()[:3]]

    def reply(body, number):
        prompt = body["messages"][1]["content"]
        if first_questions[2] in prompt and "question number 2" in prompt:
            return 200, "I refuse to rate this."  # the third question's second answer: never a rating
        return 200, f"Fine. Rating: [[{5 + ('question number 2' in prompt)}]]"

    stub = openai_stub(reply)
    output = tmp_path / "mtbench"
    result = sftlab(
        "eval",
        "mtbench",
        "--model",
        str(smollm2_gguf),
        "--limit",
        "3",
        "--max_new_tokens",
        "24",
        "--output",
        str(output),
        "--judge.base_url",
        stub.url,
        "--judge.model",
        "stub-judge",
        "--judge.rating_retries",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = [json.loads(line) for line in (output / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and all(len(row["answers"]) == 2 and all(row["answers"]) for row in answers)
    # The second turn saw the first answer: the judge was shown it as context.
    second_turn_prompts = [r["messages"][1]["content"] for r in stub.requests if "question number 2" in r["messages"][1]["content"]]
    assert any(answers[0]["answers"][0] in prompt for prompt in second_turn_prompts)

    judgments = [json.loads(line) for line in (output / "judgments.jsonl").read_text().splitlines()]
    assert len(judgments) == 6 and sum(j["rating"] is None for j in judgments) == 1
    summary = json.loads((output / "summary.json").read_text())
    assert summary["overall"] == {"turn_1": 5.0, "turn_2": 6.0, "mean": 5.4, "rated": 5, "failed": 1}
    assert "1 answer(s) got no rating" in result.stderr
    assert re.search(r"overall\s.*5\.00.*6\.00.*5\.40", result.stdout)


def test_a_wrong_judge_url_is_a_one_line_error_not_a_table_of_dashes(smollm2_gguf, openai_stub, tmp_path):
    stub = openai_stub(lambda body, number: (404, "File Not Found"))  # what a server says to a path without /v1
    bare = stub.url.removesuffix("/v1")
    output = tmp_path / "mtbench"
    args = ("--model", str(smollm2_gguf), "--limit", "1", "--max_new_tokens", "2", "--output", str(output))
    result = sftlab("eval", "mtbench", *args, "--judge.base_url", bare, "--judge.max_retries", "0")
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"sftlab: error: --judge.base_url {bare}: none of the 2 answers got a rating; last: NotFoundError")
    assert last.endswith(f"try --judge.base_url {bare}/v1") and "Traceback" not in result.stderr
    assert (output / "answers.jsonl").is_file() and not (output / "summary.json").exists()
