"""Fixtures of the training tests: one uninterrupted 2-process FSDP2 run that the slow tests which stop,
kill or split runs compare with (it is built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model.test_kill_resume import _config
from tests.training.fsdp2_runs import fit_command, run


@pytest.fixture(scope="session")
def fsdp2_straight(testdata, tmp_path_factory) -> tuple[Path, Path]:
    """A 2-process FSDP2 fit of tiny.yaml that was never interrupted (12 steps, a sharded checkpoint after
    each, all kept): its config and its root folder. The tests that stop, kill or split runs compare with it."""
    tmp_path = tmp_path_factory.mktemp("fsdp2_straight")
    config = _config(tmp_path, testdata)
    run(fit_command(config, tmp_path / "run", "--trainer.devices", "2"))
    return config, tmp_path / "run"
