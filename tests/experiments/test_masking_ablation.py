"""The masking ablation end to end in its smoke setting (a tiny random model): two strategies, two seeds,
an equal-step and an equal-token budget; the runs are reused when the command is repeated."""

from __future__ import annotations

import csv
import json

import pytest

from experiments.masking_ablation.__main__ import main

pytestmark = pytest.mark.slow  # eight fits of a tiny model: a few minutes on two busy cores


def test_smoke_ablation_with_seeds_and_both_budgets(tmp_path, capsys):
    common = ["--setting", "smoke", "--root", str(tmp_path), "--seeds", "0", "1", "--strategies", "assistant", "answer_only"]
    main([*common, "--budget", "steps:3"])
    main([*common, "--budget", "tokens:700"])
    report = (tmp_path / "results.md").read_text()
    assert "## Budget steps: 3" in report and "## Budget tokens: 700" in report
    assert report.count("Paired differences from `assistant`") == 2

    results = [json.loads(path.read_text()) for path in tmp_path.glob("*/*/seed*/result.json")]
    runs = {(r["budget"], r["strategy"], r["seed"]): r for r in results}
    assert len(runs) == 8
    for result in results:
        # The curve ends at the run's end: a run stopped by its token budget between validations is scored
        # on the validation split afterwards.
        assert result["curve"][-1][:2] == [result["steps"], result["trainable_tokens"]]
        if "curve" in result["heldout"]:
            assert result["heldout"]["curve"]["assistant"]["loss"] == result["curve"][-1][2]
        if result["budget"] == "steps-3":
            assert result["steps"] == 3
        else:  # the budget is reached, and not by more than one step's tokens
            per_step = result["trainable_tokens"] / result["steps"]
            assert 700 <= result["trainable_tokens"] < 700 + 3 * per_step
    by_seed = {seed: runs[("steps-3", "assistant", seed)]["trainable_tokens"] for seed in (0, 1)}
    assert by_seed[0] != by_seed[1]  # the seed changes the data order
    assert runs[("steps-3", "answer_only", 0)]["trainable_tokens"] < by_seed[0]

    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 8 and all(row["tools/tool_calls"] for row in rows)
    for budget in ("steps-3", "tokens-700"):
        assert (tmp_path / f"curves_{budget}.png").read_bytes()[:4] == b"\x89PNG"

    capsys.readouterr()
    main([*common, "--budget", "steps:3"])
    assert capsys.readouterr().err.count("done before") == 4
