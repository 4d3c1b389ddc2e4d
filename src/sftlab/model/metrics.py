"""What a step, an epoch or a validation logs from its summed loss: loss, perplexity and token accuracy
over all the tokens the sums were taken over (not means of per-batch figures), and with a prompt loss
weight (`data.prompt_loss_weight` > 0) the answer's and the prompt's losses apart.

The sums (`SUMS` order) are the weighted loss Σ w·ℓ, the normaliser Σ w, the trained labels, the right
next-token predictions, and the prompt's share of the first two. The total is the weighted mean of the
parts, loss = (W_a · loss_answer + W_p · loss_prompt) / (W_a + W_p), with W_p the prompt's Σ w and
W_a the rest: `train/loss_answer` is what the masking strategy trains (what a run with weight 0 reports as
`train/loss`), `train/loss_prompt` the mean loss on the prompt's tokens, which the mixed loss hides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SUMS = ("loss", "normaliser", "trainable", "correct", "prompt_loss", "prompt_normaliser")


def loss_metrics(prefix: str, sums: Sequence[float]) -> dict[str, float]:
    """`{prefix}/loss`, `/perplexity`, `/token_accuracy`, and `/loss_answer`, `/loss_prompt` where the
    prompt was trained (each part only where it has weight)."""
    loss_sum, normaliser, trainable, correct, prompt_sum, prompt_normaliser = sums
    loss = loss_sum / normaliser if normaliser else 0.0
    metrics = {
        f"{prefix}/loss": loss,
        f"{prefix}/perplexity": math.exp(min(loss, 80.0)),
        f"{prefix}/token_accuracy": correct / max(trainable, 1),
    }
    if prompt_normaliser > 0:
        metrics[f"{prefix}/loss_prompt"] = prompt_sum / prompt_normaliser
        if normaliser > prompt_normaliser:
            metrics[f"{prefix}/loss_answer"] = (loss_sum - prompt_sum) / (normaliser - prompt_normaliser)
    return metrics
