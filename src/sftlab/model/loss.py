"""Token-level loss normalised over the whole effective batch.

The gradient of one optimizer step must be the gradient of
    (sum of token losses over every micro-batch of the accumulation window, on every rank)
    / (number of trainable tokens in all of them),
not a mean of per-micro-batch means (which over-weights tokens of short micro-batches: the bug HF
Transformers fixed in Oct 2024). The total count is only known after the last micro-batch, and
gradients are linear in the loss, so each micro-batch backpropagates its *summed* token loss and the
accumulated gradients are divided by the total count just before the optimizer step
(`normalise_gradients`), after an all-reduce of the count across data-parallel ranks. A window with
no trainable token leaves zero gradients, never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from sftlab.data.tokenize import IGNORE_INDEX


def label_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a label is trained, as positions of the inputs (position t predicts labels[t + 1]):
    a (batch, seq) mask whose last column is False, and the labels those positions predict."""
    shifted = labels[:, 1:]
    trained = shifted != IGNORE_INDEX
    return F.pad(trained, (0, 1), value=False), shifted[trained]


def token_sums(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (in float32) and the number of right argmax predictions, for logits
    (n, vocab) at trained positions and their targets (n,). No target gives 0, never NaN."""
    loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    return loss_sum, (logits.detach().argmax(-1) == targets).sum()


def summed_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token cross-entropies over trainable positions and their count, from full
    logits (batch, seq, vocab) and labels (batch, seq) with -100 for ignored positions."""
    positions, targets = label_positions(labels)
    return token_sums(logits[positions], targets)[0], positions.sum()


def correct_predictions(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many trainable positions the argmax of full logits predicts right."""
    positions, targets = label_positions(labels)
    return (logits[positions].argmax(-1) == targets).sum()


def normalise_gradients(parameters: Iterable[torch.nn.Parameter], trainable_tokens: torch.Tensor, scale: float = 1.0) -> None:
    """Divide accumulated gradients by the window's trainable-token count (times `scale`, e.g. the
    world size when DDP has averaged gradients over ranks). A zero count leaves gradients (all zero) as they are."""
    count = float(trainable_tokens)
    if count == 0:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            parameter.grad.mul_(scale / count)
