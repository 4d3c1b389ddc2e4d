"""The training loss, normalised over the whole effective batch, as an injectable class.

The gradient of one optimizer step is the gradient of

    Σ w_t · ℓ_t  /  Σ w_t      over every trained token t of every micro-batch of the accumulation
                               window, on every rank,

not a mean of per-micro-batch means (which over-weights tokens of short micro-batches: the bug HF
Transformers fixed in Oct 2024). ℓ_t is the next-token cross-entropy and w_t the token's weight: 1 by
default (every trained token counts the same), the data's `weights` column when a masking strategy
gives one, or whatever a `TokenLoss` subclass returns. The denominator is only known after the last
micro-batch, and gradients are linear in the loss, so each micro-batch backpropagates its weighted
*sum* and `CausalLMModule` divides the accumulated gradients by the all-reduced Σ w just before the
optimizer step. A window with nothing trained leaves zero gradients, never NaN.

`normalisation` says what counts the same in that average:
- `token` (default): every trained token (times its weight);
- `sequence`: every example, whatever its length: each token's weight is divided by its example's total
  weight and Σ w becomes the number of examples (packed examples are told apart by their position ids);
- `turn`: every turn, i.e. every maximal run of consecutive trained labels (an assistant message under
  the role-level strategies; packed examples never share a run, their first label is not trained).
Examples and turns never straddle micro-batches, so each scheme is exact under accumulation and DDP.
Validation always reports the token average (with the validation data's weights), so runs trained
with different schemes are compared on the same measure.

With `data.prompt_loss_weight` > 0 the batch's `prompt_mask` says which trained tokens are trained as
prompt; `part_sums` then also returns the prompt's share of the sums (Σ w·ℓ and Σ w over those tokens), so
the answer's and the prompt's losses are logged apart (metrics.py) and add up to the total with the weights.

A researcher's own loss (say, per-token weights from the token's position in its answer) is a
subclass overriding `weights`, named in the config:

    model:
      loss:
        class_path: mypkg.MyLoss
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

from sftlab.data.labels.tokenize import IGNORE_INDEX

Normalisation = Literal["token", "sequence", "turn"]


class TokenLoss:
    def __init__(self, normalisation: Normalisation = "token") -> None:
        """Cross-entropy over trained tokens, weighted per token (default: the batch's `weights`, else 1).

        Args:
            normalisation: What counts the same in the step's average: each trained `token`, each
                `sequence` (example) or each `turn` (run of trained labels).
        """
        self.normalisation = normalisation

    def scale(
        self, batch: dict[str, torch.Tensor], positions: torch.Tensor, normalisation: Normalisation | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Each trained token's factor in the summed loss (None: all 1) and the micro-batch's share of
        the normaliser, under `normalisation` (default: this loss's)."""
        weights = self.weights(batch, positions)
        scheme = normalisation or self.normalisation
        if scheme == "token":
            return weights, weights.sum() if weights is not None else positions.sum().float()
        weights = weights if weights is not None else torch.ones(int(positions.sum()), device=positions.device)
        groups = sequence_ids(batch, positions) if scheme == "sequence" else turn_ids(positions)
        _, group = torch.unique(groups, return_inverse=True)
        totals = torch.zeros(int(group.max()) + 1 if len(group) else 0, device=weights.device).index_add_(0, group, weights)
        return weights / totals[group].clamp(min=torch.finfo(weights.dtype).tiny), (totals > 0).sum().float()

    def weights(self, batch: dict[str, torch.Tensor], positions: torch.Tensor) -> torch.Tensor | None:
        """The weight of each trained token, as a float tensor (n,) in the order of `positions` (the
        (batch, seq) mask of input positions whose next label is trained; position t predicts label t+1),
        or None when every weight is 1. Weights must be finite and non-negative."""
        if "weights" not in batch:
            return None
        return F.pad(batch["weights"][:, 1:], (0, 1))[positions].float()

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({vars(self)})"


def sequence_ids(batch: dict[str, torch.Tensor], positions: torch.Tensor) -> torch.Tensor:
    """An id per trained token, shared by the tokens of one example: a row, or in a packed row (position
    ids restarting at 0) each example. The label predicted at position t is token t+1's."""
    rows, length = positions.shape
    starts = batch["position_ids"] == 0 if "position_ids" in batch else F.pad(torch.ones(rows, 1, dtype=torch.bool), (0, length - 1))
    example = torch.cumsum(starts.to(positions.device).long(), dim=1)
    example_of_label = F.pad(example[:, 1:], (0, 1))
    row = torch.arange(rows, device=positions.device)[:, None].expand(rows, length)
    return (row * (length + 1) + example_of_label)[positions]


def turn_ids(positions: torch.Tensor) -> torch.Tensor:
    """An id per trained token, shared by each maximal run of consecutive trained labels in a row."""
    rows, length = positions.shape
    starts = positions & ~F.pad(positions[:, :-1], (1, 0), value=False)
    run = torch.cumsum(starts.long(), dim=1)
    row = torch.arange(rows, device=positions.device)[:, None].expand(rows, length)
    return (row * (length + 1) + run)[positions]


def label_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a label is trained, as positions of the inputs (position t predicts labels[t + 1]):
    a (batch, seq) mask whose last column is False, and the labels those positions predict."""
    shifted = labels[:, 1:]
    trained = shifted != IGNORE_INDEX
    return F.pad(trained, (0, 1), value=False), shifted[trained]


def prompt_of(batch: dict[str, torch.Tensor], positions: torch.Tensor) -> torch.Tensor | None:
    """Which trained tokens (in the order of `positions`) are trained as prompt; None without a `prompt_mask`."""
    if "prompt_mask" not in batch:
        return None
    return F.pad(batch["prompt_mask"][:, 1:], (0, 1))[positions]


SumsOf = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


def part_sums(
    sums_of: SumsOf, features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None, prompt: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed weighted loss and right predictions of all trained tokens, and the summed weighted loss and
    Σ w of those trained as prompt (zeros when `prompt` is None). `sums_of(features, targets, weights)` is
    `token_sums` on logits or the split head's loss on hidden states (n rows each); with a prompt mask the
    answer's rows and the prompt's go through it apart: the same rows, so the same work as one call."""
    if prompt is None:
        loss_sum, correct = sums_of(features, targets, weights)
        return loss_sum, correct, torch.zeros((), device=loss_sum.device), torch.zeros((), device=loss_sum.device)
    weights = weights if weights is not None else torch.ones(len(targets), device=targets.device)
    answer_sum, answer_correct = sums_of(features[~prompt], targets[~prompt], weights[~prompt])
    prompt_sum, prompt_correct = sums_of(features[prompt], targets[prompt], weights[prompt])
    return answer_sum + prompt_sum, answer_correct + prompt_correct, prompt_sum.detach(), weights[prompt].sum()


def token_sums(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed (weighted) cross-entropy in float32 and the number of right argmax predictions, for logits
    (n, vocab) at trained positions, their targets (n,) and optional weights (n,). No target gives 0."""
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    loss_sum = losses.sum() if weights is None else (losses * weights).sum()
    return loss_sum, (logits.detach().argmax(-1) == targets).sum()


def normalise_gradients(parameters: Iterable[torch.nn.Parameter], normaliser: float, scale: float = 1.0) -> None:
    """Divide accumulated gradients by the window's Σ w (times `scale`, e.g. the world size when DDP has
    averaged gradients over ranks). A zero normaliser leaves gradients (all zero) as they are."""
    if normaliser == 0:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            parameter.grad.mul_(scale / normaliser)


def gradient_norm(gradients: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all `gradients` together, of the whole model: sharded (DTensor, FSDP2) gradients are
    reduced across ranks, not only this rank's shard. Under FSDP2 every rank must call it (a collective)."""
    norm = torch.nn.utils.get_total_norm(gradients)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm
