"""The precision a run computes in when `trainer.precision` is not set: measured on this machine, not
guessed from its name, and said in the log.

A CPU's name does not tell whether bf16 pays. Measured with torch 2.13 on 2 cores: on an AMD EPYC (Zen 4
class, AVX512-BF16, no AMX) a 4096x768x768 product ran at 132 GFLOP/s in float32 and 413 in bf16 (3.1x),
and a SmolLM2-135M training step took 6.34 s in float32 and 3.64 s under bf16 autocast; on an Intel
Xeon with AMX-BF16 the product was 7.5x faster in bf16; on another AVX512-BF16 machine without AMX it was
slower (29 ms vs. 22 ms), and on AVX2-only CPUs bf16 is emulated, several times slower. So on a CPU a
probe times bf16 and float32 products of the model's own shapes (rows x width x width, x MLP width,
x a slice of the vocabulary; about 0.1 s) and picks bf16-mixed when bf16 is at least `BF16_SPEEDUP`
times as fast: the step gains less than the products (casts, norms, the optimizer stay float32), so a
small edge in the products is not worth mixed precision's rounding. The ratio is cached per machine
(CPU model, threads, torch version) and model shape in sftlab's cache folder, so later runs do not
measure again. CUDA GPUs compute bf16 natively where `torch.cuda.is_bf16_supported()`; nothing is measured.
A precision the config gives is never changed.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants
from transformers import AutoConfig

from sftlab.artifacts import write_text_atomic
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.loading import gguf_as_folder

log = logging.getLogger(__name__)

BF16_SPEEDUP = 1.5  # bf16 products at least this many times the float32 rate: bf16-mixed
PROBE_ROWS = 512  # token rows of each probe product
PROBE_FLOPS = 5e7  # floating-point operations per timed sample (~0.4 ms in float32 at 130 GFLOP/s) ...
MAX_REPEATS = 8  # ... but at most this many products (small shapes are overhead-bound: keeps the probe short)
VOCAB_SLICE = 2048  # the output layer is probed on this many vocabulary columns at most
UNKNOWN = {"hidden_size": 1024, "intermediate_size": 4096, "vocab_size": 32768}  # when the model's shape cannot be read


def probe_cache() -> Path:
    """The probe's cache file, in sftlab's cache folder (the one GGUF conversions go to: $SFTLAB_CACHE,
    else $HF_HOME/sftlab)."""
    return Path(os.environ.get("SFTLAB_CACHE", Path(constants.HF_HOME) / "sftlab")) / "precision_probe.json"


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (else platform's answer) and torch's vector capability."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return f"{name or 'unknown CPU'} ({torch.backends.cpu.get_cpu_capability()})"


def probe_shapes(dimensions: dict[str, int]) -> list[tuple[int, int, int]]:
    """(rows, inner, columns) of the products a step of a model with these dimensions spends its time in."""
    hidden, intermediate, vocab = (int(dimensions[key]) for key in ("hidden_size", "intermediate_size", "vocab_size"))
    return [(PROBE_ROWS, hidden, hidden), (PROBE_ROWS, hidden, intermediate), (PROBE_ROWS, hidden, min(vocab, VOCAB_SLICE))]


def matmul_seconds(shapes: Iterable[tuple[int, int, int]], dtypes: tuple[torch.dtype, ...], samples: int = 10) -> list[float]:
    """Per dtype: seconds per `PROBE_FLOPS` of products of each shape, summed over the shapes (each shape
    weighs the same). Each figure is the best of `samples` timings after a warm-up, and the dtypes take
    turns, so that other processes on the machine slow both alike and the best timings are the least
    disturbed."""
    totals = [0.0] * len(dtypes)
    for rows, inner, columns in shapes:
        operands = [(torch.randn(rows, inner, dtype=dtype), torch.randn(inner, columns, dtype=dtype)) for dtype in dtypes]
        repeats = min(MAX_REPEATS, max(1, round(PROBE_FLOPS / (2 * rows * inner * columns))))
        best = [float("inf")] * len(dtypes)
        for sample in range(samples + 1):
            for index, (a, b) in enumerate(operands):
                start = time.perf_counter()
                for _ in range(repeats):
                    torch.mm(a, b)
                if sample:  # the first is the warm-up
                    best[index] = min(best[index], time.perf_counter() - start)
        for index, seconds in enumerate(best):
            totals[index] += seconds * PROBE_FLOPS / (2 * rows * inner * columns * repeats)
    return totals


def bf16_speedup(dimensions: dict[str, int]) -> tuple[float, bool]:
    """How many times faster bf16 products of the model's shapes run than float32 ones on this CPU with
    torch's current threads, and whether that came from the cache."""
    shapes = probe_shapes(dimensions)
    key = f"{cpu_name()} | {torch.get_num_threads()} threads | torch {torch.__version__} | {shapes}"
    cache = probe_cache()
    if key in (known := read_cache(cache)):
        return known[key], True
    with torch.no_grad():
        float32, bfloat16 = matmul_seconds(shapes, (torch.float32, torch.bfloat16))
    known = read_cache(cache)
    if key in known:  # another process measured meanwhile: the first answer stands, so that runs agree
        return known[key], True
    try:
        write_text_atomic(cache, json.dumps({**known, key: round(float32 / bfloat16, 3)}, indent=1))
    except OSError as err:  # a read-only cache folder costs a probe per run, nothing more
        log.info("precision probe: cannot write %s (%s)", cache, err)
    return float32 / bfloat16, False


def read_cache(cache: Path) -> dict[str, float]:
    """The probe's cache: measured ratios by key (an unreadable or foreign file reads as empty)."""
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return {key: float(value) for key, value in known.items() if isinstance(value, (int, float))} if isinstance(known, dict) else {}


def native_precision(accelerator: str | None, dimensions: dict[str, int] | None = None) -> tuple[str, str]:
    """The precision this machine computes the model fastest in, and why: bf16-mixed (float32 weights,
    bf16 products) on CUDA GPUs with bf16 and on CPUs where the probe finds bf16 clearly faster;
    float32 elsewhere."""
    if accelerator in ("auto", "gpu", "cuda", None) and torch.cuda.is_available():
        return ("bf16-mixed", "this GPU computes bf16") if torch.cuda.is_bf16_supported() else ("32-true", "this GPU has no bf16")
    if accelerator not in ("auto", "cpu", None):
        return "32-true", f"no bf16 probe for accelerator {accelerator!r}"
    speedup, cached = bf16_speedup(dimensions or UNKNOWN)
    measured = (
        f"bf16 products of {'this model' if dimensions else 'a default'}'s shapes ran {speedup:.2f}x the float32 rate on "
        f"{cpu_name()} with {torch.get_num_threads()} threads ({'cached probe' if cached else 'measured now'}; "
        f"bf16-mixed from {BF16_SPEEDUP}x)"
    )
    return ("bf16-mixed" if speedup >= BF16_SPEEDUP else "32-true"), measured


def model_dimensions(causal_lm: Any) -> dict[str, int] | None:
    """hidden_size, intermediate_size and vocab_size of the model a `model.causal_lm` config section builds
    (`HFCausalLM`'s arguments: its `config`, or the config.json of its `source`; a `.gguf` source is
    converted first, once, as building the model would); None for other builders or unreadable configs."""
    arguments = causal_lm.get("init_args", causal_lm) if hasattr(causal_lm, "get") else None
    class_path = causal_lm.get("class_path") if hasattr(causal_lm, "get") else None
    if not arguments or (class_path and class_path != f"{HFCausalLM.__module__}.{HFCausalLM.__name__}"):
        return None
    try:
        if arguments.get("source") is None:
            settings = dict(arguments.get("config") or {})
            config = AutoConfig.for_model(settings.pop("model_type"), **settings)
        else:
            path = Path(arguments["source"]).expanduser()
            config = AutoConfig.from_pretrained(str(gguf_as_folder(path) if path.suffix == ".gguf" else path), local_files_only=True)
    except Exception as err:  # any unreadable config: the probe uses default shapes, and building the model says what is wrong
        log.info("precision probe: cannot read the model's shape (%s: %s)", type(err).__name__, err)
        return None
    text = config.get_text_config()
    hidden = getattr(text, "hidden_size", None)
    if not hidden or not getattr(text, "vocab_size", None):
        return None
    return {
        "hidden_size": hidden,
        "intermediate_size": getattr(text, "intermediate_size", None) or 4 * hidden,
        "vocab_size": text.vocab_size,
    }


def pick_precision(trainer: Any, causal_lm: Any = None) -> None:
    """Unset `trainer.precision` (a config namespace) becomes `native_precision` for the model the
    `model.causal_lm` section `causal_lm` builds, and the log says which and why. A precision the config
    gives is kept as it is (and nothing is probed)."""
    if trainer.get("precision") is None:
        trainer["precision"], why = native_precision(trainer.get("accelerator"), model_dimensions(causal_lm))
        log.info("trainer.precision: %s (%s; set trainer.precision to choose)", trainer["precision"], why)
