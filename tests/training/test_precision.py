"""Precision picked from what the hardware computes natively, unless the config says."""

from __future__ import annotations

import pytest

from sftlab.training import precision


@pytest.mark.parametrize("amx, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cpu_precision_follows_native_bf16(monkeypatch, amx, expected):
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: amx)
    trainer = {"accelerator": "cpu", "precision": None}
    precision.pick_precision(trainer)
    assert trainer["precision"] == expected


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: True)
    trainer = {"accelerator": "cpu", "precision": "32-true"}
    precision.pick_precision(trainer)
    assert trainer["precision"] == "32-true"


def test_amx_is_read_from_torchs_public_cpu_capabilities(monkeypatch):
    monkeypatch.setattr(precision.torch.cpu, "get_capabilities", lambda: {"amx_bf16": True, "avx512_bf16": True})
    assert precision.cpu_computes_bf16()
    monkeypatch.setattr(precision.torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": True})
    assert not precision.cpu_computes_bf16()
