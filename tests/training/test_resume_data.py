"""The training data changing between a run and its resume is noticed: the checkpoint holds the data's
fingerprint (file names and sizes, data settings, number of rows), a different one is a one-line error
unless `data.accept_changed_data` says to go on."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import REPO, sftlab


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_a_resume_on_changed_training_data_is_an_error_unless_accepted(testdata, tmp_path):
    data = tmp_path / "train.json"
    records = json.loads((REPO / "data/demo/chat_sharegpt.json").read_text())
    data.write_text(json.dumps(records))
    common = ["fit", "--config", "configs/tiny.yaml", "--data.train_path", str(data), "--data.val_path", "null"]
    common += ["--data.tokenizer", str(testdata / "tokenizers/smollm2-135m-instruct"), "--data.cache_dir", str(tmp_path / "cache")]
    common += ["--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false"]
    assert sftlab(*common, "--trainer.max_steps", "3").returncode == 0
    data.write_text(json.dumps(records[:6]))  # shrunk between the run and its resume
    refused = sftlab(*common, "--trainer.max_steps", "5", "--ckpt_path", "last")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("sftlab: error:")]
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert len(errors) == 1 and "the training data changed since the checkpoint was written" in errors[0]
    accepted = sftlab(*common, "--trainer.max_steps", "5", "--ckpt_path", "last", "--data.accept_changed_data", "true")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    same = sftlab(*common, "--trainer.max_steps", "6", "--ckpt_path", "last")  # unchanged since the last run: fine
    assert same.returncode == 0, same.stderr[-2000:]
