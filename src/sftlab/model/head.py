"""Logits only where a label is trained.

A causal LM's forward projects every position onto the vocabulary; with a 49k-152k vocabulary that
projection and its cross-entropy dominate a small model's step, and in SFT most positions are
prompt or padding whose logits are thrown away. Splitting the model into its backbone (`base_model`,
which returns hidden states) and its head (`get_output_embeddings()`) lets the loss project only
the hidden states whose next label is trained: the same loss and gradients (tested against the
full forward), less compute and memory. Neither transformers' `logits_to_keep` (one set of sequence
positions shared by all rows) nor its loss functions do this per token, hence this module.

It is exact when the model's logits are `head(last_hidden_state)`, scaled (Cohere's `logit_scale`,
Granite's `logits_scaling`, Falcon-H1's `lm_head_multiplier`) and soft-capped (Gemma's
`final_logit_softcapping`) as its config says: the fused loss applies both. Models that post-process logits
otherwise, or that cannot be split, keep the full forward; `labelled_head` decides once per model, by
configuration and by comparing both paths on a probe input, and says so in the log.

Under FSDP2 the output weight is a shard. The hidden states come from a forward pass of the whole model
(its head applied to one position only), so the root unit, which holds the output layer (and the
embeddings it is often tied to), is gathered in that forward and stays gathered until its backward: the
fused loss reads the whole weight with no extra communication. Measured against the two other ways
(benchmarks/RESULTS.md, SmolLM2-135M on 2 CPU processes): the head's own forward at trained positions
keeps n x vocabulary logits for the backward and was 35% slower per step, logits at every position 57%
slower; sharding the loss over the vocabulary would need every rank's hidden states on every rank
(FSDP ranks hold different data), i.e. more communication than gathering the weight once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedModel

from sftlab.model.linear_cross_entropy import linear_cross_entropy
from sftlab.model.loss import token_sums
from sftlab.model.packing import by_row

log = logging.getLogger(__name__)

# Configuration fields of transformers models that change logits after the output projection: those the
# labelled head reproduces (a factor: multiplied or divided; a soft cap), and one it does not.
LOGIT_FACTORS = {"logit_scale": 1, "lm_head_multiplier": 1, "logits_scaling": -1}
LOGIT_SOFTCAP = "final_logit_softcapping"
LOGIT_UNREPRODUCED = ("output_logit_scale",)


@dataclass
class LabelledHead:
    """The model split into backbone and output projection (both still owned by the model)."""

    model: torch.nn.Module
    backbone: torch.nn.Module
    head: torch.nn.Module
    scale: float = 1.0  # the model's logits are head(hidden) x scale, ...
    softcap: float | None = None  # ... then softcap x tanh(logits / softcap)

    def logits(self, inputs: dict[str, torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
        """Logits (n, vocab) at the `positions` mask (batch, seq) only."""
        return self.postprocessed(self.head(self.hidden(inputs, positions)[0]))

    def postprocessed(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits * self.scale if self.scale != 1.0 else logits
        return self.softcap * torch.tanh(logits / self.softcap) if self.softcap is not None else logits

    def hidden(self, inputs: dict[str, torch.Tensor], positions: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The backbone's last hidden states at `positions`, taken from a forward pass of the whole model
        whose head projects the last position only (`logits_to_keep=1`, one row of logits per sequence).
        The model is called, not its backbone alone, so that whatever wraps its forward runs as usual:
        FSDP2 gathers the root's weights (embeddings, final norm, output layer) in that forward and keeps
        them gathered until the backward pass, which is also when the output weight is read below. Also returns
        the model's output (a mixture of experts' router loss is there)."""
        captured: list[torch.Tensor] = []
        hook = self.backbone.register_forward_hook(lambda module, args, output: captured.append(output.last_hidden_state))
        try:
            output = self.model(**inputs, use_cache=False, logits_to_keep=1)
        finally:
            hook.remove()
        return by_row(captured[-1], positions.shape)[positions], output

    def hidden_sums(
        self, hidden: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed (weighted) loss and right predictions from hidden states at trained positions (`hidden`): a
        plain linear head goes through the fused chunked loss (linear_cross_entropy.py); any other head (e.g.
        one with a LoRA adapter) through its own forward and the plain loss."""
        if self._plain_linear():
            return linear_cross_entropy(hidden, self.head.weight, self.head.bias, targets, weights, scale=self.scale, softcap=self.softcap)
        return token_sums(self.postprocessed(self.head(hidden)), targets, weights)

    def _plain_linear(self) -> bool:
        """A plain nn.Linear whose whole weight is here as an ordinary tensor. The fused loss reads the
        weight directly, not through the head's forward, so a weight that its forward would gather
        first (DeepSpeed ZeRO-3 leaves a 0-element placeholder; FSDP2 a DTensor shard outside the root
        unit's forward and backward) must not go there."""
        head = self.head
        return (
            type(head) is torch.nn.Linear
            and type(head.weight.data) is torch.Tensor
            and tuple(head.weight.shape) == (head.out_features, head.in_features)
        )


def labelled_head(model: torch.nn.Module) -> LabelledHead | None:
    """The split of `model` if it gives exactly the full forward's logits, else None (full forward)."""
    causal_lm = model.get_base_model() if isinstance(model, PeftModel) else model
    if not isinstance(causal_lm, PreTrainedModel):
        log.info("%s is not a transformers model: logits are computed at every position", type(causal_lm).__name__)
        return None
    backbone, head = causal_lm.base_model, causal_lm.get_output_embeddings()
    name = type(causal_lm).__name__
    if backbone is causal_lm or head is None:
        log.info("%s has no separate backbone and output layer: logits are computed at every position", name)
        return None
    config = causal_lm.config
    unreproduced = [field for field in LOGIT_UNREPRODUCED if getattr(config, field, None) not in (None, 1, 1.0)]
    if unreproduced:
        log.info("%s post-processes its logits (%s): logits are computed at every position", name, ", ".join(unreproduced))
        return None
    factors = [field for field in LOGIT_FACTORS if getattr(config, field, None) not in (None, 1, 1.0)]
    scale = math.prod(getattr(config, field) ** LOGIT_FACTORS[field] for field in factors)
    split = LabelledHead(model, backbone, head, float(scale), getattr(config, LOGIT_SOFTCAP, None))
    postprocessing = [*factors, *([LOGIT_SOFTCAP] if split.softcap is not None else [])]
    if not _same_logits(model, split, config.vocab_size):
        done = f"head(last hidden state) with its {', '.join(postprocessing)}" if postprocessing else "head(last hidden state)"
        log.info("%s's logits are not %s: logits are computed at every position", name, done)
        return None
    if postprocessing:
        log.info("%s: logits at trained positions only, with its %s", name, ", ".join(postprocessing))
    return split


def _same_logits(model: torch.nn.Module, split: LabelledHead, vocab_size: int) -> bool:
    """Both paths on a short probe input, in eval mode (no dropout), without gradients."""
    parameter = next(model.parameters())
    probe = torch.arange(1, 9, device=parameter.device).unsqueeze(0) % vocab_size
    inputs = {"input_ids": probe, "attention_mask": torch.ones_like(probe)}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            full = model(**inputs, use_cache=False).logits[0]
            split_logits = split.logits(inputs, torch.ones_like(probe, dtype=torch.bool))
            return full.shape == split_logits.shape and torch.allclose(full, split_logits, rtol=1e-4, atol=1e-5)
    except Exception as err:  # any architecture-specific refusal means: use the full forward
        log.info("probe of the split forward failed (%s: %s)", type(err).__name__, err)
        return False
    finally:
        model.train(was_training)
