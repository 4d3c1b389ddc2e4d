"""Every form training produces loads for inference with the trained weights and its prompt format."""

from __future__ import annotations

import json

import pytest
import torch

from sftlab.data.rendering.templates import AlpacaTemplate, ChatTemplate
from sftlab.errors import SftlabError
from sftlab.inference.loading import load_for_inference
from sftlab.model.loading import load_causal_lm
from sftlab.model.module import CausalLMModule
from tests.test_cli import sftlab
from tests.training.test_export import TINY_SMOLLM2_VOCAB


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_checkpoint_adapter_and_merged_folder_give_the_trained_logits(tiny_lora_run, tmp_path):
    checkpoint = tiny_lora_run / "checkpoints/last.ckpt"
    trained = CausalLMModule.load_from_checkpoint(checkpoint, weights_only=False).model.eval()
    adapter = tiny_lora_run / "lightning_logs/version_0/hf"
    assert json.loads((adapter / "sftlab.json").read_text())["template"] == "chat"
    merged = tmp_path / "merged"
    assert sftlab("export", str(checkpoint), "--output", str(merged), "--merge_lora").returncode == 0
    base = tmp_path / "base"
    load_causal_lm(config=TINY_SMOLLM2_VOCAB).save_pretrained(base)  # the tiny run's random base (init_seed 0)

    with pytest.raises(SftlabError, match="is a LoRA adapter and its base model None is not here: give the base with --base"):
        load_for_inference(str(adapter))
    ids = torch.tensor([[1, 200, 3000, 45]])
    for path, options in ((checkpoint, {}), (adapter, {"base": str(base)}), (merged, {})):
        loaded = load_for_inference(str(path), **options)
        assert isinstance(loaded.renderer, ChatTemplate) and loaded.tokenizer.padding_side == "left"
        torch.testing.assert_close(_logits(loaded.model, ids), _logits(trained, ids), rtol=1e-4, atol=1e-5)
    assert isinstance(load_for_inference(str(merged), template="alpaca").renderer, AlpacaTemplate)


def test_missing_and_unknown_models_are_clear_errors(tmp_path):
    with pytest.raises(SftlabError, match="no such file or folder"):
        load_for_inference(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SftlabError, match="neither a model folder"):
        load_for_inference(str(tmp_path / "empty"))
