"""Where the data trained so far ends is in every checkpoint, and a resumed run starts right after it,
also when the run is given by epochs: the learning-rate schedule then asks for the run's length before
the checkpoint is restored, and Lightning's own stateful-loader support dropped the saved position
(a mid-epoch resume started the epoch over; Lightning issue #20550)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_cli import REPO, sftlab


def _config(tmp_path: Path, testdata: Path) -> Path:
    """tiny.yaml by epochs: 12 packed rows, 2 per batch, 2 batches per step: 3 steps per epoch."""
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    config["data"].pop("val_path")
    config["data"].update(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"), batching={"batch_size": 2}, cache_dir=str(tmp_path / "cache")
    )
    config["trainer"].update(max_steps=-1, max_epochs=2, enable_progress_bar=False, precision="32-true")  # compared bit for bit
    config["trainer"]["callbacks"] = [
        {"class_path": "sftlab.training.checkpoints.Checkpoints", "init_args": {"every_n_train_steps": 1, "keep": -1}}
    ]
    path = tmp_path / "by_epochs.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_a_run_by_epochs_resumed_mid_epoch_ends_with_the_same_weights(testdata, tmp_path):
    config = _config(tmp_path, testdata)
    straight = sftlab("fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    (tmp_path / "resumed/checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "straight/checkpoints/step-00000001.ckpt", tmp_path / "resumed/checkpoints/last.ckpt")  # mid-epoch
    saved = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)
    assert saved["SFTDataModule"]["train"][0]["position"] == {"epoch": 0, "batches": 2}
    resumed = sftlab("fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "resumed"), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the training data at epoch 0, batch 2" in resumed.stderr
    expected = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=True)
    final = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == expected["global_step"] == 6
    assert all(torch.equal(final["state_dict"][name], tensor) for name, tensor in expected["state_dict"].items())
    assert torch.equal(final["SFTDataModule"]["train"][0]["tally"], expected["SFTDataModule"]["train"][0]["tally"])
