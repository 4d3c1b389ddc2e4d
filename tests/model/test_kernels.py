"""Liger's kernels where they can run, a one-line error where they cannot (the GPU tier runs them: tests/test_gpu.py)."""

from __future__ import annotations

import sys

import pytest

from sftlab.errors import SftlabError
from tests.model.test_module import tiny_module


def test_liger_on_a_machine_without_cuda_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SftlabError, match=r"model.causal_lm.liger: .*no CUDA device"):
        tiny_module(causal_lm={"liger": True})


def test_liger_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "liger_kernel", None)  # an import of it fails, installed or not
    with pytest.raises(SftlabError, match="pip install liger-kernel"):
        tiny_module(causal_lm={"liger": True})
