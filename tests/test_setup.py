"""What `make` sets up: the venv's packages come compiled to bytecode. Installed with `pip --no-compile`
and run where PYTHONDONTWRITEBYTECODE is set (as on this workplace's machines and its CI), every process
compiled what it imported, every time: an `sftlab fit` started in 18 s instead of 8, and the suite,
which starts `sftlab` processes several hundred times, ran past CI's limit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import lightning
import pytest
import torch
import transformers

from tests.test_cli import REPO


def test_the_makefiles_venv_has_its_packages_compiled_to_bytecode():
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not the venv `make` builds (.venv): how another one was installed is its owner's choice")
    for module in (torch, lightning, transformers):
        compiled = Path(importlib.util.cache_from_source(module.__file__))
        assert compiled.is_file(), f"{compiled} is missing: the Makefile's BYTECODE step did not run"
