"""`TokenBudget`: a fit stops after the first optimizer step at which the trainable tokens, summed over
the accumulation window and the ranks, reach the budget."""

from __future__ import annotations

from itertools import accumulate
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.errors import SftlabError
from sftlab.training.budget import TokenBudget
from tests.test_cli import sftlab

BUDGET = 2500  # tiny.yaml trains roughly 1,000 labels per optimizer step: the budget ends the run at step 3 or so


def fit_with_budget(testdata: Path, root: Path, *extra: str) -> EventAccumulator:
    overlay = root / "budget.yaml"
    root.mkdir(parents=True)
    callbacks = [{"class_path": "sftlab.training.budget.TokenBudget", "init_args": {"max_trainable_tokens": BUDGET}}]
    overlay.write_text(yaml.safe_dump({"trainer": {"max_steps": 12, "callbacks": callbacks}}))
    result = sftlab(
        "fit",
        "--config",
        "configs/tiny.yaml",
        "--config",
        str(overlay),
        "--data.val_path",
        "null",
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.cache_dir",
        str(root / "cache"),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventAccumulator(str(root / "lightning_logs/version_0"))
    events.Reload()
    return events


def assert_stopped_at_the_budget(events: EventAccumulator) -> None:
    per_step = [event.value for event in events.Scalars("train/trainable_tokens")]  # the module's world-summed count
    totals = list(accumulate(per_step))
    stop = next(step for step, total in enumerate(totals, 1) if total >= BUDGET)
    assert 1 < stop < 12  # the budget, not max_steps, ended the run
    assert len(per_step) == stop
    assert [event.value for event in events.Scalars("train/cumulative_trainable_tokens")] == totals


def test_a_fit_stops_at_the_optimizer_step_that_reaches_the_budget_counting_every_micro_batch(testdata, tmp_path):
    # tiny.yaml accumulates 2 micro-batches per step: the count is per optimizer step, not per batch.
    assert_stopped_at_the_budget(fit_with_budget(testdata, tmp_path / "run"))


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_two_process_ddp_counts_the_tokens_of_every_rank(testdata, tmp_path):
    events = fit_with_budget(testdata, tmp_path / "run", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert_stopped_at_the_budget(events)


def test_a_budget_must_be_positive():
    with pytest.raises(SftlabError, match="max_trainable_tokens must be > 0"):
        TokenBudget(0)


def test_tokens_trained_only_through_the_prompt_loss_weight_do_not_count():
    logged = {}
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda name, value, **_: logged.update({name: value}))
    trainer = SimpleNamespace(global_step=0, should_stop=False, strategy=SimpleNamespace(reduce=lambda tensor, reduce_op: tensor))
    budget = TokenBudget(5)
    budget.on_train_start(trainer, module)
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 5, 6, 7, 8]])  # six labels, four of them the prompt's
    prompt = torch.tensor([[False, True, True, True, True, False, False]])
    trainer.global_step = 1
    budget.on_train_batch_end(trainer, module, None, {"labels": labels, "prompt_mask": prompt}, 0)
    assert budget.trained == 2 and logged["train/cumulative_trainable_tokens"] == 2 and not trainer.should_stop
    trainer.global_step = 2
    budget.on_train_batch_end(trainer, module, None, {"labels": labels}, 1)  # without a prompt mask every label counts
    assert budget.trained == 8 and trainer.should_stop
