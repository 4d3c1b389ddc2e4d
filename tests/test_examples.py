"""The extension examples of `examples/` run through the real `sftlab fit` (a data format of your own: `sftlab inspect`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import torch

from sftlab.artifacts import read_checkpoint
from tests.test_cli import REPO


def fit(testdata, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "examples"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", "configs/tiny.yaml", *args]
    command += ["--data.tokenizer", str(testdata / "tokenizers/smollm2-135m-instruct"), "--data.cache_dir", str(tmp_path / "cache")]
    command += ["--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def epoch_losses(stderr: str) -> list[float]:
    return [float(value) for value in re.findall(r"epoch \d+: train loss ([\d.]+)", stderr)]


def test_a_model_of_your_own_trains_through_sftlab_fit(testdata, tmp_path):
    result = fit(testdata, tmp_path, "--config", "examples/own_model.yaml", "--trainer.max_steps", "8")
    losses = epoch_losses(result.stderr)
    assert len(losses) >= 2 and losses[-1] < losses[0] - 0.5
    saved = read_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    assert saved["hyper_parameters"]["causal_lm"]["class_path"] == "own_model.TinyGPTBuilder"
    assert any(name.startswith("model.blocks.") for name in saved["state_dict"])


def test_another_optimizer_and_schedule_from_the_command_line_keep_the_weight_decay_groups(testdata, tmp_path):
    fit(testdata, tmp_path, "--trainer.max_steps", "4", "--optimizer", "torch.optim.SGD", "--optimizer.lr", "0.05",
        "--optimizer.momentum", "0.9", "--optimizer.weight_decay", "0.01",
        "--lr_scheduler", "torch.optim.lr_scheduler.OneCycleLR", "--lr_scheduler.max_lr", "0.05")  # fmt: skip
    saved = read_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    decayed, not_decayed = saved["optimizer_states"][0]["param_groups"]
    assert "dampening" in decayed and "betas" not in decayed  # SGD, as asked (OneCycleLR cycles its momentum)
    assert (decayed["weight_decay"], not_decayed["weight_decay"]) == (0.01, 0.0)
    shapes = [tensor.shape for name, tensor in saved["state_dict"].items() if name.startswith("model.")]
    assert len(decayed["params"]) == sum(len(s) >= 2 for s in shapes) - 1  # tied embeddings: one parameter, two names
    assert len(not_decayed["params"]) == sum(len(s) < 2 for s in shapes) > 0  # the norms
    assert saved["lr_schedulers"][0]["total_steps"] == 4  # the run's length, given to OneCycleLR


def test_a_loss_of_your_own_is_used_and_its_weights_follow_the_answers(testdata, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    from weighted_loss import AnswerStartWeighted

    fit(testdata, tmp_path, "--config", "examples/weighted_loss.yaml", "--trainer.max_steps", "2")
    saved = read_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    assert saved["hyper_parameters"]["loss"]["class_path"] == "weighted_loss.AnswerStartWeighted"
    labels = torch.tensor([[-100, -100, 7, 8, 9, -100, 4, 5]])
    positions = torch.nn.functional.pad(labels[:, 1:] != -100, (0, 1))
    weights = AnswerStartWeighted(boost=1.0, decay=0.5).weights({"labels": labels}, positions)
    assert weights.tolist() == [2.0, 1.5, 1.25, 2.0, 1.5]  # each answer starts again at 1 + boost


def test_a_data_format_of_your_own_reads_its_records_by_class_path(testdata, tmp_path, smollm2_tokenizer):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "examples"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "sftlab.cli", "inspect", "--config", "configs/tiny.yaml", "--config", "examples/own_format.yaml"]
    command += ["--json", "--limit", "3", "--data.tokenizer", str(testdata / "tokenizers/smollm2-135m-instruct")]
    result = subprocess.run([*command, "--data.cache_dir", str(tmp_path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    trained = [smollm2_tokenizer.decode([t for t in row["labels"] if t != -100]) for row in rows]
    assert trained == [
        "Put it in boiling water for about nine minutes, then cool it in cold water.<|im_end|>",
        "Paris.<|im_end|>Rome.<|im_end|>",
        "Eleven.<|im_end|>",
    ]
    assert "Milan" not in "".join(smollm2_tokenizer.decode(row["input_ids"]) for row in rows)  # the rejected dialogue is never read
