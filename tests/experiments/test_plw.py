"""The prompt-loss-weight study: its two sets (deterministic, disjoint, short and long answers, held-out
words unseen in training), its per-epoch scores (answer and prompt losses over the right tokens, exact
match as greedy decoding decides it), its run configs, and (slow) the whole flow on a tiny model."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from experiments.masking_ablation.epochs import score_labelled
from experiments.masking_ablation.plw import LONG_WORDS, PLW_SIZES, SETS, plw_config, prepare_plw_data
from experiments.masking_ablation.runner import Budget, Study
from experiments.masking_ablation.short_answers import CATEGORIES, half
from sftlab.data.labels.tokenize import IGNORE_INDEX


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_sets_are_deterministic_disjoint_and_short_or_long(tmp_path):
    paths = prepare_plw_data("plw", tmp_path / "a")
    again = prepare_plw_data("plw", tmp_path / "b")
    assert all(paths[key].read_text() == again[key].read_text() for key in paths)
    sizes = PLW_SIZES["plw"]
    for name in SETS:
        train, heldout = records(paths[f"{name}/train"]), records(paths[f"{name}/heldout"])
        assert (len(train), len(heldout)) == (sizes.train[name], sizes.heldout[name])
        assert not {json.dumps(r) for r in train} & {json.dumps(r) for r in heldout}
        assert records(paths[f"{name}/train_sample"]) == train[: sizes.train_sample]
        answers = [r["messages"][-1]["content"] for r in train + heldout]
        if name == "short":
            assert all(len(answer.split()) == 1 for answer in answers)
        else:
            assert all(LONG_WORDS[0] <= len(answer.split()) <= LONG_WORDS[1] for answer in answers)
    # Held-out category questions ask about words no training record has.
    for word in [w for words in CATEGORIES.values() for w in half(words, "heldout")]:
        asked = f"Word: {word}"
        assert not any(r["messages"][0]["content"].endswith(asked) for r in records(paths["short/train"]))


class Predicts(torch.nn.Module):
    """A model whose most likely next token at position t is `predicted[t]` (logit 5, others 0)."""

    def __init__(self, predicted: list[int], vocab: int = 16) -> None:
        super().__init__()
        self.predicted, self.vocab = predicted, vocab
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, use_cache=False):
        logits = torch.zeros(1, input_ids.shape[1], self.vocab)
        logits[0, torch.arange(len(self.predicted)), torch.tensor(self.predicted)] = 5.0
        return SimpleNamespace(logits=logits)


def test_scores_average_the_right_tokens_and_exact_match_needs_every_answer_token():
    ids = [1, 4, 5, 6, 2, 7, 2]  # prompt 1 4 5 6 | answer 7 and end-of-turn 2 (positions 5, 6)
    answers = {"r": (ids, [IGNORE_INDEX] * 5 + [7, 2])}
    prompts = {"r": (ids, [1, 4, 5, 6, 2, IGNORE_INDEX, IGNORE_INDEX])}
    right = math.log(1 + 15 * math.exp(-5.0))  # the loss of a token predicted with logit 5 among 16
    wrong = math.log(math.exp(5.0) + 15) - 0.0
    perfect = score_labelled(Predicts(ids[1:]), answers, prompts)
    assert perfect["exact"] == 1.0 and perfect["answer"] == pytest.approx(right, abs=1e-5)
    assert perfect["tokens"] == {"answer": 2, "prompt": 4}  # the first token is never predicted
    prompt_wrong = score_labelled(Predicts([9, 5, 6, 2, 7, 2]), answers, prompts)
    assert prompt_wrong["exact"] == 1.0 and prompt_wrong["prompt"] == pytest.approx((wrong + 3 * right) / 4, abs=1e-5)
    stops_late = score_labelled(Predicts([4, 5, 6, 2, 7, 9]), answers, prompts)  # writes the answer, does not stop
    assert stops_late["exact"] == 0.0 and stops_late["answer"] == pytest.approx((right + wrong) / 2, abs=1e-5)


def test_a_run_config_sets_the_weight_seed_set_and_epochs(tmp_path):
    study = Study("plw_smoke", tmp_path)
    paths = prepare_plw_data("plw_smoke", tmp_path / "data")
    config = plw_config(study, "short", 0.1, 3, Budget.parse("epochs:4"), paths)
    assert config["seed_everything"] == config["data"]["seed"] == 3 and config["data"]["prompt_loss_weight"] == 0.1
    assert config["data"]["train_path"] == str(paths["short/train"]) and config["data"]["masking"] == "assistant"
    assert config["trainer"]["max_epochs"] == 4 and config["trainer"]["max_steps"] == -1
    (scorer,) = config["trainer"]["callbacks"]
    assert scorer["init_args"]["sets"]["heldout"] == str(paths["short/heldout"])
    assert scorer["init_args"]["output"].endswith("epochs-4/short/w0.1/seed3/epochs.jsonl")
    with pytest.raises(ValueError, match="epochs:N or steps:N"):
        plw_config(study, "short", 0.1, 3, Budget.parse("tokens:100"), paths)


@pytest.mark.slow  # four fits of a tiny model, each scored after both epochs: a few minutes on two busy cores
def test_plw_smoke_study_end_to_end(tmp_path, capsys):
    from experiments.masking_ablation.__main__ import main

    command = ["--setting", "plw_smoke", "--root", str(tmp_path), "--seeds", "0", "1", "--weights", "0.5", "--sets", "short"]
    main([*command, "--budget", "epochs:2"])
    results = [json.loads(path.read_text()) for path in tmp_path.glob("epochs-2/short/w*/seed*/result.json")]
    assert sorted((r["weight"], r["seed"]) for r in results) == [(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)]
    for result in results:
        assert [line["epoch"] for line in result["epochs"]] == [1, 2] and result["epochs"][0]["heldout"]["tokens"]["answer"] > 0
    same_rows = {r["seed"]: r["steps"] for r in results if r["weight"] == 0.0}
    assert all(r["steps"] == same_rows[r["seed"]] for r in results)  # every weight trains the same rows
    report = (tmp_path / "results.md").read_text()
    assert "### Set `short`" in report and "| 0.5 − 0 |" in report
    assert (tmp_path / "plw_epochs-2_short.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    main([*command, "--budget", "epochs:2"])
    assert capsys.readouterr().err.count("done before") == 4
