"""A loss of your own in sftlab: per-token weighted cross-entropy, plugged in by `class_path`.

    PYTHONPATH=examples sftlab fit --config configs/tiny.yaml --config examples/weighted_loss.yaml

`AnswerStartWeighted` weights the first tokens of every answer more: weight 1 + boost · decay^k for the
k-th token of each run of trained tokens (an answer, under `assistant` masking). sftlab keeps the
normalisation exact: the step's loss is Σ w·ℓ / Σ w over every micro-batch and rank.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sftlab.model.loss import Normalisation, TokenLoss


def index_in_run(trained: torch.Tensor) -> torch.Tensor:
    """For a (batch, seq) boolean mask: each True position's index within its run of consecutive Trues."""
    counts = torch.cumsum(trained.long(), dim=1)
    run_start = F.pad(trained[:, :-1], (1, 0), value=False).logical_not() & trained  # a True after a False (or at 0)
    offsets = torch.cummax(torch.where(run_start, counts - 1, torch.zeros_like(counts)), dim=1).values
    return counts - 1 - offsets


class AnswerStartWeighted(TokenLoss):
    def __init__(self, boost: float = 1.0, decay: float = 0.5, normalisation: Normalisation = "token") -> None:
        """
        Args:
            boost: Extra weight of an answer's first token.
            decay: Factor by which the extra weight shrinks with each further token.
            normalisation: What counts the same in the average (token, sequence, turn), as in TokenLoss.
        """
        super().__init__(normalisation)
        self.boost = boost
        self.decay = decay

    def weights(self, batch: dict[str, torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
        base = super().weights(batch, positions)  # the data's own weights, if any
        extra = 1.0 + self.boost * self.decay ** index_in_run(positions)[positions].float()
        return extra if base is None else base * extra
