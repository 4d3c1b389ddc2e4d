"""2-process FSDP2 runs of `configs/tiny.yaml` (a sharded checkpoint after every step), compared with one
run that was never interrupted: killed with SIGKILL (every process of the run) at a random step and
relaunched with `--ckpt_path last`; and launched as two "nodes" of one process each, by torchrun
(`--nnodes 2 --node_rank N --rdzv_endpoint 127.0.0.1:PORT`) and by Lightning's own environment
(MASTER_ADDR, MASTER_PORT, NODE_RANK with `--trainer.num_nodes 2`). The resumed run ends with exactly
the uninterrupted run's weights, the two-node runs within 1e-6 (relative, per tensor)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sftlab.model.restore import restore_checkpoint
from tests.model.test_kill_resume import _config, _newest_step
from tests.test_cli import REPO

pytestmark = pytest.mark.slow
# Runs compared bit for bit, and ranks started together by torchrun, need one given precision (not each process's probe).
FSDP2 = ("--trainer.strategy", "fsdp2", "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true")


def _fit(config: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(config), "--trainer.default_root_dir", str(root), *FSDP2, *extra]


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-4000:]


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return restore_checkpoint(root / "checkpoints/last.ckpt")[0].state_dict()


def _same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], tolerance: float = 0.0) -> None:
    """Equal, or within `tolerance` relative (per tensor, 2-norm)."""
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert ((got[name] - tensor).norm() / tensor.norm()).item() <= tolerance, name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def straight(testdata, tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    tmp_path = tmp_path_factory.mktemp("fsdp2_straight")
    config = _config(tmp_path, testdata)
    _run(_fit(config, tmp_path / "run", "--trainer.devices", "2"))
    return config, _weights(tmp_path / "run")


def test_killed_at_a_random_step_then_resumed_from_the_sharded_checkpoint(straight, tmp_path):
    config, expected = straight
    root = tmp_path / "killed"
    step = random.Random(16).randrange(3, 10)
    command = _fit(config, root, "--trainer.devices", "2", "--ckpt_path", "last")
    # Its own session: the kill reaches both ranks (Lightning starts rank 1 as a child process).
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while _newest_step(root / "checkpoints") < step and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _newest_step(root / "checkpoints") < 12  # it was killed before the end
    _run(command)
    _same(_weights(root), expected)


def test_two_torchrun_nodes_of_one_process_train_like_one_node_of_two(straight, tmp_path):
    config, expected = straight
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = []
    for node_rank in (0, 1):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
        torchrun += ["--node_rank", str(node_rank), "--rdzv_endpoint", endpoint, "-m", "sftlab.cli"]
        command = torchrun + _fit(config, tmp_path / "run", "--trainer.num_nodes", "2", "--trainer.devices", "1")[3:]
        nodes.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for node in nodes:
        _, stderr = node.communicate(timeout=1200)
        assert node.returncode == 0, stderr[-4000:]
    _same(_weights(tmp_path / "run"), expected, tolerance=1e-6)  # measured 1.3e-7: another reduction order


def test_two_lightning_nodes_of_one_process_train_like_one_node_of_two(straight, tmp_path):
    config, expected = straight
    port = str(_free_port())
    command = _fit(config, tmp_path / "run", "--trainer.num_nodes", "2", "--trainer.devices", "1")
    nodes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(node_rank)},
        )
        for node_rank in (0, 1)
    ]
    for node in nodes:
        _, stderr = node.communicate(timeout=1200)
        assert node.returncode == 0, stderr[-4000:]
    _same(_weights(tmp_path / "run"), expected, tolerance=1e-6)  # measured 1.3e-7: another reduction order
