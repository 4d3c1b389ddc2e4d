"""Resume is exact: N steps in one go equal N/2 steps, a stop, and `--ckpt_path last` for the rest
(same data position mid-epoch, same RNG for dropout, same LR schedule), on CPU, through the real CLI."""

from __future__ import annotations

import shutil

import torch

from tests.conftest import fit_tiny_lora


def test_resume_from_last_mid_epoch_gives_identical_weights(tiny_lora_run, tmp_path):
    straight = tiny_lora_run / "checkpoints"
    assert sorted(path.name for path in straight.glob("*.ckpt")) == ["last.ckpt", "step-00000004.ckpt", "step-00000008.ckpt"]

    # A run stopped after step 4: its newest checkpoint is what `last` points to.
    (tmp_path / "resumed/checkpoints").mkdir(parents=True)
    shutil.copy(straight / "step-00000004.ckpt", tmp_path / "resumed/checkpoints/last.ckpt")
    fit_tiny_lora(tmp_path / "resumed", "--ckpt_path", "last")

    expected = torch.load(straight / "last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=False)
    assert resumed["global_step"] == expected["global_step"] == 8
    assert resumed["loops"]["fit_loop"]["state_dict"] == expected["loops"]["fit_loop"]["state_dict"]
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name
    assert resumed["lr_schedulers"] == expected["lr_schedulers"]
    assert resumed["sftlab_epoch_totals"] == expected["sftlab_epoch_totals"]
