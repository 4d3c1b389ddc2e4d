"""The ablation's write-up from result files: tables of mean ± CI, paired differences in bold only where
their interval excludes 0, one CSV row per run, a curves plot per budget."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from experiments.masking_ablation.report import write_report


def result(strategy: str, seed: int, budget: str, answer_loss: float, reasoning_loss: float) -> dict:
    return {
        "strategy": strategy,
        "seed": seed,
        "budget": budget,
        "steps": 4,
        "trainable_tokens": 1000 + seed,
        "wall_s": 60.0,
        "curve": [[2, 500, 3.0 - seed * 0.1], [4, 1000, 2.5 - seed * 0.1]],
        "heldout": {"reasoning": {"answer": {"loss": answer_loss, "tokens": 10}, "reasoning": {"loss": reasoning_loss, "tokens": 30}}},
        "reasoning": {"accuracy": 0.5, "reasoned": 1.0, "examples": []},
    }


def write(root: Path, data: dict) -> None:
    path = root / data["budget"] / data["strategy"] / f"seed{data['seed']}" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))


def test_tables_csv_and_plots_from_the_result_files(tmp_path):
    offsets = {0: 0.0, 1: 0.5, 2: -0.5}  # seed effects shared by both strategies
    for seed, offset in offsets.items():
        write(tmp_path, result("assistant", seed, "steps-4", 2.0 + offset, 1.0 + offset))
        # answer_only: answers 0.10-0.12 better on every seed (consistent), reasoning +0.1/+0.5/-0.3 (not)
        write(tmp_path, result("answer_only", seed, "steps-4", 1.9 + offset - seed * 0.01, 1.0 + offset + (0.1, 0.5, -0.3)[seed]))
    write(tmp_path, result("assistant", 0, "tokens-900", 2.0, 1.0))
    base = {"strategy": "base (untrained)", "steps": 0, "trainable_tokens": 0, "curve": [[0, 0, 4.0]], "heldout": {}, "reasoning": {}}
    (tmp_path / "base").mkdir()
    (tmp_path / "base/result.json").write_text(json.dumps(base))

    report = write_report(tmp_path, "test", ["assistant", "answer_only"], ["assistant"]).read_text()

    assert "## Budget steps: 4" in report and "## Budget tokens: 900" in report
    assert "| assistant | 0 1 2 | 4 | 1,001 | 1.0 |" in report
    assert "| answer_only | 1.890 ± 1.255 | 0.50 ± 0.00 |" in report  # 1.90, 2.39, 1.38: sd 0.5051 -> ± 4.303 · 0.5051 / √3
    paired = next(line for line in report.splitlines() if line.startswith("| answer_only | **"))
    answer, accuracy, reasoning = paired.split(" | ")[1:4]
    assert answer == "**-0.110 ± 0.025**"  # -0.10, -0.11, -0.12
    assert accuracy == "+0.00 ± 0.00"
    assert reasoning == "+0.100 ± 0.994"  # +0.1, +0.5, -0.3: the interval holds 0, so not bold

    assert report.count("Paired differences") == 1  # the tokens budget ran only the baseline

    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 7 and {row["budget"] for row in rows} == {"steps-4", "tokens-900"}
    assert float(next(r for r in rows if r["strategy"] == "answer_only" and r["seed"] == "1")["reasoning/answer"]) == 2.39
    for budget in ("steps-4", "tokens-900"):
        assert (tmp_path / f"curves_{budget}.png").read_bytes()[:4] == b"\x89PNG"
