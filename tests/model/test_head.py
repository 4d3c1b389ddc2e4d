"""Logits only at trained positions: same loss and gradients as the full forward, or no split at all."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.packing import pack_examples
from sftlab.model.adapters import LoraSettings
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
        _, normaliser, count, correct, _ = module.labelled_sums(batch)
    assert (int(count), float(normaliser)) == (trained, float(trained))
    assert int(correct) == int((full[positions].argmax(-1) == targets).sum())


def _tiny(model_type: str, **extra) -> torch.nn.Module:
    settings = {key: value for key, value in TINY.items() if key != "model_type"} | extra
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **settings))


@pytest.mark.parametrize(
    "model_type, extra", [("gemma2", {"final_logit_softcapping": 30.0, "head_dim": 16}), ("cohere", {"logit_scale": 0.0625})]
)
def test_models_that_post_process_logits_keep_the_full_forward(model_type, extra):
    assert labelled_head(_tiny(model_type, **extra)) is None


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
