"""Where a training step's time goes: torch.profiler over sftlab's own step (datamodule, module, Lightning
loop) on SmolLM2-135M or the tiny model, grouped into matrix products, attention, the fused loss's
chunks, norms, the optimizer and the rest, beside the matrix products' own rate and the machine's
measured peak for that precision.

    python benchmarks/profile_step.py [--model smollm2|tiny|FOLDER] [--precision bf16-mixed|32-true]
        [--lora] [--batch-size 4] [--max-length 512] [--steps 3] [--top 25]

Prints the grouped table and the top operators (self time); writes nothing. Steps 1 is warm-up; the
others are profiled.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sft_throughput

# Operator name -> group. First match wins; the order puts the specific before the generic.
GROUPS = (
    ("loss (fused chunks)", ("LinearCrossEntropy",)),
    ("attention", ("scaled_dot_product", "_flash_attention", "_efficient_attention", "attention")),
    ("optimizer", ("Optimizer.step", "_foreach", "_fused_adam", "adamw", "lerp", "addcdiv")),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear")),
    ("dtype casts / copies", ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    ("norms (RMSNorm pieces)", ("aten::pow", "aten::mean", "aten::rsqrt", "rms_norm")),
    ("embedding", ("embedding",)),
)


def group_of(name: str) -> str:
    return next((group for group, keys in GROUPS if any(key in name for key in keys)), "other elementwise / framework")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sft_throughput.add_common_arguments(parser, steps=3)
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    import lightning
    from torch.profiler import ProfilerActivity, profile

    from sftlab.data.datamodule import SFTDataModule
    from sftlab.model.adapters import LoraSettings
    from sftlab.model.causal_lm import HFCausalLM
    from sftlab.model.module import CausalLMModule

    class Profiled(lightning.Callback):
        def __init__(self) -> None:
            self.profiler = profile(activities=[ProfilerActivity.CPU])
            self.started = self.ended = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 1:
                self.started = time.perf_counter()
                self.profiler.__enter__()
            elif trainer.global_step == args.steps:
                self.profiler.__exit__(None, None, None)
                self.ended = time.perf_counter()

    with tempfile.TemporaryDirectory() as workdir:
        folder, model = sft_throughput.model_folder(args, Path(workdir))
        data = SFTDataModule(
            train_path=args.data,
            tokenizer=folder,
            format="alpaca",
            template="alpaca",
            masking="assistant",
            max_seq_length=args.max_length,
            batch_size=args.batch_size,
            packing=True,
            cache_dir=str(Path(workdir) / "cache"),
        )
        lora = LoraSettings(target_modules="all-linear", dropout=0.0) if args.lora else None
        module = CausalLMModule(causal_lm=HFCausalLM(source=folder, lora=lora))
        callback = Profiled()
        trainer = lightning.Trainer(
            accelerator="cpu",
            max_steps=args.steps,
            precision=args.precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[callback],
        )
        trainer.fit(module, data)
    steps = args.steps - 1
    events = callback.profiler.key_averages()
    groups: dict[str, float] = defaultdict(float)
    for event in events:
        groups[group_of(event.key)] += event.self_cpu_time_total / 1e6 / steps
    total = sum(groups.values())
    wall = (callback.ended - callback.started) / steps
    print(f"{model}, packed {args.batch_size} x {args.max_length}, {args.precision}, {'LoRA all-linear' if args.lora else 'full'}")
    print(f"wall {wall:.2f} s/step, profiled self time {total:.2f} s/step")
    for group, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"  {group:<32} {seconds:7.3f} s  {seconds / total:6.1%}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
