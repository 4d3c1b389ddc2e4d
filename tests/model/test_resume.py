"""Resume is exact: N steps in one go equal N/2 steps, a stop, and `--ckpt_path last` for the rest
(same data position mid-epoch, same RNG for dropout, same LR schedule), on CPU, through the real CLI."""

from __future__ import annotations

import shutil

import torch

from tests.test_cli import sftlab

# 12 packed rows, 2 per batch, 2 batches per step: 3 steps per epoch, so step 4 is mid-epoch; LoRA
# dropout draws random numbers; length grouping reorders each epoch.
SETTINGS = ("--config", "configs/tiny.yaml", "--trainer.max_steps", "8", "--data.batch_size", "2",
            "--data.group_by_length", "true", "--trainer.enable_progress_bar", "false",
            "--model.lora", '{"r": 4, "alpha": 8, "dropout": 0.2, "target_modules": ["q_proj", "v_proj"]}')


def _fit(shared, root, *extra):
    result = sftlab("fit", *SETTINGS, "--trainer.default_root_dir", str(root),
                    "--data.tokenizer", str(shared / "tokenizers/smollm2-135m-instruct"),
                    "--data.cache_dir", str(root.parent / "cache"), *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_resume_from_last_mid_epoch_gives_identical_weights(shared, tmp_path):
    _fit(shared, tmp_path / "straight")
    straight = tmp_path / "straight/checkpoints"
    assert sorted(path.name for path in straight.iterdir()) == ["last.ckpt", "step-00000004.ckpt", "step-00000008.ckpt"]

    # A run stopped after step 4: its newest checkpoint is what `last` points to.
    (tmp_path / "resumed/checkpoints").mkdir(parents=True)
    shutil.copy(straight / "step-00000004.ckpt", tmp_path / "resumed/checkpoints/last.ckpt")
    _fit(shared, tmp_path / "resumed", "--ckpt_path", "last")

    expected = torch.load(straight / "last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=False)
    assert resumed["global_step"] == expected["global_step"] == 8
    assert resumed["loops"]["fit_loop"]["state_dict"] == expected["loops"]["fit_loop"]["state_dict"]
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name
    assert resumed["lr_schedulers"] == expected["lr_schedulers"]
