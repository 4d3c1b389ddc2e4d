"""The precision a run computes in when `trainer.precision` is not set: the fastest this hardware does
natively, said in the log.

On a CPU with AMX-BF16 (2 cores, Sapphire Rapids class) a (4096x768)@(768x768) product took 2 ms in bf16
vs. 15 ms in float32, and sftlab's packed training step 1.34 s in bf16-mixed vs. 1.77 s in float32
(benchmarks/RESULTS.md). Without AMX, bf16 is emulated or only partly accelerated: on an AVX2 machine
TRL's bf16 default ran 5x slower than float32, and on an AVX512-BF16 machine without AMX the same
product took 29 ms in bf16 vs. 22 ms in float32.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)


def cpu_computes_bf16() -> bool:
    """True on CPUs with AMX-BF16 tiles (Intel Sapphire Rapids and later)."""
    return bool(torch.cpu.get_capabilities().get("amx_bf16", False))


def native_precision(accelerator: str | None) -> tuple[str, str]:
    """The precision this machine computes fastest natively, and why: bf16-mixed (float32 weights,
    bf16 products) on CUDA GPUs with bf16 and on CPUs with AMX-BF16; float32 elsewhere."""
    gpu = accelerator in ("auto", "gpu", "cuda", None) and torch.cuda.is_available()
    if gpu:
        return ("bf16-mixed", "this GPU computes bf16") if torch.cuda.is_bf16_supported() else ("32-true", "this GPU has no bf16")
    if accelerator in ("auto", "cpu", None) and cpu_computes_bf16():
        return "bf16-mixed", "this CPU computes bf16 natively (AMX)"
    return "32-true", "no native bf16 here (bf16 would be emulated, several times slower)"


def pick_precision(trainer: Any) -> None:
    """Unset `trainer.precision` (a config namespace) becomes `native_precision`, and the log says which and why."""
    if trainer.get("precision") is None:
        trainer["precision"], why = native_precision(trainer.get("accelerator"))
        log.info("trainer.precision: %s (%s; set trainer.precision to choose)", trainer["precision"], why)
