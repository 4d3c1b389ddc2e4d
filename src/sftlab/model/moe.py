"""The router loss of mixture-of-experts models, weighed as transformers weighs it.

An MoE causal LM whose config asks for router logits (`output_router_logits: true`: Mixtral, Qwen3-MoE,
Qwen3-Next, gpt-oss, Granite-4, ...) returns beside its logits `aux_loss`, the load-balancing loss of its
routers over the batch's tokens, and its own `loss` is the mean cross-entropy plus `router_aux_loss_coef` x
`aux_loss`. sftlab computes the cross-entropy itself (at trained positions, normalised over the whole
effective batch, loss.py), so it adds the router loss the same way: each micro-batch adds coef x aux_loss x
its normaliser (Σ weights: its trained tokens by default) to its summed loss, and the step divides
everything by the normaliser of all micro-batches on all ranks. One micro-batch on one process gives
exactly the model's own loss (tested); under accumulation and ranks each micro-batch's router loss
counts by its share of the step's trained tokens, like its cross-entropy. `train/aux_loss` logs that
weighted mean; `train/loss` stays the cross-entropy (comparable with `val/loss` and dense models).
"""

from __future__ import annotations

import logging

import torch
from peft import PeftModel

log = logging.getLogger(__name__)


def router_coefficient(model: torch.nn.Module) -> float | None:
    """`router_aux_loss_coef` of a model whose config asks for router logits, else None (said in the log when
    the model has a router loss that its config leaves off)."""
    causal_lm = model.get_base_model() if isinstance(model, PeftModel) else model
    config = getattr(causal_lm, "config", None)
    coefficient = getattr(config, "router_aux_loss_coef", None)
    if coefficient is None:
        return None
    name = type(causal_lm).__name__
    if not config.output_router_logits:
        log.info("%s: no router load-balancing loss (its config has output_router_logits: false, as transformers trains it)", name)
        return None
    log.info("%s: router load-balancing loss added with router_aux_loss_coef %g (train/aux_loss)", name, coefficient)
    return float(coefficient)


def router_loss(output: object, normaliser: torch.Tensor) -> torch.Tensor:
    """The micro-batch's router loss times its normaliser (0 when the model returned none)."""
    aux_loss = getattr(output, "aux_loss", None)
    if aux_loss is None:
        return torch.zeros((), device=normaliser.device)
    return aux_loss.float().to(normaliser.device) * normaliser


def without_router_loss(model: torch.nn.Module) -> dict[str, bool]:
    """Keyword arguments for `generate`: no router loss while decoding. With router logits on, transformers 5.24
    computes it at every decoding step against the whole attention mask of a padded batch and fails (a shape
    mismatch in `load_balancing_loss_func`, every MoE family of the matrix)."""
    config = getattr(model, "config", None)
    return {"output_router_logits": False} if getattr(config, "output_router_logits", False) else {}
