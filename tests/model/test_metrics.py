"""A prompt loss weight (`data.prompt_loss_weight`): the step's loss is Σ w·ℓ / Σ w over the whole effective
batch, prompt tokens included, exact under any accumulation and with or without the split head; the
answer's and the prompt's losses are logged apart and add up to the total with the weights; the answer's
is the loss of the same batch without prompt labels (what a run with weight 0 reports)."""

from __future__ import annotations

import lightning
import pytest
from torch.utils.data import DataLoader

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.model.metrics import SUMS, loss_metrics
from tests.model.test_module import GradientRecorder, fit_one_step, tiny_module
from tests.model.test_normalisation import assert_same, definition, weighted_examples

PROMPT_WEIGHT = 0.1


def prompted_examples() -> list[dict[str, list]]:
    """`weighted_examples` whose untrained tokens are trained as prompt with weight 0.1 (as tokenize.py writes them)."""
    rows = []
    for row in weighted_examples():
        prompt = [label == IGNORE_INDEX for label in row["labels"]]
        labels = [token if is_prompt else label for token, label, is_prompt in zip(row["input_ids"], row["labels"], prompt)]
        weights = [PROMPT_WEIGHT if is_prompt else weight for weight, is_prompt in zip(row["weights"], prompt)]
        rows.append({"input_ids": row["input_ids"], "labels": labels, "weights": weights, "prompt_mask": prompt})
    return rows


class PartRecorder(GradientRecorder):
    def on_before_optimizer_step(self, optimizer):
        super().on_before_optimizer_step(optimizer)
        self.parts = {name: float(self.trainer.callback_metrics[f"train/loss_{name}"]) for name in ("answer", "prompt")}


def step(micro_batch: int, accumulation: int, **module_settings) -> PartRecorder:
    return fit_one_step(tiny_module(PartRecorder, **module_settings), prompted_examples(), micro_batch, accumulation)


def parts_by_definition(rows: list[dict[str, list]]) -> dict[str, float]:
    """The answer's and the prompt's weighted mean losses, each by the normalisation's definition."""
    module = tiny_module()
    answer = [{**row, "weights": [0.0 if p else w for w, p in zip(row["weights"], row["prompt_mask"])]} for row in rows]
    prompt = [{**row, "weights": [w if p else 0.0 for w, p in zip(row["weights"], row["prompt_mask"])]} for row in rows]
    return {"answer": definition(module, answer, "token").item(), "prompt": definition(module, prompt, "token").item()}


@pytest.mark.parametrize(("labelled_logits_only", "layouts"), [(True, ((8, 1), (2, 4), (1, 8))), (False, ((2, 4),))])
def test_the_prompt_weighted_loss_is_exact_under_any_accumulation_and_its_parts_are_logged(labelled_logits_only, layouts):
    module = tiny_module()
    loss = definition(module, prompted_examples(), "token")
    loss.backward()
    expected = [p.grad for p in module.parameters()], loss.item()
    parts = parts_by_definition(prompted_examples())
    for micro_batch, accumulation in layouts:
        recorded = step(micro_batch, accumulation, labelled_logits_only=labelled_logits_only)
        assert_same(recorded, expected)
        assert recorded.parts == pytest.approx(parts, rel=1e-5)


def test_answer_and_prompt_losses_add_up_to_the_loss_with_the_weights_and_the_answers_is_the_weight_0_loss():
    module = tiny_module()
    rows = prompted_examples()
    batch = Collator(pad_token_id=0)(rows)
    sums = [float(value.detach()) for value in module.labelled_sums(batch, training=False)[: len(SUMS)]]
    metrics = loss_metrics("val", sums)
    prompt_weight, answer_weight = sums[5], sums[1] - sums[5]
    assert prompt_weight == pytest.approx(PROMPT_WEIGHT * sum(sum(row["prompt_mask"][1:]) for row in rows), rel=1e-6)
    mixed = (answer_weight * metrics["val/loss_answer"] + prompt_weight * metrics["val/loss_prompt"]) / (answer_weight + prompt_weight)
    assert metrics["val/loss"] == pytest.approx(mixed, rel=1e-9)
    # The same rows without the prompt labels (weight 0): their loss is the answer's.
    unprompted = Collator(pad_token_id=0)(weighted_examples())
    alone = loss_metrics("val", [float(value.detach()) for value in module.labelled_sums(unprompted, training=False)[: len(SUMS)]])
    assert metrics["val/loss_answer"] == pytest.approx(alone["val/loss"], rel=1e-5) and "val/loss_prompt" not in alone


def test_validation_logs_the_parts_only_where_the_prompt_is_trained():
    module = tiny_module()
    trainer = lightning.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    prompted = trainer.validate(module, DataLoader(prompted_examples(), batch_size=4, collate_fn=Collator(pad_token_id=0)))[0]
    plain = trainer.validate(module, DataLoader(weighted_examples(), batch_size=4, collate_fn=Collator(pad_token_id=0)))[0]
    assert {"val/loss_answer", "val/loss_prompt"} <= set(prompted) and not {"val/loss_answer", "val/loss_prompt"} & set(plain)
    assert prompted["val/loss_answer"] == pytest.approx(plain["val/loss"], rel=1e-5)


def test_loss_metrics_of_sums():
    metrics = loss_metrics("train", [7.0, 5.0, 20, 10, 1.0, 2.0])  # answer: 6 / 3, prompt: 1 / 2
    assert metrics["train/loss"] == pytest.approx(1.4) and metrics["train/token_accuracy"] == 0.5
    assert metrics["train/loss_answer"] == pytest.approx(2.0) and metrics["train/loss_prompt"] == pytest.approx(0.5)
    assert set(loss_metrics("train", [7.0, 5.0, 20, 10, 0.0, 0.0])) == {"train/loss", "train/perplexity", "train/token_accuracy"}
    assert "train/loss_answer" not in loss_metrics("train", [1.0, 2.0, 20, 10, 1.0, 2.0])  # only prompt tokens: no answer loss
