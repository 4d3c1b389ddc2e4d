"""Kill -9 at random steps and resume with `--ckpt_path last`: the same final weights as a run that was
never interrupted (packing and length grouping on); a corrupt `last.ckpt` falls back to the newest
readable checkpoint."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from sftlab.artifacts import read_checkpoint
from tests.test_cli import REPO


def _config(tmp_path: Path, testdata: Path) -> Path:
    """tiny.yaml with a checkpoint after every step, all kept, and 12 steps over 6 epochs."""
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    config["trainer"]["precision"] = "32-true"  # runs compared bit for bit: one given precision, not each run's probe
    config["data"].update(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"),
        batching={"batch_size": 2, "group_by_length": True},
        cache_dir=str(tmp_path / "cache"),
    )
    config["trainer"].update(enable_progress_bar=False)
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"].endswith("Checkpoints"):
            callback["init_args"] = {"every_n_train_steps": 1, "keep": -1}
    path = tmp_path / "tiny_every_step.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _command(config: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(config), "--trainer.default_root_dir", str(root), *extra]


def _newest_step(folder: Path) -> int:
    steps = [int(m.group(1)) for p in folder.glob("step-*.ckpt") if (m := re.match(r"step-(\d+)", p.name))]
    return max(steps, default=0)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def straight(testdata, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("straight")
    config = _config(tmp_path, testdata)
    result = subprocess.run(_command(config, tmp_path / "run"), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return config, tmp_path / "run/checkpoints"


def _temporary_folder(tmp_path: Path) -> Path:
    """A $TMPDIR on another filesystem than the run when the machine has one (/dev/shm): a checkpoint
    staged there is moved by copying, which a kill leaves half done."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        folder = shm / f"sftlab-test-{os.getpid()}-{tmp_path.name}"
    else:
        folder = tmp_path / "tmpdir"
    folder.mkdir()
    return folder


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_killed_at_random_steps_then_resumed_ends_with_the_same_weights(straight, tmp_path):
    config, expected = straight
    root = tmp_path / "killed"
    rng = random.Random(7)
    kill_after = sorted(rng.sample(range(2, 11), 3))
    temporary = _temporary_folder(tmp_path)
    env = {**os.environ, "TMPDIR": str(temporary)}
    for step in kill_after:
        process = subprocess.Popen(
            _command(config, root, "--ckpt_path", "last"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        while _newest_step(root / "checkpoints") < step and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for checkpoint in (root / "checkpoints").glob("*.ckpt"):  # every checkpoint file is whole
            read_checkpoint(checkpoint)
    result = subprocess.run(_command(config, root, "--ckpt_path", "last"), cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    leftovers = [p.name for p in temporary.iterdir() if p.stat().st_size > 1_000_000]
    shutil.rmtree(temporary)
    assert not leftovers  # no checkpoint-sized temporary left in $TMPDIR by the kills
    assert not list((root / "checkpoints").glob(".*"))  # temporaries beside the checkpoints are cleaned up
    resumed, reference = _weights(root / "checkpoints/last.ckpt"), _weights(expected / "last.ckpt")
    assert all(torch.equal(resumed[name], tensor) for name, tensor in reference.items())


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_one(straight, tmp_path):
    config, expected = straight
    folder = tmp_path / "run/checkpoints"
    folder.mkdir(parents=True)
    for step in range(9, 12):
        shutil.copy(expected / f"step-{step:08d}.ckpt", folder)
    data = (expected / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])  # what a full disk could leave
    (folder / f"step-{11:08d}.ckpt").write_bytes(b"")  # and an empty file
    result = subprocess.run(
        _command(config, tmp_path / "run", "--ckpt_path", "last"),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"checkpoint .*last\.ckpt is corrupt or partial", result.stderr)
    assert re.search(r"resuming from .*step-00000010\.ckpt", result.stderr)
    resumed, reference = _weights(folder / "last.ckpt"), _weights(expected / "last.ckpt")
    assert all(torch.equal(resumed[name], tensor) for name, tensor in reference.items())
