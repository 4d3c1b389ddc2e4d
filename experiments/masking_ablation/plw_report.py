"""The prompt-loss-weight study's write-up from its runs' `result.json` files: `results.md` (per budget and
set: the runs; the last epoch's held-out metrics as mean ± 95% CI over seeds; the paired differences from
w = 0; each metric epoch by epoch; the curvature of each metric in w), `results.csv` (one row per run and
epoch) and `plw_<budget>_<set>.png` (held-out and training answer loss, prompt loss and exact match, against epochs).

Metrics of a run at an epoch (epochs.py): `answer` (held-out loss on the answer and its end-of-turn
marker), `exact` (held-out exact match of greedy answers), `prompt` (held-out loss on the prompt tokens),
`train answer` (the same answer loss on a sample of the training records) and `gap` (held-out minus
training answer loss: how much of the fit does not carry over).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.masking_ablation.plw import SETS
from experiments.masking_ablation.report import paired_cell, table
from experiments.masking_ablation.stats import mean_ci, paired_difference
from sftlab.artifacts import write_text_atomic

METRICS = [("answer", "held-out answer loss"), ("exact", "held-out exact match"), ("prompt", "held-out prompt loss")]
METRICS += [("train_answer", "train answer loss"), ("gap", "gap (held-out − train)")]


def set_metrics(name: str) -> list[tuple[str, str]]:
    """The metrics a set is judged by: exact match only for the short answers (a 180-token answer is never
    matched exactly)."""
    return METRICS if name == "short" else [(m, label) for m, label in METRICS if m != "exact"]


Runs = dict[float, dict[int, dict[str, Any]]]  # weight -> seed -> result


def epoch_values(line: dict[str, Any]) -> dict[str, float]:
    """The metrics of one epoch's scores (or of the untrained model's)."""
    heldout, train = line["heldout"], line["train_sample"]
    values = {"answer": heldout["answer"], "exact": heldout["exact"], "prompt": heldout["prompt"], "train_answer": train["answer"]}
    return values | {"gap": heldout["answer"] - train["answer"]}


def digits(metric: str) -> int:
    return 2 if metric == "exact" else 3


def load_runs(root: Path) -> dict[str, dict[str, Runs]]:
    """budget -> set -> weight -> seed -> result, of every finished run under `root`."""
    runs: dict[str, dict[str, Runs]] = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for path in sorted(root.glob("*/*/w*/seed*/result.json")):
        result = json.loads(path.read_text())
        runs[result["budget"]][result["set"]][result["weight"]][result["seed"]] = result
    return runs


def last(result: dict[str, Any]) -> dict[str, float]:
    return epoch_values(result["epochs"][-1])


def runs_table(runs: Runs) -> list[str]:
    rows = []
    for weight, seeds in sorted(runs.items()):
        results = list(seeds.values())
        steps = sorted({r["steps"] for r in results})
        rows.append(
            [
                f"{weight:g}",
                " ".join(map(str, sorted(seeds))),
                str(len(results[0]["epochs"])),
                f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}",
                f"{statistics.fmean(r['trainable_tokens'] for r in results) / len(results[0]['epochs']):,.0f}",
                f"{statistics.fmean(r['wall_s'] for r in results) / 60:.1f}",
            ]
        )
    header = ["prompt loss weight", "seeds", "epochs", "optimizer steps", "labels per epoch (mean)", "wall min (mean)"]
    return table(header, rows)


def final_table(runs: Runs, base: dict[str, float] | None, metrics: list[tuple[str, str]]) -> list[str]:
    rows = [["base (untrained)", *(f"{base[m]:.{digits(m)}f}" for m, _ in metrics)]] if base else []
    for weight, seeds in sorted(runs.items()):
        values = [last(r) for r in seeds.values()]
        rows.append([f"{weight:g}", *(mean_ci([v[m] for v in values]).format(digits(m)) for m, _ in metrics)])
    return table(["prompt loss weight", *(label for _, label in metrics)], rows)


def paired_table(runs: Runs, metrics: list[tuple[str, str]], baseline: float = 0.0) -> list[str]:
    reference = {seed: last(r) for seed, r in runs.get(baseline, {}).items()}
    rows = []
    for weight, seeds in sorted(runs.items()):
        if weight == baseline:
            continue
        mine = {seed: last(r) for seed, r in seeds.items()}
        cells = [
            paired_cell(paired_difference({s: v[m] for s, v in mine.items()}, {s: v[m] for s, v in reference.items()}), m)
            for m, _ in metrics
        ]
        rows.append([f"{weight:g} − {baseline:g}", *cells])
    return table(["weights", *(label for _, label in metrics)], rows)


def by_epoch_table(runs: Runs, metric: str, paired: bool) -> list[str]:
    """One metric epoch by epoch: mean ± CI per weight, or (paired) each weight minus w = 0, seed by seed."""
    epochs = min(len(r["epochs"]) for seeds in runs.values() for r in seeds.values())
    reference = runs.get(0.0, {})
    rows = []
    for weight, seeds in sorted(runs.items()):
        if paired and weight == 0.0:
            continue
        cells = []
        for epoch in range(epochs):
            mine = {seed: epoch_values(r["epochs"][epoch])[metric] for seed, r in seeds.items()}
            if paired:
                theirs = {seed: epoch_values(r["epochs"][epoch])[metric] for seed, r in reference.items()}
                cells.append(paired_cell(paired_difference(mine, theirs), metric))
            else:
                cells.append(mean_ci(list(mine.values())).format(digits(metric)))
        rows.append([f"{weight:g} − 0" if paired else f"{weight:g}", *cells])
    return table(["weights" if paired else "prompt loss weight", *(f"epoch {e + 1}" for e in range(epochs))], rows)


def curvature(runs: Runs, metric: str) -> str:
    """The quadratic coefficient c of a least-squares fit metric ≈ a + b·w + c·w² over the weights, per seed,
    as mean ± 95% CI over seeds (a U-shaped loss or a peaked accuracy: c > 0 for a loss, c < 0 for accuracy)."""
    weights = sorted(runs)
    seeds = set.intersection(*(set(runs[w]) for w in weights))
    if len(weights) < 3 or not seeds:
        return "-"
    coefficients = [float(np.polyfit(weights, [last(runs[w][seed])[metric] for w in weights], 2)[0]) for seed in sorted(seeds)]
    interval = mean_ci(coefficients)
    return paired_cell(interval, metric)


def set_section(name: str, runs: Runs, base: dict[str, float] | None, budget: str) -> list[str]:
    metrics = set_metrics(name)
    lines = [f"### Set `{name}`", "", *runs_table(runs), ""]
    lines += ["Last epoch, held out (mean ± 95% CI over seeds):", "", *final_table(runs, base, metrics), ""]
    lines += ["Paired differences from w = 0 at the last epoch (same seed; mean ± 95% CI; **bold**: the interval excludes 0):", ""]
    lines += [*paired_table(runs, metrics), ""]
    for metric, label in [(m, label) for m, label in metrics if m in ("answer", "exact")]:
        lines += [f"{label.capitalize()} by epoch (mean ± 95% CI):", "", *by_epoch_table(runs, metric, paired=False), ""]
        lines += [f"{label.capitalize()} by epoch, paired difference from w = 0:", "", *by_epoch_table(runs, metric, paired=True), ""]
    curvatures = [[label, curvature(runs, metric)] for metric, label in metrics]
    lines += ["Curvature in w at the last epoch (c of a per-seed fit a + b·w + c·w²; mean ± 95% CI):", ""]
    lines += [*table(["metric", "c"], curvatures), "", f"![curves](plw_{budget}_{name}.png)", ""]
    return lines


def write_csv(path: Path, runs: dict[str, dict[str, Runs]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["budget", "set", "weight", "seed", "epoch", "step", "wall_s", *(m for m, _ in METRICS)])
    for budget, sets in runs.items():
        for name, weights in sets.items():
            for weight, seeds in sorted(weights.items()):
                for seed, result in sorted(seeds.items()):
                    for line in result["epochs"]:
                        values = epoch_values(line)
                        writer.writerow(
                            [budget, name, weight, seed, line["epoch"], line["step"], result["wall_s"], *(values[m] for m, _ in METRICS)]
                        )
    write_text_atomic(path, buffer.getvalue())


def write_plw_report(root: Path, setting: str) -> Path:
    """results.md, results.csv and the curves, from every finished run under `root`."""
    from experiments.masking_ablation.plots import plot_epochs

    base_path = root / "base/result.json"
    base = json.loads(base_path.read_text()) if base_path.is_file() else {}
    runs = load_runs(root)
    lines = [f"# Prompt loss weight ({setting})", ""]
    for budget, sets in runs.items():
        lines += [f"## Budget {budget.replace('-', ': ', 1)}", ""]
        for name, weights in sorted(sets.items(), key=lambda item: SETS.index(item[0])):
            base_values = epoch_values(base[name]) if name in base else None
            lines += set_section(name, weights, base_values, budget)
            plot_epochs(root / f"plw_{budget}_{name}.png", weights, base_values, f"{name} set, budget {budget}", exact=name == "short")
    write_csv(root / "results.csv", runs)
    write_text_atomic(root / "results.md", "\n".join(lines))
    return root / "results.md"
