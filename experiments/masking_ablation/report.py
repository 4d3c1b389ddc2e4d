"""The ablation's write-up from the runs' `result.json` files: `results.md` (per budget: the runs, every
metric as mean ± 95% CI over seeds, the paired differences from each baseline strategy), `results.csv`
(one row per run, every metric, for your own analysis) and `curves_<budget>.png` (validation loss
against optimizer steps and against trainable tokens, mean over seeds with the seeds' range shaded)."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.masking_ablation.stats import Interval, mean_ci, paired_difference
from sftlab.artifacts import write_text_atomic

# (metric, column label), grouped into the tables of results.md; losses are lower-is-better.
ANSWER_METRICS = [
    ("oasst/assistant", "oasst answers"),
    ("fastchat/assistant", "fastchat answers"),
    ("reasoning/answer", "reasoning: answer"),
    ("tools/answer", "tools: answer text"),
    ("accuracy", "reasoning accuracy"),
    ("mtbench", "MT-bench"),
]
PART_METRICS = [
    ("reasoning/reasoning", "reasoning: reasoning"),
    ("tools/tool_calls", "tools: tool calls"),
    ("oasst/prompt", "oasst prompts"),
    ("fastchat/prompt", "fastchat prompts"),
    ("reasoned", "reasoned first"),
    ("curve/assistant", "validation loss"),
]


def metric_values(result: dict[str, Any]) -> dict[str, float]:
    """A run's metrics as `{name: value}`: held-out losses `<source>/<masking>`, `accuracy`, `reasoned`, `mtbench`."""
    values = {f"{source}/{name}": v["loss"] for source, metrics in result.get("heldout", {}).items() for name, v in metrics.items()}
    values |= {key: value for key, value in (result.get("reasoning") or {}).items() if key in ("accuracy", "reasoned")}
    if result.get("mtbench") is not None:
        values["mtbench"] = result["mtbench"]
    return values


def load_results(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every finished run under `root`, by budget (folder order)."""
    budgets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(root.glob("*/*/seed*/result.json")):
        result = json.loads(path.read_text())
        budgets[result["budget"]].append(result)
    return dict(budgets)


def by_strategy(results: list[dict[str, Any]], order: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    grouped: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for result in results:
        grouped[result["strategy"]][result["seed"]] = result
    return {name: grouped[name] for name in order if name in grouped}


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def runs_table(groups: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    rows = []
    for name, seeds in groups.items():
        runs = list(seeds.values())
        steps = sorted({r["steps"] for r in runs})
        rows.append(
            [
                name,
                " ".join(map(str, sorted(seeds))),
                f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}",
                f"{statistics.fmean(r['trainable_tokens'] for r in runs):,.0f}",
                f"{statistics.fmean(r['wall_s'] for r in runs) / 60:.1f}",
            ]
        )
    return table(["strategy", "seeds", "optimizer steps", "trainable tokens (mean)", "wall min (mean)"], rows)


def digits(metric: str) -> int:
    return 2 if metric in ("accuracy", "reasoned", "mtbench") else 3


def metric_table(groups: dict[str, dict[int, dict[str, Any]]], metrics: list[tuple[str, str]], base: dict[str, Any] | None) -> list[str]:
    """Mean ± 95% CI over seeds per strategy and metric (the untrained model first, one value)."""
    present = [(m, label) for m, label in metrics if any(m in metric_values(r) for seeds in groups.values() for r in seeds.values())]
    rows = []
    if base:
        values = metric_values(base)
        rows.append(["base (untrained)", *(f"{values[m]:.{digits(m)}f}" if m in values else "-" for m, _ in present)])
    for name, seeds in groups.items():
        per_run = [metric_values(r) for r in seeds.values()]
        cells = [mean_ci([v[m] for v in per_run if m in v]).format(digits(m)) if any(m in v for v in per_run) else "-" for m, _ in present]
        rows.append([name, *cells])
    return table(["strategy", *(label for _, label in present)], rows)


def paired_cell(interval: Interval | None, metric: str) -> str:
    if interval is None:
        return "-"
    text = interval.format(digits(metric), signed=True)
    return f"**{text}**" if interval.excludes_zero else text


def paired_table(groups: dict[str, dict[int, dict[str, Any]]], baseline: str, metrics: list[tuple[str, str]]) -> list[str]:
    """Per strategy and metric: mean ± 95% CI of (strategy − baseline) over the seeds both ran; bold where
    the interval excludes 0."""
    reference = {seed: metric_values(r) for seed, r in groups.get(baseline, {}).items()}
    rows = []
    for name, seeds in groups.items():
        if name == baseline:
            continue
        values = {seed: metric_values(r) for seed, r in seeds.items()}
        cells = []
        for metric, _ in metrics:
            mine = {seed: v[metric] for seed, v in values.items() if metric in v}
            theirs = {seed: v[metric] for seed, v in reference.items() if metric in v}
            cells.append(paired_cell(paired_difference(mine, theirs), metric))
        rows.append([name, *cells])
    return table(["strategy − " + baseline, *(label for _, label in metrics)], rows)


def budget_section(
    budget: str, results: list[dict[str, Any]], order: list[str], baselines: list[str], base: dict[str, Any] | None
) -> list[str]:
    groups = by_strategy(results, order)
    everything = ANSWER_METRICS + PART_METRICS
    present = [(m, label) for m, label in everything if any(m in metric_values(r) for r in results)]
    lines = [f"## Budget {budget.replace('-', ': ', 1)}", "", *runs_table(groups), ""]
    lines += ["Held-out loss on answers (mean ± 95% CI over seeds) and reasoning accuracy:", ""]
    lines += [*metric_table(groups, ANSWER_METRICS, base), ""]
    lines += ["Held-out loss on other parts, and the fraction of reasoning answers that reasoned first:", ""]
    lines += [*metric_table(groups, PART_METRICS, base), ""]
    for baseline in baselines:
        if baseline in groups and any(name != baseline for name in groups):
            lines += [f"Paired differences from `{baseline}` (same seed; mean ± 95% CI; **bold**: the interval excludes 0):", ""]
            lines += [*paired_table(groups, baseline, present), ""]
    return [*lines, f"![validation curves](curves_{budget}.png)", ""]


def write_csv(path: Path, budgets: dict[str, list[dict[str, Any]]]) -> None:
    runs = [r for results in budgets.values() for r in results]
    metrics = sorted({m for r in runs for m in metric_values(r)})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["budget", "strategy", "seed", "steps", "trainable_tokens", "wall_s", *metrics])
    for r in runs:
        values = metric_values(r)
        writer.writerow(
            [r["budget"], r["strategy"], r["seed"], r["steps"], r["trainable_tokens"], r["wall_s"], *(values.get(m, "") for m in metrics)]
        )
    write_text_atomic(path, buffer.getvalue())


def write_report(root: Path, setting: str, order: list[str], baselines: list[str]) -> Path:
    """results.md, results.csv and one curves PNG per budget, from every finished run under `root`."""
    from experiments.masking_ablation.plots import plot_curves

    budgets = load_results(root)
    found = {r["strategy"] for results in budgets.values() for r in results}
    order = [*order, *sorted(found - set(order))]
    base_path = root / "base/result.json"
    base = json.loads(base_path.read_text()) if base_path.is_file() else None
    lines = [f"# Masking ablation ({setting})", ""]
    for budget, results in budgets.items():
        lines += budget_section(budget, results, order, baselines, base)
        plot_curves(root / f"curves_{budget}.png", by_strategy(results, order), base, budget)
    write_csv(root / "results.csv", budgets)
    write_text_atomic(root / "results.md", "\n".join(lines))
    return root / "results.md"
