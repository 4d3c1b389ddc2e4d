"""Attention implementations: by default the one transformers picks for the model (sdpa where the model
has it, else eager: Gemma-2 and gpt-oss have no sdpa), and a named one the model does not have is a
one-line error naming those it has, before any weight is read.

What a model class has comes from the flags transformers sets on it (`_supports_sdpa`, `_supports_flex_attn`,
`_supports_flash_attn`), the same ones its own check reads; whether an implementation it has also runs here
(the flash-attn package, a GPU) is transformers' own error, shortened to its first line by the loader.
"""

from __future__ import annotations

from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, PretrainedConfig

from sftlab.errors import SftlabError

# Implementation names transformers knows, and the class flag saying that a model has each.
FLAGS = {
    "sdpa": "_supports_sdpa",
    "flex_attention": "_supports_flex_attn",
    "flash_attention_2": "_supports_flash_attn",
    "flash_attention_3": "_supports_flash_attn",
}


def accepted_attention(model_class: type) -> list[str]:
    """The attention implementations a transformers model class has (eager always)."""
    return ["eager", *(name for name, flag in FLAGS.items() if getattr(model_class, flag))]


def check_attention(config: PretrainedConfig, requested: str | None) -> None:
    """A requested implementation that the config's causal-LM class does not have: a one-line error. Unset,
    hub kernels (`org/repo`) and classes outside transformers (remote code) are left to transformers."""
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING.get(type(config), None)
    if requested not in FLAGS or model_class is None or getattr(model_class, FLAGS[requested]):
        return
    raise SftlabError(
        f"model.causal_lm.attn_implementation: {model_class.__name__} has no {requested!r} attention; "
        f"it accepts {', '.join(accepted_attention(model_class))} (leave it unset for transformers' choice)"
    )
