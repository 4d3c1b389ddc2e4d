"""The router loss of mixture-of-experts models (model/moe.py): counted by each micro-batch's share of the
step's trained tokens, so accumulating a micro-batch twice is that micro-batch once; off (and said) when the
config leaves router logits off; and off while generating, where transformers 5.24 cannot compute it. The
matrix's `router` cell compares it with the model's own loss on every MoE family."""

from __future__ import annotations

import logging

import pytest
import torch

from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.loading import load_causal_lm
from sftlab.model.module import CausalLMModule
from sftlab.model.moe import without_router_loss
from tests.model.test_loading import TINY
from tests.model.test_module import _examples, fit_one_step

MIXTRAL = {**TINY, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2, "output_router_logits": True}


class Recorder(CausalLMModule):
    def on_before_optimizer_step(self, optimizer):
        super().on_before_optimizer_step(optimizer)
        self.gradients = [p.grad.clone() for p in self.parameters()]
        self.metrics = {key: float(value) for key, value in self.trainer.callback_metrics.items()}


def _step(rows: list[dict], micro_batch: int, accumulation: int) -> Recorder:
    module = Recorder(causal_lm=HFCausalLM(config=MIXTRAL), optimizer=lambda params: torch.optim.SGD(params, lr=0.0))
    return fit_one_step(module, rows, micro_batch, accumulation)


def test_a_micro_batch_accumulated_twice_gives_its_own_gradients_and_router_loss():
    once, twice = _step(_examples(), 8, 1), _step(_examples() * 2, 8, 2)
    assert once.metrics["train/aux_loss"] > 0 and twice.metrics["train/aux_loss"] == pytest.approx(once.metrics["train/aux_loss"], rel=1e-6)
    assert twice.metrics["train/loss"] == pytest.approx(once.metrics["train/loss"], rel=1e-6)
    for got, expected in zip(twice.gradients, once.gradients):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_without_router_logits_no_router_loss_is_added_and_the_log_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="sftlab.model.moe"):
        module = CausalLMModule(causal_lm=HFCausalLM(config={**MIXTRAL, "output_router_logits": False}))
        module.configure_model()
    assert module.forward_pass.router_coefficient is None
    assert "no router load-balancing loss (its config has output_router_logits: false" in caplog.text


def test_padded_batches_generate_with_router_logits_on():
    model = load_causal_lm(config=MIXTRAL).eval()
    prompts = {"input_ids": torch.tensor([[5, 6, 7, 8], [0, 0, 9, 10]]), "attention_mask": torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])}
    settings = {"max_new_tokens": 3, "do_sample": False, "pad_token_id": 0}
    with pytest.raises(RuntimeError, match="must match the size"):  # transformers 5.24's own generate, router loss on
        model.generate(**prompts, **settings)
    assert model.generate(**prompts, **settings, **without_router_loss(model)).shape == (2, 7)
