"""The masking ablation's smoke setting: four runs, one table / CSV / PNG row per strategy, resumable."""

from __future__ import annotations

import csv

import pytest

from experiments.masking_ablation.runner import STRATEGIES, prepare_data, run_ablation


@pytest.mark.slow
def test_smoke_ablation_writes_table_csv_and_plot_and_does_not_repeat_runs(testdata, tmp_path, capsys):
    prepare_data("smoke", tmp_path, testdata)  # the FastChat sample that ships with the tests, not ../shared's
    results = run_ablation("smoke", tmp_path)
    assert [r["strategy"] for r in results] == list(STRATEGIES)
    by_name = {r["strategy"]: r for r in results}
    assert all(r["steps"] == 4 and len(r["val_curve"]) == 2 for r in results)  # same budget, same validation points
    tokens = {name: r["trainable_tokens"] for name, r in by_name.items()}
    assert tokens["none"] > tokens["assistant"] > tokens["last_assistant"] > 0
    held_out = {r["heldout_assistant_tokens"] for r in results}
    assert len(held_out) == 1  # every run evaluated on the very same tokens

    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [row["strategy"] for row in rows] == list(STRATEGIES)
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {name} |" in table for name in STRATEGIES)
    assert (tmp_path / "validation_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == sorted(STRATEGIES)

    capsys.readouterr()
    run_ablation("smoke", tmp_path, ("assistant",))
    assert "[assistant] done before" in capsys.readouterr().err
