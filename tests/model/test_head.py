"""Logits only at trained positions: same loss and gradients as the full forward, or no split at all."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import AutoConfig, LlamaForCausalLM

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.packing import pack_examples
from sftlab.model.adapters import LoraSettings
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.head import labelled_head
from sftlab.model.loss import label_positions
from sftlab.model.module import CausalLMModule
from sftlab.model.packing import model_inputs
from tests.model.test_loading import TINY
from tests.model.test_module import _examples, summed_token_loss, tiny_module


def _batches() -> dict[str, dict[str, torch.Tensor]]:
    rows = _examples()
    packed = pack_examples({key: [row[key] for row in rows] for key in ("input_ids", "labels")}, max_seq_length=64)
    packed_rows = [{key: packed[key][i] for key in ("input_ids", "labels", "position_ids")} for i in range(len(packed["input_ids"]))]
    return {"padded": Collator(pad_token_id=0)(rows), "packed": Collator(pad_token_id=0)(packed_rows)}


def _gradients(module: CausalLMModule, batch: dict[str, torch.Tensor], split: bool) -> tuple[float, list[torch.Tensor]]:
    module.zero_grad()
    loss_sum = module.labelled_sums(batch)[0] if split else summed_token_loss(module(batch), batch["labels"])[0]
    loss_sum.backward()
    return loss_sum.item(), [p.grad.clone() for p in module.parameters() if p.grad is not None]


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4, alpha=8, dropout=0.0)], ids=["full", "lora"])
@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_split_head_gives_the_full_forwards_loss_and_gradients(lora, layout):
    module = tiny_module(causal_lm={"lora": lora})
    assert module.forward_pass.split_head is not None
    batch = _batches()[layout]
    split_loss, split_grads = _gradients(module, batch, split=True)
    full_loss, full_grads = _gradients(module, batch, split=False)
    assert split_loss == pytest.approx(full_loss, rel=1e-6)
    assert len(split_grads) == len(full_grads) > 0
    for got, expected in zip(split_grads, full_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_split_head_computes_logits_only_at_trained_positions_and_counts_right_predictions():
    module = tiny_module()
    batch = _batches()["padded"]
    positions, targets = label_positions(batch["labels"])
    logits = module.forward_pass.split_head.logits(model_inputs(batch), positions)
    trained = int((batch["labels"][:, 1:] != -100).sum())
    assert logits.shape == (trained, TINY["vocab_size"]) and targets.shape == (trained,)
    assert trained < batch["input_ids"].numel() / 3
    with torch.no_grad():
        full = module(batch)
        _, normaliser, count, correct, *_ = module.labelled_sums(batch)
    assert (int(count), float(normaliser)) == (trained, float(trained))
    assert int(correct) == int((full[positions].argmax(-1) == targets).sum())


def _module(model_type: str, labelled_logits_only: bool = True, **extra) -> CausalLMModule:
    module = CausalLMModule(
        causal_lm=HFCausalLM(config={**TINY, "model_type": model_type} | extra), labelled_logits_only=labelled_logits_only
    )
    module.configure_model()
    return module


@pytest.mark.parametrize(
    "model_type, extra",
    [
        ("gemma2", {"final_logit_softcapping": 0.5, "head_dim": 16}),  # a cap the random logits reach
        ("cohere", {"logit_scale": 0.0625}),
        ("granite", {"logits_scaling": 4.0}),
        ("falcon_h1", {"lm_head_multiplier": 0.5, "head_dim": 16, "mamba_d_ssm": 64, "mamba_n_heads": 4, "mamba_d_head": 16}),
    ],
)
def test_models_that_scale_or_cap_their_logits_keep_the_labelled_head_with_the_full_forwards_loss(model_type, extra):
    split = _module(model_type, **extra)
    head = split.forward_pass.split_head
    assert head is not None and (head.scale != 1.0 or head.softcap is not None)
    full = _module(model_type, labelled_logits_only=False, **extra)
    batch = _batches()["padded"]
    split_loss, split_grads = _gradients(split, batch, split=True)
    full_loss, full_grads = _gradients(full, batch, split=False)
    assert split_loss == pytest.approx(full_loss, rel=1e-6)
    for got, expected in zip(split_grads, full_grads):  # summed-loss gradients: float32 noise of a sum over ~60 tokens
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_logit_post_processing_it_cannot_reproduce_keeps_the_full_forward_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="sftlab.model.head"):
        module = _module("llama", output_logit_scale=2.0)
    assert module.forward_pass.split_head is None
    assert "post-processes its logits (output_logit_scale): logits are computed at every position" in caplog.text


class ScaledLogits(LlamaForCausalLM):
    """A model that changes its logits after the head without saying so in its config."""

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        output.logits = output.logits * 2
        return output


def test_the_probe_catches_logit_post_processing_the_config_does_not_name():
    config = AutoConfig.for_model("llama", **{key: value for key, value in TINY.items() if key != "model_type"})
    assert labelled_head(LlamaForCausalLM(config)) is not None
    assert labelled_head(ScaledLogits(config)) is None


def test_the_full_forward_can_be_forced():
    assert tiny_module(labelled_logits_only=False).forward_pass.split_head is None


def test_a_weight_gathered_by_the_heads_own_forward_does_not_take_the_fused_path():
    """DeepSpeed ZeRO-3 leaves a 0-element placeholder that only the head's forward gathers."""
    module = tiny_module()
    assert module.forward_pass.split_head._plain_linear()
    head = module.forward_pass.split_head.head
    full_weight = head.weight
    head.weight = torch.nn.Parameter(torch.empty(0))
    assert not module.forward_pass.split_head._plain_linear()
    head.weight = full_weight
