"""`sftlab self-instruct`'s options come from signatures: every documented flag and `--config FILE`
build the same run; Ctrl-C stops with one line, exit 130 and a whole log that the same command
continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml

from sftlab.selfinstruct.backends import Decoding
from sftlab.selfinstruct.cli import INTERRUPTED, root_dataclass, self_instruct_parser
from sftlab.selfinstruct.pipeline import Settings
from tests.selfinstruct.test_self_instruct import holding_after
from tests.test_cli import REPO

# Every option the README documents, with a value other than its default.
VALUES = {
    "seed_tasks": "seeds.jsonl",
    "output": "regen.json",
    "num_instructions": 7,
    "num_prompt_instructions": 2,
    "request_batch_size": 3,
    "num_tasks": 9,
    "similarity_threshold": 0.6,
    "seed": 5,
    "prompt_file": "prompt.txt",
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 100,
    "stop": ["\n10."],
    "workers": 8,
    "backend": "local",
    "openai": {
        "base_url": "http://host:8000/v1",
        "model": "m",
        "api": "completions",
        "api_key_env": "KEY",
        "max_retries": 2,
        "timeout": 3.0,
    },
    "local": {"model": "model.gguf", "batch_size": 2, "device": "cuda"},
}


def _flags(values: dict, prefix: str = "") -> list[str]:
    flags = []
    for key, value in values.items():
        if isinstance(value, dict):
            flags += _flags(value, f"{key}.")
        else:
            flags += [f"--{prefix}{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    return flags


def test_documented_flags_and_a_config_file_build_the_same_run(tmp_path):
    from_flags = self_instruct_parser().parse_args(_flags(VALUES))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(VALUES))
    from_file = self_instruct_parser().parse_args(["--config", str(tmp_path / "run.yaml")])
    assert (
        root_dataclass(Settings, from_flags)
        == root_dataclass(Settings, from_file)
        == Settings("seeds.jsonl", "regen.json", 7, 2, 3, 9, 0.6, 5, "prompt.txt")
    )
    assert root_dataclass(Decoding, from_flags) == root_dataclass(Decoding, from_file) == Decoding(0.5, 0.9, 100, ("\n10.",))
    for config in (from_flags, from_file):
        assert config.backend == "local" and config.local.as_dict() == VALUES["local"]
        assert config.openai.as_dict() == {**VALUES["openai"], "concurrency": 8}  # --workers


def test_ctrl_c_stops_with_one_line_and_the_same_command_continues(testdata, openai_stub, tmp_path):
    reply, release = holding_after(3)  # 15 tasks, then the run waits until it has been interrupted
    stub = openai_stub(reply)
    output = tmp_path / "regen.json"
    command = [sys.executable, "-m", "sftlab.cli", "self-instruct", "--seed_tasks", str(testdata / "data/seed_tasks.jsonl")]
    command += ["--output", str(output), "--num_instructions", "40", "--request_batch_size", "2", "--workers", "2"]
    command += ["--openai.base_url", stub.url, "--openai.model", "stub", "--openai.api", "completions"]
    log = tmp_path / "regen.accepted.jsonl"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    while process.poll() is None and (not log.exists() or log.read_text().count("\n") < 10):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    release.set()  # requests still in flight return, so the run's threads can end
    stderr = process.communicate()[1]
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.splitlines()[-1] == INTERRUPTED
    text = log.read_text()
    before = [json.loads(line)["instruction"] for line in text.split("\n")[:-1]]
    assert text.endswith("\n") and 10 <= len(before) < 40 and not output.exists()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    final = [record["instruction"] for record in json.loads(output.read_text())]
    assert len(set(final)) == 40 and final[: len(before)] == before
