"""FSDP2 on 2 gloo processes trains exactly like one process: after 2 optimizer steps with accumulation 2
and gradient clipping, the same weights (1e-5 relative), logged losses (1e-6) and whole-model gradient
norms, for full fine-tuning, LoRA, packed rows and activation checkpointing; a NaN loss on one rank skips
that step on both, as on one process (tests/training/fsdp2_steps.py).

Weights are compared tensor by tensor, |got - expected| / |expected| in the 2-norm: element by element,
AdamW's first steps move a weight whose gradient is rounding noise by +-lr whichever way the noise falls
(the first update is lr x sign(gradient)), in any change of summation order, one process or two."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.test_cli import REPO
from tests.training.fsdp2_steps import VARIANTS, run


@pytest.fixture(scope="module")
def fsdp2_results(tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("fsdp2") / "results.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*command, "-m", "tests.training.fsdp2_steps", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(output, weights_only=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fsdp2_on_two_processes_equals_one_process(fsdp2_results, variant):
    got, expected = fsdp2_results[variant], run(variant, devices=1, strategy="auto")
    skipped = int(variant == "nonfinite")  # the NaN step: skipped on every rank, nothing logged for it
    assert got["skipped"] == expected["skipped"] == skipped
    assert len(got["losses"]) == len(expected["losses"]) == 2
    assert got["losses"][skipped:] == pytest.approx(expected["losses"][skipped:], rel=1e-6)
    assert got["grad_norms"][skipped:] == pytest.approx(expected["grad_norms"][skipped:], rel=1e-5)
    assert all(norm > 0.05 for norm in expected["grad_norms"][skipped:])  # clipping (at 0.05) changed the steps
    assert got["weights"].keys() == expected["weights"].keys()
    for name, tensor in expected["weights"].items():
        assert ((got["weights"][name] - tensor).norm() / tensor.norm()).item() < 1e-5, name
