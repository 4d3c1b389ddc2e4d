"""The ablation's held-out scoring: every masking's loss from one forward pass equals `sftlab eval ppl`'s
(the training module's validation) on the same file; answers are judged by their result only."""

from __future__ import annotations

import pytest

from experiments.masking_ablation.heldout import EVAL_MASKINGS, SOURCE_METRICS, final_answer, score_source
from experiments.masking_ablation.reasoning_data import answer_key
from experiments.masking_ablation.runner import REPO
from experiments.masking_ablation.sources import SOURCES, prepare_data
from sftlab.evaluation.perplexity import evaluate_strategy
from sftlab.inference.loading import load_for_inference
from sftlab.model.loading import load_causal_lm
from tests.training.test_export import TINY_SMOLLM2_VOCAB

TEMPLATE = str(REPO / "experiments/masking_ablation/data/smollm2_tools.jinja")


@pytest.fixture(scope="module")
def tiny_model(testdata, smollm2_tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    load_causal_lm(config=TINY_SMOLLM2_VOCAB).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    return load_for_inference(str(folder), template=TEMPLATE)


def test_one_forward_pass_gives_each_maskings_validation_loss(testdata, tiny_model, tmp_path):
    paths = prepare_data("smoke", tmp_path / "data", testdata)
    everything = tmp_path / "heldout.jsonl"  # every source's held-out records: every masking has tokens there
    everything.write_text("".join(paths[f"heldout/{source}"].read_text() for source in SOURCES))
    scores = score_source(tiny_model, everything, tuple(EVAL_MASKINGS), 512, tmp_path / "cache")
    assert set(scores) == set(EVAL_MASKINGS)
    for metric, score in scores.items():
        expected = evaluate_strategy(tiny_model, str(everything), EVAL_MASKINGS[metric], 512, cache_dir=str(tmp_path / "cache"))
        assert score["tokens"] == expected["tokens"] > 0, metric
        assert score["loss"] == pytest.approx(expected["loss"], abs=2e-4), metric
    assert set().union(*SOURCE_METRICS.values()) == set(EVAL_MASKINGS)


def test_an_answer_is_right_when_its_result_is():
    assert answer_key("17 dollars.") == "17" and answer_key("Cy.") == "Cy" and answer_key("14:45.") == "14:45"
    assert final_answer("<think>\n3 × 4 = 12\n</think>\n\n12 dollars.") == "12 dollars."
    assert answer_key(final_answer("12 dollars, I think.")) == "12"
    assert answer_key(final_answer("<think>\n12\n</think>\n\nThe answer is 12.")) != "12"  # only the first word counts
