"""Validation curves with seed bands: loss on the validation split (all assistant tokens, the same for
every run) against optimizer steps and against trainable tokens; per strategy the mean over seeds, the
range of the seeds shaded, and the untrained model as the common starting point."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any


def mean_curve(seeds: dict[int, dict[str, Any]]) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Steps, trainable tokens, mean, min and max loss at each validation point all seeds have."""
    curves = [result["curve"] for result in seeds.values()]
    points = min(len(curve) for curve in curves)
    columns = [[curve[i] for curve in curves] for i in range(points)]
    steps = [statistics.fmean(p[0] for p in column) for column in columns]
    tokens = [statistics.fmean(p[1] for p in column) for column in columns]
    losses = [[p[2] for p in column] for column in columns]
    return steps, tokens, [statistics.fmean(v) for v in losses], [min(v) for v in losses], [max(v) for v in losses]


def plot_curves(path: Path, groups: dict[str, dict[int, dict[str, Any]]], base: dict[str, Any] | None, budget: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    start = base["curve"][0] if base else None
    for name, seeds in groups.items():
        steps, tokens, mean, low, high = mean_curve(seeds)
        if start:
            steps, tokens, mean, low, high = [0, *steps], [0, *tokens], [start[2], *mean], [start[2], *low], [start[2], *high]
        for axis, x in zip(axes, (steps, tokens)):
            (line,) = axis.plot(x, mean, marker="o", markersize=3, label=f"{name} ({len(seeds)} seeds)")
            axis.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    axes[0].set_xlabel("optimizer steps")
    axes[1].set_xlabel("trainable tokens")
    axes[0].set_ylabel("validation loss (all assistant tokens)")
    for axis in axes:
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.suptitle(f"Validation loss, budget {budget}: mean over seeds, range shaded")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_epochs(path: Path, runs: dict[float, dict[int, dict[str, Any]]], base: dict[str, float] | None, title: str, exact: bool) -> None:
    """The prompt-loss-weight study: per weight, against epochs, the answer loss held out (solid) and on the
    training sample (dashed), the held-out prompt loss and (`exact`) the held-out exact match; mean over seeds
    with the seeds' range shaded; epoch 0 is the untrained model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from experiments.masking_ablation.plw_report import epoch_values

    panels = [[("answer", "-"), ("train_answer", "--")], [("prompt", "-")], *([[("exact", "-")]] if exact else [])]
    labels = ["answer loss (held out: solid; training sample: dashed)", "held-out prompt loss", "held-out exact match"]
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5))
    for index, (weight, seeds) in enumerate(sorted(runs.items())):
        epochs = min(len(result["epochs"]) for result in seeds.values())
        x = list(range(0 if base else 1, epochs + 1))
        for axis, panel in zip(axes, panels):
            for metric, style in panel:
                per_epoch = [[epoch_values(result["epochs"][e])[metric] for result in seeds.values()] for e in range(epochs)]
                if base:
                    per_epoch = [[base[metric]] * len(seeds), *per_epoch]
                mean = [statistics.fmean(values) for values in per_epoch]
                label = f"w = {weight:g} ({len(seeds)} seeds)" if style == "-" else None
                axis.plot(x, mean, style, color=f"C{index}", marker="o", markersize=3, label=label)
                axis.fill_between(x, [min(v) for v in per_epoch], [max(v) for v in per_epoch], color=f"C{index}", alpha=0.12, linewidth=0)
    for axis, label in zip(axes, labels):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    figure.suptitle(f"Prompt loss weight, {title}: mean over seeds, range shaded")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
