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
import subprocess
import sys
import time

import pytest

from tests.model.test_kill_resume import _newest_step
from tests.test_cli import REPO
from tests.training.fsdp2_runs import fit_command, free_port, run, same, weights

pytestmark = pytest.mark.slow


def test_killed_at_a_random_step_then_resumed_from_the_sharded_checkpoint(fsdp2_straight, tmp_path):
    config, straight = fsdp2_straight
    root = tmp_path / "killed"
    step = random.Random(16).randrange(3, 10)
    command = fit_command(config, root, "--trainer.devices", "2", "--ckpt_path", "last")
    # Its own session: the kill reaches both ranks (Lightning starts rank 1 as a child process).
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while _newest_step(root / "checkpoints") < step and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _newest_step(root / "checkpoints") < 12  # it was killed before the end
    run(command)
    same(weights(root / "checkpoints/last.ckpt"), weights(straight / "checkpoints/last.ckpt"))


def test_two_torchrun_nodes_of_one_process_train_like_one_node_of_two(fsdp2_straight, tmp_path):
    config, straight = fsdp2_straight
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for node_rank in (0, 1):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
        torchrun += ["--node_rank", str(node_rank), "--rdzv_endpoint", endpoint, "-m", "sftlab.cli"]
        command = torchrun + fit_command(config, tmp_path / "run", "--trainer.num_nodes", "2", "--trainer.devices", "1")[3:]
        nodes.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for node in nodes:
        _, stderr = node.communicate(timeout=1200)
        assert node.returncode == 0, stderr[-4000:]
    same(weights(tmp_path / "run/checkpoints/last.ckpt"), weights(straight / "checkpoints/last.ckpt"), tolerance=1e-6)  # measured 1.3e-7


def test_two_lightning_nodes_of_one_process_train_like_one_node_of_two(fsdp2_straight, tmp_path):
    config, straight = fsdp2_straight
    port = str(free_port())
    command = fit_command(config, tmp_path / "run", "--trainer.num_nodes", "2", "--trainer.devices", "1")
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
    same(weights(tmp_path / "run/checkpoints/last.ckpt"), weights(straight / "checkpoints/last.ckpt"), tolerance=1e-6)  # measured 1.3e-7
