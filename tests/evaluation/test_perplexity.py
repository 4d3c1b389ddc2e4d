"""`sftlab eval ppl`: the same tokens as training per strategy; the tuned model beats its base."""

from __future__ import annotations

import json

from sftlab.model.loading import load_causal_lm
from tests.test_cli import REPO, sftlab
from tests.training.test_export import TINY_SMOLLM2_VOCAB


def _ppl(model, tmp_path, *masking):
    result = sftlab(
        "eval",
        "ppl",
        "--model",
        str(model),
        "--data",
        str(REPO / "data/demo/chat_sharegpt.json"),
        "--masking",
        *masking,
        "--max_seq_length",
        "256",
        "--cache_dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {row["masking"]: row for row in json.loads(result.stdout)}


def test_trained_model_has_lower_loss_than_its_base_on_the_same_tokens(tiny_lora_run, smollm2_tokenizer, tmp_path):
    trained = _ppl(tiny_lora_run / "checkpoints/last.ckpt", tmp_path, "none", "assistant", "last_assistant")
    assert trained["none"]["tokens"] > trained["assistant"]["tokens"] > trained["last_assistant"]["tokens"] > 0
    base = tmp_path / "base"
    load_causal_lm(config=TINY_SMOLLM2_VOCAB).save_pretrained(base)
    smollm2_tokenizer.save_pretrained(base)
    untrained = _ppl(base, tmp_path, "assistant")
    assert untrained["assistant"]["tokens"] == trained["assistant"]["tokens"]
    assert trained["assistant"]["loss"] < untrained["assistant"]["loss"] - 0.01
    assert abs(untrained["assistant"]["perplexity"] - 49152) / 49152 < 0.2  # a random model: about uniform


def test_unknown_strategy_is_one_line(tmp_path):
    result = sftlab("eval", "ppl", "--model", str(tmp_path), "--data", "x", "--masking", "prompt_only")
    assert result.returncode == 2 and "unknown strategy 'prompt_only'" in result.stderr.splitlines()[-1]


def test_the_device_flag_reaches_the_trainer():
    from sftlab.evaluation.perplexity import accelerator_of

    assert accelerator_of("cpu") == {"accelerator": "cpu", "devices": 1}
    assert accelerator_of("cuda") == {"accelerator": "gpu", "devices": [0]}
    assert accelerator_of("cuda:1") == {"accelerator": "gpu", "devices": [1]}
