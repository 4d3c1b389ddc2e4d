"""Processes sftlab forks (tokenization workers of `data.num_proc`, the queue manager `datasets` starts) die
with a killed sftlab instead of running on for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import REPO


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and relies on PR_SET_PDEATHSIG")
def test_killing_a_run_during_tokenization_leaves_no_worker_behind(testdata, tmp_path):
    data = tmp_path / "big.jsonl"
    record = {"messages": [{"role": "user", "content": "Tell me about the sea. " * 20}, {"role": "assistant", "content": "Waves. " * 60}]}
    data.write_text((json.dumps(record) + "\n") * 40_000)
    command = [sys.executable, "-m", "sftlab.cli", "inspect", "--data.train_path", str(data), "--data.num_proc", "2"]
    command += ["--data.tokenizer", str(testdata / "tokenizers/smollm2-135m-instruct"), "--data.cache_dir", str(tmp_path / "cache")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    workers: set[int] = set()
    while len(workers) < 2 and process.poll() is None:  # the pool's workers appear once tokenizing starts
        workers = _children(process.pid)
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before its tokenization workers could be seen"
    time.sleep(1.0)  # let the workers start working on their share
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 120
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their killed parent"
