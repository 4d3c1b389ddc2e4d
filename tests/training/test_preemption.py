"""Preemption: SIGTERM a running fit at random steps (twice), relaunch with `--ckpt_path last` each time:
the final weights are bit-identical to an uninterrupted run, every SIGTERM ends with a non-zero status
(128 + 15) and a checkpoint at most one step behind the signal. Requeueing under SLURM is `scontrol requeue`."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sftlab.artifacts import read_checkpoint
from sftlab.training.preemption import requeue_slurm_job
from tests.test_cli import REPO


def _config(tmp_path: Path, testdata: Path) -> Path:
    """tiny.yaml for 12 steps, checkpoints only every 100 steps (so only preemption saves them mid-run)."""
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    config["data"].update(tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"), cache_dir=str(tmp_path / "cache"))
    config["trainer"].update(enable_progress_bar=False, precision="32-true")  # runs compared bit for bit: a given precision
    callbacks = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith(("HFExport", "SampleAnswers"))]
    for callback in callbacks:
        if callback["class_path"].endswith("Checkpoints"):
            callback["init_args"] = {"every_n_train_steps": 100, "keep": 1}
    config["trainer"]["callbacks"] = [*callbacks, {"class_path": "tests.training.announce.AnnounceSteps"}]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, root: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(config), "--trainer.default_root_dir", str(root), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    return subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _signal_at(process: subprocess.Popen, step: int, signum: int) -> tuple[int, str]:
    """Send `signum` once the run announces `step`; the exit status and the rest of stderr."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.strip() == f"sftlab-test: step {step}":
            process.send_signal(signum)
            break
    rest = process.stderr.read()
    return process.wait(), "".join(lines) + rest


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_sigterm_twice_then_resume_gives_the_uninterrupted_weights(testdata, tmp_path):
    config = _config(tmp_path, testdata)
    straight = _fit(config, tmp_path / "straight")
    assert straight.wait() == 0, straight.stderr.read()[-3000:]
    root = tmp_path / "preempted"
    rng = random.Random(11)
    for step in sorted(rng.sample(range(2, 11), 2)):
        status, stderr = _signal_at(_fit(config, root, "--ckpt_path", "last"), step, signal.SIGTERM)
        assert status == 128 + signal.SIGTERM, stderr[-3000:]
        assert "stopped by SIGTERM after step" in stderr and "relaunch with --ckpt_path last" in stderr and "Traceback" not in stderr
        saved = read_checkpoint(root / "checkpoints/last.ckpt")["global_step"]
        assert step <= saved <= step + 1  # at most the step under way when the signal came was still done
    final = _fit(config, root, "--ckpt_path", "last")
    assert final.wait() == 0, final.stderr.read()[-3000:]
    resumed = read_checkpoint(root / "checkpoints/last.ckpt")["state_dict"]
    reference = read_checkpoint(tmp_path / "straight/checkpoints/last.ckpt")["state_dict"]
    assert resumed.keys() == reference.keys() and all(torch.equal(resumed[name], reference[name]) for name in reference)


def test_a_slurm_job_is_requeued_by_its_id(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    scontrol = tmp_path / "bin/scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert requeue_slurm_job() == 0
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "17")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert requeue_slurm_job() == 0
    assert calls.read_text().splitlines() == ["requeue 4242", "requeue 17_3"]


@pytest.mark.parametrize("job", ["", "4242; rm -rf /"])
def test_no_usable_job_id_is_not_requeued(monkeypatch, job):
    monkeypatch.setenv("SLURM_JOB_ID", job)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert requeue_slurm_job() == 1
