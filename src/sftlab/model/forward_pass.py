"""The model's forward pass as training needs it: what it reads from a batch, and the summed loss at trained
positions with the router loss of a mixture of experts.

Three decisions are taken once per model, each measured or read from the model rather than assumed from its
name: whether logits may be computed at trained positions only (head.py: same loss as the full forward, on a
probe), how packed rows keep their examples apart (packing.py: as they are, flattened with boundaries, or
refused, on a probe), and whether the model adds a router loss (moe.py: its config).
"""

from __future__ import annotations

from typing import Any

import torch

from sftlab.model.head import labelled_head
from sftlab.model.loss import part_sums, token_sums
from sftlab.model.moe import router_coefficient, router_loss
from sftlab.model.packing import PackedRows, by_row, model_inputs, packed_rows


class ForwardPass:
    def __init__(self, model: torch.nn.Module, labelled_logits_only: bool = True) -> None:
        """
        Args:
            model: The causal LM (a transformers model, a peft model, or any module returning `.logits`).
            labelled_logits_only: Project onto the vocabulary only where a label is trained, where exact.
        """
        self.model = model
        self.split_head = labelled_head(model) if labelled_logits_only else None
        self.router_coefficient = router_coefficient(model)
        self.packed_rows: PackedRows | None = None

    def packing(self) -> PackedRows:
        """How packed rows reach the model, measured once on it when first asked."""
        if self.packed_rows is None:
            self.packed_rows = packed_rows(self.model)
        return self.packed_rows

    def inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """What the model reads; packed rows (position ids, no mask) the way `packing` found exact, else an error."""
        return model_inputs(batch, "position_ids" in batch and self.packing().checked().boundaries)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (batch, seq, vocabulary); packed rows need `use_cache=False` to stay apart."""
        return by_row(self.model(**self.inputs(batch), use_cache=False).logits, batch["input_ids"].shape)

    def sums(
        self,
        batch: dict[str, torch.Tensor],
        positions: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor | None,
        normaliser: torch.Tensor,
        prompt: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed (weighted) loss and right predictions at `positions` (a (batch, seq) mask), the loss and Σ w of
        the tokens trained as prompt (`prompt`, over the trained tokens; zeros without: loss.part_sums), and the
        router loss times `normaliser` (0 without one); the losses keep their graphs."""
        if self.split_head is not None:
            features, output = self.split_head.hidden(self.inputs(batch), positions)
            sums_of = self.split_head.hidden_sums
        else:
            output = self.model(**self.inputs(batch), use_cache=False)
            features, sums_of = by_row(output.logits, positions.shape)[positions], token_sums
        loss_sum, correct, prompt_sum, prompt_normaliser = part_sums(sums_of, features, targets, weights, prompt)
        return loss_sum, correct, prompt_sum, prompt_normaliser, router_loss(output, normaliser.to(loss_sum.device))
