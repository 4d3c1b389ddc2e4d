"""One tiny random config per model family (2 layers, width 64, SmolLM2's 49,152-token vocabulary and its
special tokens), valid for transformers' own validators, shaped like the family's real checkpoints where it
matters: its layer types (linear attention, convolutions, Mamba, sliding windows shorter than the rows),
experts with router logits on, multi-head latent attention, per-layer embeddings, logits soft-capped or
scaled, tied and untied embeddings."""

from __future__ import annotations

from typing import Any

# SmolLM2's tokenizer (tests/data/files): its size and its special tokens, so every family trains on the same data.
SHARED = {"vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "tie_word_embeddings": False}
BASE = {**SHARED, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
EXPERTS = {"num_experts_per_tok": 2, "output_router_logits": True}
LINEAR_ATTENTION = {"linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_num_key_heads": 2, "linear_num_value_heads": 4}

FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {**BASE, "tie_word_embeddings": True},
    "qwen2": BASE,
    "qwen3": {**BASE, "head_dim": 16, "tie_word_embeddings": True},
    "qwen3_moe": {**BASE, "head_dim": 16, "moe_intermediate_size": 32, "num_experts": 4, **EXPERTS},
    "qwen3_5_text": {**BASE, "head_dim": 16, "layer_types": ["linear_attention", "full_attention"], **LINEAR_ATTENTION},
    "qwen3_next": {
        **BASE,
        "head_dim": 16,
        "layer_types": ["linear_attention", "full_attention"],
        **LINEAR_ATTENTION,
        "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 32,
        "num_experts": 4,
        **EXPERTS,
    },
    "mistral": {**BASE, "sliding_window": 16},
    "mixtral": {**BASE, "sliding_window": 16, "num_local_experts": 4, **EXPERTS},
    "gemma2": {**BASE, "head_dim": 16, "sliding_window": 16, "tie_word_embeddings": True},
    "gemma3_text": {
        **BASE,
        "head_dim": 16,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "tie_word_embeddings": True,
    },
    "gemma4_text": {
        **BASE,
        "head_dim": 16,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "hidden_size_per_layer_input": 16,
        "vocab_size_per_layer_input": 49152,
        "final_logit_softcapping": 30.0,
        "tie_word_embeddings": True,
    },
    "phi3": BASE,
    "olmo2": BASE,
    "smollm3": {**BASE, "tie_word_embeddings": True},
    "gpt_oss": {
        **BASE,
        "head_dim": 16,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "num_local_experts": 4,
        **EXPERTS,
    },
    "glm4": {**BASE, "head_dim": 16},
    "deepseek_v3": {
        **BASE,
        "num_key_value_heads": 4,  # multi-head latent attention: as many key-value heads as query heads
        "moe_intermediate_size": 32,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "n_group": 1,
        "topk_group": 1,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,
        "kv_lora_rank": 16,
        "q_lora_rank": 32,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 8,
        "v_head_dim": 16,
    },
    "lfm2": {**BASE, "layer_types": ["conv", "full_attention"], "tie_word_embeddings": True},
    "falcon_h1": {
        **BASE,
        "head_dim": 16,
        "mamba_d_ssm": 64,
        "mamba_n_heads": 4,
        "mamba_d_head": 16,
        "mamba_d_state": 16,
        "mamba_chunk_size": 16,
    },
    "granitemoehybrid": {
        **BASE,
        "layer_types": ["mamba", "attention"],
        "num_local_experts": 4,
        "shared_intermediate_size": 64,
        "mamba_n_heads": 4,
        "mamba_d_head": 32,
        "mamba_d_state": 16,
        "mamba_chunk_size": 16,
        "logits_scaling": 4.0,
        **EXPERTS,
    },
}


def family_config(name: str) -> dict[str, Any]:
    """`model.causal_lm.config` for a family."""
    return {"model_type": name, **FAMILIES[name]}
