"""FSDP2 memory and step time: the same full fine-tune on 1 and on 2 FSDP2 processes (CPU, gloo), and
three ways to compute the loss at trained positions with a sharded output layer.

Each rank trains the same micro-batch (packed rows of alpaca_en_demo, Alpaca prompt, response trained),
so the 2-process run computes twice the tokens per optimizer step. Per rank: the bytes of the
parameters, gradients and AdamW state it holds (the local shards: they should halve with 2 ranks), its
peak RSS (which also holds the whole model as loaded before it is sharded, activations, the gathered
layers, the framework), and the seconds per optimizer step. fp32 throughout; the machine load
(`uptime`) is recorded, since the cores may be shared.

The output weight is in FSDP2's root unit, gathered once per step (with the embeddings it is often tied
to). Heads compared on 2 processes: `fused` (sftlab's: the chunked projection + cross-entropy reads the
gathered weight; no logits kept), `forward` (the head's own forward at trained positions, then
cross-entropy: n x vocabulary logits kept for the backward), `full` (logits at every position).

    python benchmarks/fsdp2_memory.py [--model smollm2|tiny|FOLDER] [--steps 3] [--batch-size 2] [--max-length 256]

Each configuration runs under `torchrun --nproc_per_node N` in its own processes. Writes
benchmarks/results/fsdp2_memory.json and rewrites benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
from sft_throughput import add_common_arguments, model_folder


def local_bytes(tensors: list[Any]) -> int:
    """Bytes of this rank's part of `tensors` (the local shard of a DTensor)."""
    from torch.distributed.tensor import DTensor

    total = 0
    for tensor in tensors:
        local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
        total += local.numel() * local.element_size()
    return total


def worker(args: argparse.Namespace) -> None:
    """One rank of one configuration (run by torchrun): train, then write this rank's figures."""
    import lightning
    import torch

    import sftlab.training.strategies  # noqa: F401  (registers fsdp2)
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.data.sources.loaders import Batching
    from sftlab.model.causal_lm import HFCausalLM
    from sftlab.model.head import LabelledHead
    from sftlab.model.module import CausalLMModule

    if args.head == "forward":  # benchmark only: route the labelled loss through the head's own forward
        LabelledHead._plain_linear = lambda self: False

    class Probe(lightning.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.gradient_bytes = 0

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            self.gradient_bytes = max(self.gradient_bytes, local_bytes([p.grad for p in pl_module.parameters() if p.grad is not None]))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if len(self.ends) < trainer.global_step:
                self.ends.append(time.perf_counter())

    lightning.seed_everything(42, verbose=False)
    probe = Probe()
    with tempfile.TemporaryDirectory() as cache:
        data = SFTDataModule(
            train_path=args.data,
            tokenizer=args.model_dir,
            format="alpaca",
            template="alpaca",
            max_seq_length=args.max_length,
            batching=Batching(batch_size=args.batch_size),
            packing=True,
            seed=42,
            cache_dir=cache,
        )
        module = CausalLMModule(causal_lm=HFCausalLM(source=args.model_dir), labelled_logits_only=args.head != "full")
        trainer = lightning.Trainer(
            accelerator="cpu",
            devices=args.processes,
            strategy="fsdp2",
            precision="32-true",
            max_steps=args.steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[probe],
        )
        trainer.fit(module, data)
    optimizer_state = [t for state in trainer.optimizers[0].state.values() for t in state.values() if torch.is_tensor(t)]
    steps = [b - a for a, b in zip(probe.ends[1:], probe.ends[2:])] or [probe.ends[-1] - probe.ends[0]]
    figures = {
        "rank": trainer.global_rank,
        "parameter_gb": local_bytes(list(module.parameters())) / 1024**3,
        "gradient_gb": probe.gradient_bytes / 1024**3,
        "optimizer_gb": local_bytes(optimizer_state) / 1024**3,
        "peak_rss_gb": report.peak_rss_gb(),
        "s_per_step": sum(steps) / len(steps),
    }
    Path(args.out).with_suffix(f".rank{trainer.global_rank}.json").write_text(json.dumps(figures))


def run(args: argparse.Namespace, folder: str, workdir: Path, processes: int, head: str) -> list[dict[str, Any]]:
    out = workdir / f"fsdp2-{processes}-{head}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command += [__file__, "--worker", "--processes", str(processes), "--head", head, "--model-dir", folder, "--out", str(out)]
    command += ["--data", args.data, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{processes}-process run failed:\n{result.stderr[-4000:]}")
    return [
        {**json.loads(out.with_suffix(f".rank{rank}.json").read_text()), "processes": processes, "head": head} for rank in range(processes)
    ]


def markdown(model: str, args: argparse.Namespace, rows: list[dict[str, Any]], load: str) -> str:
    lines = [
        f"## FSDP2: per-rank memory and step time, 1 vs 2 processes, {model}\n",
        f"Full fine-tune, fp32, AdamW, packed alpaca_en_demo rows, micro-batch {args.batch_size} x {args.max_length} tokens per rank, "
        f"{args.steps} optimizer steps (s/step from step 2 on), CPU with gloo. Machine load before the runs: `{load}`.\n",
        "| processes | head | rank | parameters GB | gradients GB | AdamW state GB | params+grads+state GB | peak RSS GB | s/step | tokens/step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        held = row["parameter_gb"] + row["gradient_gb"] + row["optimizer_gb"]
        lines.append(
            f"| {row['processes']} | {row['head']} | {row['rank']} | {row['parameter_gb']:.3f} | {row['gradient_gb']:.3f} | "
            f"{row['optimizer_gb']:.3f} | {held:.3f} | {row['peak_rss_gb']:.2f} | {row['s_per_step']:.2f} | "
            f"{row['processes'] * args.batch_size * args.max_length:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, steps=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", nargs="+", default=["1:fused", "2:fused", "2:forward", "2:full"], help="PROCESSES:HEAD ...")
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--head", default="fused", choices=["fused", "forward", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as workdir:
        folder, model = model_folder(args, Path(workdir))
        runs = [(int(processes), head) for processes, head in (item.split(":") for item in args.runs)]
        rows = [row for processes, head in runs for row in run(args, folder, Path(workdir), processes, head)]
    report.save("fsdp2_memory", {"rows": rows, "uptime": load}, markdown(model, args, rows, load), Path(args.results_dir))
    return None


if __name__ == "__main__":
    main()
