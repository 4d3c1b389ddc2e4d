"""Model loading: random tiny configs, hub-format folders, GGUF files (converted once), clear errors."""

from __future__ import annotations

import pytest
import torch

from sftlab.errors import SftlabError
from sftlab.model.loading import gguf_as_folder, load_causal_lm

TINY = {
    "model_type": "llama",
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}


def test_random_model_from_config_is_seeded():
    first, second = load_causal_lm(config=TINY, seed=3), load_causal_lm(config=TINY, seed=3)
    assert type(first).__name__ == "LlamaForCausalLM" and first.config.num_hidden_layers == 2
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(load_causal_lm(config=TINY, seed=4).parameters()), next(first.parameters()))


def test_folder_round_trip(tmp_path):
    model = load_causal_lm(config=TINY)
    model.save_pretrained(tmp_path / "tiny")
    loaded = load_causal_lm(str(tmp_path / "tiny"))
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_missing_and_broken_sources_are_clear_errors(tmp_path):
    with pytest.raises(SftlabError, match="no such file or folder"):
        load_causal_lm(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SftlabError, match="cannot load a causal LM"):
        load_causal_lm(str(tmp_path / "empty"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    with pytest.raises(SftlabError, match="cannot read GGUF file"):
        gguf_as_folder(broken, tmp_path / "cache")
    with pytest.raises(SftlabError, match="model_type"):
        load_causal_lm()


@pytest.mark.slow
def test_real_smollm2_gguf_is_converted_once_and_answers(smollm2_gguf, tmp_path, monkeypatch, smollm2_tokenizer):
    monkeypatch.setenv("SFTLAB_CACHE", str(tmp_path))
    gguf = smollm2_gguf
    model = load_causal_lm(str(gguf))
    assert sum(p.numel() for p in model.parameters()) > 130_000_000
    folder = gguf_as_folder(gguf)
    assert (folder / "config.json").is_file() and folder.parent == tmp_path / "gguf"
    prompt = smollm2_tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in smollm2_tokenizer.decode(out[0, prompt["input_ids"].shape[1] :])
