"""One run per folder: a second fit into a folder a running fit holds is a one-line error naming the
holder, before any data is read; a lock left by a run that died is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from sftlab.errors import SftlabError
from sftlab.training.lock import LOCK_NAME, lock_run_folder
from tests.test_cli import REPO, sftlab
from tests.training.test_preemption import _config, _fit


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_a_second_fit_into_a_running_fits_folder_is_a_one_line_error(testdata, tmp_path):
    config = _config(tmp_path, testdata)
    first = _fit(config, tmp_path / "run", "--trainer.max_steps", "6")
    for line in first.stderr:
        if line.strip() == "sftlab-test: step 1":
            first.send_signal(signal.SIGSTOP)  # still holding the folder, whatever the speed of this machine
            break
    second = sftlab("fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run"))
    assert second.returncode == 2 and "Traceback" not in second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("sftlab: error:")]
    assert len(errors) == 1 and f"is in use by another run (pid {first.pid} on host {socket.gethostname()}" in errors[0]
    assert "data report" not in second.stderr  # refused before any data was read
    first.send_signal(signal.SIGCONT)
    first.stderr.read()
    assert first.wait() == 0
    assert len(list((tmp_path / "run/lightning_logs").iterdir())) == 1  # one run, one version


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "since": "earlier"}) + "\n")
    handle = lock_run_folder(tmp_path)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    held = subprocess.run(
        [sys.executable, "-c", f"from sftlab.training.lock import lock_run_folder; lock_run_folder({str(tmp_path)!r})"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert held.returncode != 0 and f"pid {os.getpid()}" in held.stderr
    handle.close()
    lock_run_folder(tmp_path).close()  # released with its holder


def test_an_unusable_folder_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SftlabError, match="cannot use"):
        lock_run_folder(tmp_path / "file" / "run")
