"""2-process FSDP2 runs of `configs/tiny.yaml` (gloo on CPU) stopped from outside, compared with the run that
was never interrupted (a sharded checkpoint after every step, tests/training/conftest.py):

- preempted by SIGTERM to every rank, by SIGTERM to the launching process only (how Lightning's own
  launcher is stopped), by SIGUSR1 to rank 1 only, and killed (SIGKILL of rank 1), each at a random step
  of the same run: every stop leaves one whole checkpoint whose shards (every rank's) are exactly those
  of the uninterrupted run at its step, exits with 128 + the signal (or, killed, non-zero with one line
  naming rank 1), and the last relaunch ends with the uninterrupted run's weights;
- rank 1 killed or frozen (SIGSTOP) on another "node" (no launcher that sees it die): rank 0 stops with
  one line naming it, after the strategy's `timeout` when frozen, and leaves its last whole checkpoint;
- the disk fills up while a sharded checkpoint is written (a 120 MB filesystem where the test can mount
  one, else ENOSPC injected on rank 1): one line naming the checkpoint and its folder, exit status 2,
  the previous checkpoints whole and the one `--ckpt_path last` resumes from.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from sftlab.model.restore import read_sharded_checkpoint
from sftlab.training.resume import readable_checkpoint, usable_checkpoint
from tests.test_cli import REPO
from tests.training.fsdp2_runs import fit_command, free_port, same, weights

pytestmark = pytest.mark.slow
TIMEOUT = 20  # the dead-rank timeout of the runs that lose a rank (seconds; the default is 120)
STOPS = (("every rank", signal.SIGTERM), ("the launcher", signal.SIGTERM), ("rank 1", signal.SIGUSR1), ("rank 1", signal.SIGKILL))


def _config(config: Path, folder: Path, *callbacks: dict, checkpoints: dict | None = None) -> Path:
    """`config` with the test's step announcements and `callbacks`, and `checkpoints` as the init arguments
    of its Checkpoints callback when given."""
    settings = yaml.safe_load(config.read_text())
    for callback in settings["trainer"]["callbacks"]:
        if checkpoints is not None and callback["class_path"].endswith("Checkpoints"):
            callback["init_args"] = checkpoints
    settings["trainer"]["callbacks"] += [{"class_path": "tests.training.announce.AnnounceSteps"}, *callbacks]
    path = folder / "announced.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _start(command: list[str], env: dict[str, str] | None = None, stderr: object = subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]), **(env or {})}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)


def _wait_for_step(process: subprocess.Popen, step: int) -> tuple[dict[int, int], list[str]]:
    """Read the run's stderr until it announces `step`: the pid of each rank, and the lines read."""
    pids, lines = {}, []
    for line in process.stderr:
        lines.append(line)
        if match := re.fullmatch(r"sftlab-test: rank (\d+) pid (\d+)", line.strip()):
            pids[int(match[1])] = int(match[2])
        if line.strip() == f"sftlab-test: step {step}":
            return pids, lines
    pytest.fail(f"the run ended before step {step}:\n{''.join(lines)[-3000:]}")


def _finish(process: subprocess.Popen, lines: list[str]) -> tuple[int, str]:
    rest = process.stderr.read()
    return process.wait(), "".join(lines) + rest


def _step_of(checkpoint: Path) -> int:
    assert readable_checkpoint(checkpoint) is None, readable_checkpoint(checkpoint)
    return read_sharded_checkpoint(checkpoint)["global_step"]


def _signal(process: subprocess.Popen, pids: dict[int, int], target: str, signum: int) -> None:
    if target == "every rank":
        os.killpg(process.pid, signum)  # the run's own session: the launcher and the rank it started
    elif target == "the launcher":
        process.send_signal(signum)
    else:
        os.kill(pids[1], signum)


def test_preempted_three_ways_and_killed_then_resumed_ends_with_the_uninterrupted_weights(fsdp2_straight, tmp_path):
    config, straight = fsdp2_straight
    config = _config(config, tmp_path)
    root = tmp_path / "stopped"
    steps = [step + i for i, step in enumerate(sorted(random.Random(27).sample(range(1, 9), len(STOPS))))]  # 2 apart at least
    for (target, signum), step in zip(STOPS, steps):
        process = _start(fit_command(config, root, "--trainer.devices", "2", "--ckpt_path", "last"))
        pids, lines = _wait_for_step(process, step)
        _signal(process, pids, target, signum)
        status, stderr = _finish(process, lines)
        saved = _step_of(root / "checkpoints/last.ckpt")
        assert "Traceback" not in stderr, stderr[-3000:]
        if signum == signal.SIGKILL:  # Lightning's launcher sees its child die, or rank 0 sees it fall silent
            assert status != 0 and re.search(r"\[rank: 1\] Child process .* terminated|sftlab: error: rank 1 gave no sign", stderr), stderr[
                -3000:
            ]
            assert saved <= step
        else:
            name = signal.Signals(signum).name
            assert status == 128 + signum, (target, name, stderr[-3000:])
            assert f"stopped by {name} after step {saved}" in stderr and "relaunch with --ckpt_path last" in stderr
            assert step <= saved <= step + 1  # at most the step under way when the signal came was still done
        # One checkpoint of one step: every rank's shards are the uninterrupted run's at that step.
        same(weights(root / "checkpoints/last.ckpt"), weights(straight / f"checkpoints/step-{saved:08d}.ckpt"))
    final = _start(fit_command(config, root, "--trainer.devices", "2", "--ckpt_path", "last"))
    status, stderr = _finish(final, [])
    assert status == 0, stderr[-3000:]
    same(weights(root / "checkpoints/last.ckpt"), weights(straight / "checkpoints/last.ckpt"))


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_a_rank_that_dies_or_freezes_stops_the_others_with_one_line(fsdp2_straight, tmp_path, signum):
    config, straight = fsdp2_straight
    root = tmp_path / "run"
    strategy = ("--trainer.strategy.class_path", "sftlab.training.strategies.FSDP2", "--trainer.strategy.init_args.timeout", str(TIMEOUT))
    command = fit_command(_config(config, tmp_path), root, "--trainer.num_nodes", "2", "--trainer.devices", "1", strategy=strategy)
    nodes = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    rank0 = _start(command, env={**nodes, "NODE_RANK": "0"})
    with (tmp_path / "rank1.log").open("w") as log:
        rank1 = _start(command, env={**nodes, "NODE_RANK": "1"}, stderr=log)
    step = random.Random(signum).randrange(2, 10)
    _, lines = _wait_for_step(rank0, step)
    rank1.send_signal(signum)
    status, stderr = _finish(rank0, lines)
    rank1.kill()  # frozen: it would wait for ever
    rank1.wait()
    errors = [line for line in stderr.splitlines() if line.startswith("sftlab: error:")]
    assert status == 1 and len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    silent = re.fullmatch(
        rf"sftlab: error: rank 1 gave no sign of life for (\d+) s \(killed, crashed or frozen\): rank 0 stops \(trainer.strategy timeout {TIMEOUT} s\); relaunch with --ckpt_path last .*",
        errors[0],
    )
    assert silent, errors[0]
    if signum == signal.SIGSTOP:  # gloo waits for a frozen peer as NCCL waits for a dead one: only the timeout ends it
        assert int(silent[1]) >= TIMEOUT
    last = root / "checkpoints/last.ckpt"
    assert usable_checkpoint("last", [root / "checkpoints"]) == str(last)
    saved = _step_of(last)
    assert saved <= step
    same(weights(last), weights(straight / f"checkpoints/step-{saved:08d}.ckpt"))


def _small_filesystems() -> bool:
    """Whether this test can mount a size-limited tmpfs of its own (a user and mount namespace)."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


# In a namespace of its own: mount a tmpfs of SIZE on the checkpoint folder, run the fit, copy what it left.
ON_A_SMALL_DISK = (
    'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; disk=$2 copy=$3; shift 3; "$@"; s=$?; cp -a "$disk/." "$copy/"; exit $s'
)


def test_a_full_disk_during_a_sharded_checkpoint_keeps_the_previous_one(fsdp2_straight, tmp_path):
    config, straight = fsdp2_straight
    disk, left = tmp_path / "checkpoints", tmp_path / "left"
    disk.mkdir()
    left.mkdir()
    if small := _small_filesystems():
        # A checkpoint is 50 MB (25 MB a rank): step 1 and last.ckpt fit in 120 MB, step 2 does not.
        config = _config(config, tmp_path, checkpoints={"every_n_train_steps": 1, "keep": 1, "dirpath": str(disk)})
        command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", ON_A_SMALL_DISK, "sh", "120m", str(disk), str(left)]
    else:
        no_space = {"class_path": "tests.training.no_space.NoSpaceFrom", "init_args": {"step": 2, "rank": 1}}
        config = _config(config, tmp_path, no_space, checkpoints={"every_n_train_steps": 1, "keep": 1, "dirpath": str(left)})
        command = []
    process = _start([*command, *fit_command(config, tmp_path / "run", "--trainer.devices", "2")])
    status, stderr = _finish(process, [])
    errors = {line for line in stderr.splitlines() if line.startswith("sftlab: error:")}
    assert status == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    (error,) = errors
    assert f"cannot write the checkpoint {disk if small else left}/step-00000002.ckpt: rank " in error, error
    assert "No space left on device" in error and f"the checkpoints already in {disk if small else left} are whole" in error
    assert sorted(p.name for p in left.iterdir()) == ["last.ckpt", "step-00000001.ckpt"]  # no partial folder left behind
    assert usable_checkpoint("last", [left]) == str(left / "last.ckpt") and _step_of(left / "last.ckpt") == 1
    same(weights(left / "last.ckpt"), weights(straight / "checkpoints/step-00000001.ckpt"))
