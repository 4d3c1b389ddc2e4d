"""The self-instruct loop's log: tasks holding Unicode line separators survive it, and each record
names its true nearest instruction."""

from __future__ import annotations

import json

from rouge_score import rouge_scorer

from sftlab.selfinstruct.similarity import rouge_tokens
from tests.selfinstruct.test_self_instruct import block, endless_tasks
from tests.test_cli import sftlab

SEPARATORS = "\u2028\u2029\u0085"


def run(testdata, stub, output, count: int):
    return sftlab(
        "self-instruct",
        "--seed_tasks",
        str(testdata / "data/seed_tasks.jsonl"),
        "--output",
        str(output),
        "--num_instructions",
        str(count),
        "--request_batch_size",
        "1",
        "--workers",
        "1",
        "--openai.base_url",
        stub.url,
        "--openai.model",
        "stub",
        "--openai.api",
        "completions",
    )


def test_tasks_with_unicode_line_separators_are_kept_and_read_back(testdata, openai_stub, tmp_path):
    outputs = [f"First line{separator}second line." for separator in SEPARATORS]
    instructions = [
        "Rewrite this sentence as a question.",
        "Name three rivers that flow through Germany.",
        "Suggest a title for a story about dragons.",
    ]
    tasks = [block(4 + i, instruction, output=text) for i, (instruction, text) in enumerate(zip(instructions, outputs))]
    text = "\n###\n".join(tasks)
    stub = openai_stub(lambda body, number: (200, text[len("4. Instruction:") :]))
    output = tmp_path / "regen.json"
    first = run(testdata, stub, output, 3)
    assert first.returncode == 0, first.stderr[-2000:]
    assert [record["output"] for record in json.loads(output.read_text())] == outputs
    assert len((tmp_path / "regen.accepted.jsonl").read_bytes().split(b"\n")) == 4  # 3 lines, separators inside them
    again = run(testdata, stub, output, 3)  # the log is read back: nothing to add
    assert again.returncode == 0 and "kept 3 instructions (0 new, 3 from the earlier run)" in again.stderr, again.stderr[-2000:]


def test_each_kept_task_records_its_true_nearest_instruction(testdata, openai_stub, tmp_path):
    stub = openai_stub(endless_tasks)
    result = run(testdata, stub, tmp_path / "regen.json", 30)
    assert result.returncode == 0, result.stderr[-2000:]
    earlier = [json.loads(line)["instruction"] for line in (testdata / "data/seed_tasks.jsonl").read_text().split("\n") if line]
    nonzero = 0
    for line in (tmp_path / "regen.accepted.jsonl").read_text().split("\n")[:-1]:
        record = json.loads(line)
        tokens = rouge_tokens(record["instruction"])
        scores = {text: rouge_scorer._score_lcs(tokens, rouge_tokens(text)).fmeasure for text in earlier}
        assert record["max_similarity"] == round(max(scores.values()), 4)
        assert record["most_similar"] is not None and scores[record["most_similar"]] == max(scores.values())
        nonzero += record["max_similarity"] > 0.2
        earlier.append(record["instruction"])
    assert nonzero > 10
