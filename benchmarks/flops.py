"""Model FLOPs of a training step and the machine's measured matrix-product peak, so that a run's speed
reads as a share of what the hardware can do in the same precision.

Model FLOPs count the matrix products a step needs for its useful work, the same way for every
framework: the real (unpadded) tokens through every linear layer of the decoder (2 FLOPs per weight
forward, 2 for the input's gradient, 2 more for the weight's gradient when it is trained: 6 for full
fine-tuning, 4 for a frozen base under LoRA), causal attention within each example (QK^T and PV,
the lower triangle only, 3x for forward + backward), and the output layer at trained positions only
(what the loss needs). Padding, logits nobody trains on and attention across packed examples are work
a framework may do, but not model FLOPs: that is what the share of the peak shows.

The peak is measured, not taken from a datasheet: the best rate of a few large products (torch.mm) in
float32 or bf16, in the process that trained, right after it did (so under the same load).
"""

from __future__ import annotations

import time
from typing import Any

IGNORE_INDEX = -100
PEAK_SHAPES = ((2048, 2048, 2048), (4096, 1024, 4096), (4096, 576, 1536))  # (rows, inner, columns)


def matmul_peak(dtype_name: str, device: str = "cpu", samples: int = 3) -> float:
    """FLOP/s of the fastest product of `PEAK_SHAPES` (on CUDA also 8192^3, which a GPU needs to reach its
    peak) in `dtype_name` (float32 or bfloat16), best of `samples` after a warm-up, with torch's threads."""
    import torch

    dtype = getattr(torch, dtype_name)
    shapes = PEAK_SHAPES + (((8192, 8192, 8192),) if device == "cuda" else ())
    best = 0.0
    with torch.no_grad():
        for rows, inner, columns in shapes:
            a = torch.randn(rows, inner, dtype=dtype, device=device)
            b = torch.randn(inner, columns, dtype=dtype, device=device)
            torch.mm(a, b)
            for _ in range(samples):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                torch.mm(a, b)
                if device == "cuda":
                    torch.cuda.synchronize()
                best = max(best, 2 * rows * inner * columns / (time.perf_counter() - start))
    return best


def peak_gpu_memory_gb() -> float:
    """The most GPU memory torch's allocator held in this process."""
    import torch

    return torch.cuda.max_memory_reserved() / 1024**3


def example_lengths(batch: dict[str, Any]) -> list[int]:
    """Lengths of the examples in a batch: packed rows (position ids restarting at 0) split at each
    restart; otherwise each row's unpadded length (attention mask), or the whole row."""
    if "position_ids" in batch:
        lengths = []
        for row in batch["position_ids"].tolist():
            starts = [i for i, position in enumerate(row) if position == 0] or [0]
            lengths += [end - start for start, end in zip(starts, starts[1:] + [len(row)])]
        return lengths
    if "attention_mask" in batch:
        return [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]
    return [batch["input_ids"].shape[1]] * batch["input_ids"].shape[0]


def batch_counts(batch: dict[str, Any], real_tokens: int) -> dict[str, int]:
    """What model FLOPs depend on: real tokens, trained positions, Σ over examples of l(l+1)/2."""
    lengths = example_lengths(batch)
    return {
        "real": real_tokens,
        "trained": int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()),
        "causal_pairs": sum(n * (n + 1) // 2 for n in lengths),
    }


def model_flops(config: Any, counts: dict[str, float], lora: bool) -> float:
    """Training FLOPs of one step of a decoder-only transformers model (`config`: its config) on a batch
    with these `counts` (see batch_counts); `lora`: the base weights and the output layer are frozen."""
    width, layers = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or width // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    mlp = getattr(config, "intermediate_size", None) or 4 * width
    attention_weights = width * head_dim * (2 * heads + 2 * kv_heads)  # q, o and k, v
    linear = layers * (attention_weights + 3 * width * mlp)  # gated MLP: gate, up, down
    per_weight = 4 if lora else 6
    attention = layers * 3 * 2 * 2 * heads * head_dim * counts["causal_pairs"]
    head = per_weight * width * config.vocab_size * counts["trained"]
    return per_weight * linear * counts["real"] + attention + head
