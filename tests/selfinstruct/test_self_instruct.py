"""`sftlab self-instruct` against a real loopback OpenAI-compatible server: exact records kept, every
reject counted, retries and prompt shortening; kill and resume without losses or duplicates; the
output trains."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from tests.test_cli import REPO, sftlab


def block(number, instruction, input_text="<noinput>", output="An answer."):
    return f"{number}. Instruction: {instruction}\n{number}. Input:\n{input_text}\n{number}. Output:\n{output}"


GOOD = [
    "Explain why the sky looks blue during a clear afternoon.",
    "Classify each animal in the list as a mammal, bird or reptile.",
    "Suggest a polite reply to a coworker who keeps interrupting meetings.",
    "Compute the compound interest on the given savings after five years.",
]
FIRST = "\n###\n".join(
    [
        " " + GOOD[0] + "\n4. Input:\n<noinput>\n4. Output:\nBecause of Rayleigh scattering.",  # continues "4. Instruction:"
        block(5, "Describe the image below in three words."),  # blacklisted
        "6. Instruction: this block lost its fields",  # malformed
        block(
            7,
            "Is there anything I can eat for a breakfast that doesn't include eggs, yet includes protein, and has roughly 700-1000 calories?",
        ),  # a seed
        block(8, "Write a program that sorts a list of numbers."),  # write a program
        block(9, '"Quoted" instructions start with punctuation here.'),  # punctuation
        block(10, "Be brief."),  # too short
        block(11, GOOD[1], "dog, eagle, lizard", "mammal, bird, reptile"),
        "12. Instruction: Summarize the following news article in two sentences.\n12. Input:\nThe city council",
    ]
)  # cut off
SECOND = "\n###\n".join(
    [
        " " + GOOD[0] + " Please.\n5. Input:\n<noinput>\n5. Output:\nScattering.",  # too similar to GOOD[0]
        block(6, GOOD[2]),
        block(7, "Ünicode first letters are not allowed in instructions."),  # non-ASCII start
        block(8, GOOD[3]),
    ]
)  # over the target


def test_exact_records_and_counted_rejects_with_retries_and_shortening(testdata, openai_stub, tmp_path):
    def reply(body, number):
        if number == 1:
            return 429, "slow down"
        if number == 2:
            return 500, "overloaded"
        if number == 3:
            return 3.0  # longer than the client's timeout
        if body["prompt"].count("###") > 3:  # 3 examples + the open header: too long for this "model"
            return 400, "This model's maximum context length is 512 tokens. Please reduce your prompt."
        answered.append(number)
        return (200, FIRST, "length") if len(answered) == 1 else (200, SECOND)

    answered: list[int] = []
    stub = openai_stub(reply)
    output = tmp_path / "regen.json"
    result = sftlab(
        "self-instruct",
        "--seed_tasks",
        str(testdata / "data/seed_tasks.jsonl"),
        "--output",
        str(output),
        "--num_instructions",
        "3",
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
        "--openai.timeout",
        "1",
        "--openai.max_retries",
        "4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(output.read_text())
    assert records == [
        {"instruction": GOOD[0], "input": "", "output": "Because of Rayleigh scattering."},
        {"instruction": GOOD[1], "input": "dog, eagle, lizard", "output": "mammal, bird, reptile"},
        {"instruction": GOOD[2], "input": "", "output": "An answer."},
    ]
    for reason, count in (
        ("blacklisted_keyword", 1),
        ("malformed", 1),
        ("too_similar", 2),
        ("write_a_program", 1),
        ("starts_with_punctuation", 1),
        ("instruction_too_short", 1),
        ("truncated", 1),
        ("starts_with_non_ascii", 1),
        ("over_target", 1),
    ):
        assert re.search(rf"rejected {reason}\s+{count}$", result.stderr, re.MULTILINE), (reason, result.stderr[-1500:])
    answered_prompts = [r for r in stub.requests if r["prompt"].count("###") <= 3]
    assert answered_prompts and all(r["path"] == "/v1/completions" for r in stub.requests)
    assert len(stub.requests) >= 6  # 429, 500 and the timeout were retried; the long prompt was shortened
    assert answered_prompts[0]["prompt"].endswith("###\n3. Instruction:")  # two examples left, so task 3 comes next

    fit = sftlab(
        "fit",
        "--config",
        "configs/tiny.yaml",
        "--data.train_path",
        str(output),
        "--data.format",
        "alpaca",
        "--data.val_path",
        "null",
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--trainer.max_steps",
        "2",
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--trainer.enable_progress_bar",
        "false",
    )
    assert fit.returncode == 0, fit.stderr[-2000:]


WORDS = [
    line.strip()
    for line in [
        "alpha",
        "bright",
        "candle",
        "desert",
        "engine",
        "forest",
        "garden",
        "harbor",
        "island",
        "jungle",
        "kettle",
        "ladder",
        "meadow",
        "needle",
        "orange",
        "pepper",
        "quiet",
        "river",
        "saddle",
        "timber",
        "umbrella",
        "valley",
        "window",
        "yellow",
        "zebra",
        "anchor",
        "basket",
        "cactus",
        "dolphin",
        "feather",
        "glacier",
        "hammer",
        "igloo",
        "jacket",
        "kitten",
        "lantern",
        "marble",
        "nutmeg",
        "oyster",
        "parrot",
        "quartz",
        "rocket",
        "spider",
        "tulip",
        "violin",
        "walnut",
        "yogurt",
        "blanket",
        "cobalt",
        "dragon",
        "ember",
        "falcon",
        "goblet",
        "hazel",
        "ivory",
        "jasmine",
        "koala",
        "lemon",
        "mango",
        "nickel",
        "olive",
        "panda",
        "raven",
        "silver",
        "thistle",
        "velvet",
        "willow",
        "badger",
        "cedar",
        "dune",
        "fossil",
        "granite",
        "heron",
        "indigo",
        "jade",
        "kelp",
        "lotus",
        "maple",
        "nectar",
        "onyx",
        "pebble",
        "quill",
    ]
]


def endless_tasks(body, number):
    rng = random.Random(number)
    first = int(re.search(r"(\d+)\. Instruction:$", body["prompt"]).group(1))
    blocks = [block(first + i, "Explain " + " ".join(rng.sample(WORDS, 9)) + ".") for i in range(5)]
    text = "\n###\n".join(blocks)
    time.sleep(0.05)
    return 200, text[len(f"{first}. Instruction:") :]


def holding_after(requests: int) -> tuple[Callable[[dict, int], tuple], threading.Event]:
    """`endless_tasks` for the first `requests` requests; later ones wait for the event. A test that stops a
    run after some tasks then stops it mid-run however slow the machine (the run cannot finish first)."""
    release = threading.Event()

    def reply(body: dict, number: int) -> tuple:
        if number > requests:
            release.wait()
        return endless_tasks(body, number)

    return reply, release


def test_kill_and_resume_loses_nothing_and_keeps_nothing_twice(testdata, openai_stub, tmp_path):
    reply, release = holding_after(6)  # 30 tasks, then the run waits until it has been killed
    stub = openai_stub(reply)
    output = tmp_path / "regen.json"
    command = [
        sys.executable,
        "-m",
        "sftlab.cli",
        "self-instruct",
        "--seed_tasks",
        str(testdata / "data/seed_tasks.jsonl"),
        "--output",
        str(output),
        "--num_instructions",
        "80",
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
    ]
    log = tmp_path / "regen.accepted.jsonl"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    while process.poll() is None and (not log.exists() or log.read_text().count("\n") < 25):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    release.set()
    assert not output.exists()  # killed before the end: no final file, only the log
    before = [json.loads(line)["instruction"] for line in log.read_text().splitlines()]
    assert 25 <= len(before) < 80
    with log.open("a") as file:
        file.write('{"instruction": "half a rec')  # what a kill in the middle of a write leaves
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "removing an incomplete last line" in result.stderr
    final = [record["instruction"] for record in json.loads(output.read_text())]
    assert len(final) == 80 and len(set(final)) == 80
    assert final[: len(before)] == before
    assert f"{80 - len(before)} new, {len(before)} from the earlier run" in result.stderr


@pytest.mark.slow
def test_local_backend_parses_tasks_from_smollm2(testdata, smollm2_gguf, tmp_path):
    import torch

    from sftlab.selfinstruct.backends import Decoding, LocalBackend
    from sftlab.selfinstruct.parse import parse_response
    from sftlab.selfinstruct.prompt import DEFAULT_PROMPT, load_seed_tasks, sample_prompt

    torch.manual_seed(0)
    backend = LocalBackend(str(smollm2_gguf), batch_size=8)
    seeds = load_seed_tasks(testdata / "data/seed_tasks.jsonl")
    rng = random.Random(0)
    prompts = [sample_prompt(DEFAULT_PROMPT.replace("{num_tasks}", "20"), seeds, 3, rng) for _ in range(8)]
    completions = backend.complete(prompts, Decoding(temperature=0.7, max_tokens=384))
    tasks = [task for c in completions for task in parse_response(c.text, c.prompt.next_number, c.stopped_on_length)[0]]
    assert len(tasks) >= 2, [c.text[:300] for c in completions]
