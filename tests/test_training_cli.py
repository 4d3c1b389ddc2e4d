"""Precision picked from what the hardware computes natively, unless the config says."""

from __future__ import annotations

import pytest

from sftlab import training_cli


@pytest.mark.parametrize("amx, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cpu_precision_follows_native_bf16(monkeypatch, amx, expected):
    monkeypatch.setattr(training_cli.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training_cli, "cpu_computes_bf16", lambda: amx)
    trainer = {"accelerator": "cpu", "precision": None}
    training_cli.pick_precision(trainer)
    assert trainer["precision"] == expected


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(training_cli, "cpu_computes_bf16", lambda: True)
    trainer = {"accelerator": "cpu", "precision": "32-true"}
    training_cli.pick_precision(trainer)
    assert trainer["precision"] == "32-true"
