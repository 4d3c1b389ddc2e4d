"""The runner's run configs: the seed sets initialisation, data order and dropout; a token budget adds
`TokenBudget` and plans the schedule's length from the strategy's trainable tokens per step."""

from __future__ import annotations

import pytest

from experiments.masking_ablation.runner import Budget, Study, run_config
from experiments.masking_ablation.sources import prepare_data


def test_a_token_budget_plans_the_schedule_to_end_near_it(testdata, tmp_path):
    study = Study("smoke", tmp_path)
    paths = prepare_data("smoke", tmp_path / "data", testdata)
    by_steps = run_config(study, "assistant", 3, Budget.parse("steps:5"), paths)
    assert by_steps["seed_everything"] == by_steps["data"]["seed"] == 3
    assert by_steps["trainer"]["max_steps"] == 5 and len(by_steps["trainer"]["callbacks"]) == 1
    by_tokens = run_config(study, "assistant", 3, Budget.parse("tokens:5000"), paths)
    budget = by_tokens["trainer"]["callbacks"][-1]
    assert budget["class_path"] == "sftlab.training.budget.TokenBudget" and budget["init_args"] == {"max_trainable_tokens": 5000}
    fewer = run_config(study, "answer_only", 3, Budget.parse("tokens:5000"), paths)
    assert fewer["trainer"]["max_steps"] > by_tokens["trainer"]["max_steps"]  # fewer labels per step: more steps
    with pytest.raises(ValueError, match="steps:N, tokens:N or epochs:N"):
        Budget.parse("tokens:lots")


def test_an_epochs_budget_trains_whole_epochs_and_validates_after_each(testdata, tmp_path):
    paths = prepare_data("smoke", tmp_path / "data", testdata)
    trainer = run_config(Study("smoke", tmp_path), "assistant", 0, Budget.parse("epochs:3"), paths)["trainer"]
    assert (trainer["max_epochs"], trainer["max_steps"], trainer["check_val_every_n_epoch"], trainer["val_check_interval"]) == (
        3,
        -1,
        1,
        1.0,
    )
    assert len(trainer["callbacks"]) == 1  # no TokenBudget
