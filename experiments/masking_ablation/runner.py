"""The masking-strategy ablation: one `sftlab fit` per strategy from one base config, evaluated on the
same held-out conversations, summarised in results.md / results.csv / validation_loss.png.

Fairness: every run has the same base model and initialisation, seed, optimizer, learning-rate
schedule and number of optimizer steps (packed rows of the same size, so the same tokens per step);
validation uses one masking (`val_masking: assistant`) for all runs, so the curves are comparable.
What differs is only which tokens are labels (and, for `expand`, how many examples a conversation
becomes, hence also the data order).

Resumable: a run whose `result.json` exists is not repeated; `--fresh` starts over.
"""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from sftlab.artifacts import write_text_atomic

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = REPO.parent / "shared"
STRATEGIES = ("none", "assistant", "last_assistant", "expand")
EVAL_MASKINGS = {"assistant": "all assistant turns", "last_assistant": "last turns only", "prompt": "prompt tokens"}
PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for a good night's sleep.",
    "Explain in one sentence what a neural network is.",
]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def prepare_data(setting: str, root: Path, shared: Path = SHARED) -> tuple[Path, Path]:
    """Train and held-out JSONL (messages format), split once with a fixed seed."""
    train, heldout = root / "data/train.jsonl", root / "data/heldout.jsonl"
    if train.is_file() and heldout.is_file():
        return train, heldout
    fastchat = (shared / "data/fastchat_sharegpt/dummy_conversation_with_system.messages.jsonl").read_text().splitlines()
    if setting == "smoke":
        sources = [fastchat[:60]]
        per_source_heldout = 12
    else:
        oasst = (shared / "data/oasst_en100/en_100_top_thread.messages.jsonl").read_text().splitlines()
        sources = [oasst, fastchat]
        per_source_heldout = 15
    train_rows, heldout_rows = [], []
    rng = random.Random(0)
    for rows in sources:
        rows = list(rows)
        rng.shuffle(rows)
        heldout_rows += rows[:per_source_heldout]
        train_rows += rows[per_source_heldout:]
    rng.shuffle(train_rows)
    write_text_atomic(train, "\n".join(train_rows) + "\n")
    write_text_atomic(heldout, "\n".join(heldout_rows) + "\n")
    return train, heldout


def run_config(setting: str, strategy: str, root: Path, train: Path, heldout: Path) -> dict[str, Any]:
    base = yaml.safe_load((HERE / f"configs/{setting}.yaml").read_text())
    config = deep_merge(base, yaml.safe_load((HERE / f"configs/{strategy}.yaml").read_text()))
    run = root / strategy
    return deep_merge(
        config,
        {
            "data": {"train_path": str(train), "val_path": str(heldout), "cache_dir": str(root / "cache")},
            "trainer": {
                "default_root_dir": str(run),
                "logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": str(root / "tensorboard"), "name": strategy, "version": ""},
                },
                "callbacks": [{"class_path": "sftlab.training.export.HFExport", "init_args": {"dirpath": str(run / "hf")}}],
            },
        },
    )


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def evaluate(model: str, heldout: Path, max_seq_length: int, cache: Path) -> dict[str, Any]:
    from sftlab.evaluation.perplexity import evaluate_strategy
    from sftlab.inference.generate import Generator, Sampling
    from sftlab.inference.loading import load_for_inference
    from sftlab.inference.prompts import user_prompt

    loaded = load_for_inference(model)
    metrics = {}
    for masking in EVAL_MASKINGS:
        result = evaluate_strategy(loaded, str(heldout), masking, max_seq_length, batch_size=4, cache_dir=str(cache))
        metrics[f"heldout_{masking}_loss"] = result["loss"]
        metrics[f"heldout_{masking}_ppl"] = result["perplexity"]
        metrics[f"heldout_{masking}_tokens"] = result["tokens"]
    answers = Generator(loaded, Sampling(max_new_tokens=48), batch_size=len(PROMPTS)).answer(
        [user_prompt(prompt, None, "ablation").conversation for prompt in PROMPTS]
    )
    metrics["answers"] = {prompt: answer.answer for prompt, answer in zip(PROMPTS, answers)}
    return metrics


def run_strategy(setting: str, strategy: str, root: Path, train: Path, heldout: Path, model: str | None) -> dict[str, Any]:
    run = root / strategy
    done = run / "result.json"
    if done.is_file():
        print(f"[{strategy}] done before: {done}", file=sys.stderr)
        return json.loads(done.read_text())
    config = run_config(setting, strategy, root, train, heldout)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(run / "config.yaml")]
    if model:
        command += ["--model.causal_lm.source", model]
    print(f"[{strategy}] {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"[{strategy}] fit failed:\n{finished.stderr[-3000:]}")
    log_dir = root / "tensorboard" / strategy
    trainable = scalars(log_dir, "train/trainable_tokens")
    speeds = [value for _, value in scalars(log_dir, "throughput/tokens_per_s")]
    validation = scalars(log_dir, "val/loss")
    result = {
        "strategy": strategy,
        "setting": setting,
        "steps": len(trainable),
        "trainable_tokens": int(sum(v for _, v in trainable)),
        "wall_s": round(wall, 1),
        "tokens_per_s": round(sum(speeds) / max(len(speeds), 1), 1),
        "final_val_loss": round(validation[-1][1], 4) if validation else None,
        "val_curve": validation,
        **evaluate(str(run / "hf"), heldout, config["data"]["max_seq_length"], root / "cache"),
    }
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    return result


COLUMNS = [
    "strategy",
    "steps",
    "trainable_tokens",
    "wall_s",
    "tokens_per_s",
    "final_val_loss",
    *(f"heldout_{m}_{k}" for m in EVAL_MASKINGS for k in ("loss", "ppl")),
]


def write_summary(root: Path, results: list[dict[str, Any]], setting: str) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results)
    write_text_atomic(root / "results.csv", buffer.getvalue())
    header = [
        "strategy",
        "steps",
        "trainable tokens",
        "wall s",
        "tokens/s",
        "val loss (assistant)",
        *(f"held-out {label} loss / ppl" for label in EVAL_MASKINGS.values()),
    ]
    lines = [f"# Masking ablation ({setting})", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [
            r["strategy"],
            str(r["steps"]),
            f"{r['trainable_tokens']:,}",
            str(r["wall_s"]),
            str(r["tokens_per_s"]),
            str(r["final_val_loss"]),
            *(f"{r[f'heldout_{m}_loss']:.3f} / {r[f'heldout_{m}_ppl']:.1f}" for m in EVAL_MASKINGS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Greedy answers:", ""]
    for prompt in PROMPTS:
        lines.append(f"**{prompt}**")
        lines += [f"- `{r['strategy']}`: {r['answers'][prompt]!r}" for r in results]
        lines.append("")
    write_text_atomic(root / "results.md", "\n".join(lines) + "\n")
    plot(root / "validation_loss.png", results)


def plot(path: Path, results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for result in results:
        if not result["val_curve"]:  # the untrained model: a reference line
            axes.axhline(result["final_val_loss"], linestyle="--", color="gray", label=result["strategy"])
            continue
        steps, values = zip(*result["val_curve"])
        axes.plot(steps, values, marker="o", label=result["strategy"])
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("validation loss (all assistant turns)")
    axes.set_title("Masking strategies: held-out loss during training")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def base_result(setting: str, model: str, root: Path, heldout: Path) -> dict[str, Any]:
    """The untrained base model on the same held-out tokens: the reference every run moves from."""
    done = root / "base/result.json"
    if done.is_file():
        return json.loads(done.read_text())
    max_seq_length = yaml.safe_load((HERE / f"configs/{setting}.yaml").read_text())["data"]["max_seq_length"]
    metrics = evaluate(model, heldout, max_seq_length, root / "cache")
    result = {
        "strategy": "base (untrained)",
        "setting": setting,
        "steps": 0,
        "trainable_tokens": 0,
        "wall_s": 0.0,
        "tokens_per_s": 0.0,
        "final_val_loss": metrics["heldout_assistant_loss"],
        "val_curve": [],
        **metrics,
    }
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    return result


def run_ablation(setting: str, root: Path, strategies: tuple[str, ...] = STRATEGIES, model: str | None = None) -> list[dict[str, Any]]:
    """Run (or reuse) each strategy; with a `model` source (real setting), the untrained model is the first row."""
    train, heldout = prepare_data(setting, root)
    results = [run_strategy(setting, strategy, root, train, heldout, model) for strategy in strategies]
    if model:
        results.insert(0, base_result(setting, model, root, heldout))
    write_summary(root, results, setting)
    return results
