"""`sftlab fit --config configs/tiny.yaml` through the real CLI: loss falls, TensorBoard has the
scalars, and the HF export reloads in plain transformers with the trained weights."""

from __future__ import annotations

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlab.model.module import CausalLMModule
from tests.test_cli import sftlab


def test_tiny_fit_learns_logs_and_exports(testdata, tmp_path):
    result = sftlab(
        "fit",
        "--config",
        "configs/tiny.yaml",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs/version_0"
    # tiny.yaml leaves trainer.precision unset: the probe picks it, the log says the measured ratio, the run's config keeps it
    picked = result.stderr.split("trainer.precision: ", 1)[1].split(" ", 1)[0]
    assert picked in ("bf16-mixed", "32-true") and "bf16 products of this model's shapes ran" in result.stderr
    assert f"precision: {picked}" in (run / "config.yaml").read_text()
    events = EventAccumulator(str(run))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")]
    assert len(losses) >= 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    for scalar in (
        "train/perplexity",
        "train/token_accuracy",
        "train/padding_fraction",
        "train/trainable_tokens",
        "lr-AdamW/pg1",
        "train/grad_norm",
        "throughput/tokens_per_s",
        "throughput/trainable_tokens_per_s",
        "train_epoch/loss",
        "data/train/trainable_fraction",
        "data/train/kept",
    ):
        assert events.Scalars(scalar), scalar

    export = run / "hf"
    exported = AutoModelForCausalLM.from_pretrained(export)
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    checkpoint = tmp_path / "checkpoints/last.ckpt"
    trained = CausalLMModule.load_from_checkpoint(checkpoint)
    ids = torch.tensor([tokenizer("Hello there, how are you?")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, trained.model(ids).logits)
