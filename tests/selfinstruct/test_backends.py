"""The OpenAI-compatible backend: a prompt too long for the model is shortened, one example at a time,
down to one; what cannot be answered even then stops the run, naming the URL."""

from __future__ import annotations

from tests.test_cli import sftlab


def test_context_length_errors_shorten_the_prompt_down_to_one_example(testdata, openai_stub, tmp_path):
    stub = openai_stub(lambda body, number: (400, "This model's maximum context length is 16 tokens. Please reduce your prompt."))
    result = sftlab(
        "self-instruct",
        "--seed_tasks",
        str(testdata / "data/seed_tasks.jsonl"),
        "--output",
        str(tmp_path / "regen.json"),
        "--request_batch_size",
        "1",
        "--workers",
        "1",
        "--openai.base_url",
        stub.url,
        "--openai.api",
        "completions",
        "--openai.max_retries",
        "0",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    examples = [request["prompt"].count("###") - 1 for request in stub.requests]
    assert examples == [3, 2, 1] * 10  # each prompt tried with 3, 2 and 1 examples; 10 failed prompts in a row stop
    assert result.stderr.count("retrying with 2 example(s)") == result.stderr.count("retrying with 1 example(s)") == 10
    assert "0 example(s)" not in result.stderr  # no retry is announced that does not happen
    assert result.stderr.splitlines()[-1].startswith(
        f"sftlab: error: --openai.base_url {stub.url}: 10 requests in a row failed; last: BadRequestError"
    )
