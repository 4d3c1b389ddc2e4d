"""Attention implementations (model/attention.py): unset, the model gets transformers' own pick, from a config
or a folder; a named one it lacks is a one-line error naming those it has (the matrix's `attention` cell runs
this on every family, the corpus case `attention_the_model_lacks` through `sftlab fit`)."""

from __future__ import annotations

import pytest

from sftlab.errors import SftlabError
from sftlab.model.loading import load_causal_lm
from tests.model.test_loading import TINY

GEMMA2 = {**TINY, "model_type": "gemma2", "head_dim": 16}


def test_a_folder_loads_with_transformers_pick_and_refuses_what_the_model_lacks(tmp_path):
    load_causal_lm(config=GEMMA2).save_pretrained(tmp_path / "gemma2")
    assert load_causal_lm(str(tmp_path / "gemma2")).config._attn_implementation == "eager"  # Gemma-2 has no sdpa
    with pytest.raises(SftlabError) as refused:
        load_causal_lm(str(tmp_path / "gemma2"), attn_implementation="sdpa")
    message = str(refused.value)
    assert message == (
        "model.causal_lm.attn_implementation: Gemma2ForCausalLM has no 'sdpa' attention; it accepts eager, flex_attention, "
        "flash_attention_2, flash_attention_3 (leave it unset for transformers' choice)"
    )
    assert load_causal_lm(str(tmp_path / "gemma2"), attn_implementation="eager").config._attn_implementation == "eager"


def test_a_name_transformers_does_not_know_is_one_line():
    with pytest.raises(
        SftlabError, match=r'^model.causal_lm.config: cannot build a llama model: Specified `attn_implementation="sdpaa"` is not supported'
    ) as refused:
        load_causal_lm(config=TINY, attn_implementation="sdpaa")
    assert "\n" not in str(refused.value)
