"""The real chat templates TRL ships (`trl/chat_templates/`, a plain folder of the installed `bench` extra),
and a tokenizer for each: SmolLM2's (shipped in tests/data/files) with the template's bos/eos, and with the
markers of TRL's templates (`<|im_end|>`, `<|tool_call>`, `<｜Assistant｜>`, ...) as special tokens, as the
models' own tokenizers have them, so that no token straddles two markers."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import SMOLLM2_TOKENIZER

try:
    import trl

    TRL_TEMPLATES: Path | None = Path(trl.__file__).parent / "chat_templates"
except ImportError:  # the `bench` extra is not installed (make test installs it)
    TRL_TEMPLATES = None

# bos/eos as each family's tokenizer has them (prefix of the template's name -> (bos, eos)); others keep
# SmolLM2's, which their templates never print.
SPECIAL_TOKENS = {
    "cohere": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "deepseek": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "diffusion_gemma": ("<bos>", "<eos>"),
    "gemma": ("<bos>", "<eos>"),
    "gptoss": ("<|startoftext|>", "<|return|>"),
    "lfm2": ("<|startoftext|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llava_next": ("<s>", "</s>"),
    "muse_glimmer": ("<|begin_of_text|>", "<|eot|>"),
    "phi3": ("<s>", "<|endoftext|>"),
}
MARKER = re.compile(r"<\|[^<>\s|]+\|?>|<[^<>\s|/]+\|>|<｜[^<>｜]+｜>")


def trl_templates() -> Path:
    """TRL's template folder, or a skip saying why there is none."""
    if TRL_TEMPLATES is None or not TRL_TEMPLATES.is_dir():
        pytest.skip("TRL (the `bench` extra) is not installed: its chat templates are the oracle of these tests")
    return TRL_TEMPLATES


def template_names(training: bool | None = None) -> list[str]:
    """Every template TRL ships (`training`: only the `_training` variants, or only the originals)."""
    if TRL_TEMPLATES is None:
        return []
    names = sorted(path.stem for path in TRL_TEMPLATES.glob("*.jinja"))
    return [name for name in names if training is None or name.endswith("_training") == training]


def template_text(name: str) -> str:
    return (trl_templates() / f"{name}.jinja").read_text()


@cache
def _base_tokenizer():
    from sftlab.artifacts import load_tokenizer

    tokenizer = load_tokenizer(str(SMOLLM2_TOKENIZER))
    markers = sorted({marker for path in trl_templates().glob("*.jinja") for marker in MARKER.findall(path.read_text())})
    tokenizer.add_special_tokens({"additional_special_tokens": markers})
    return tokenizer


@cache
def _tokenizer(pair: tuple[str, str] | None):
    tokenizer = copy.deepcopy(_base_tokenizer())
    if pair is not None:
        tokenizer.add_special_tokens({"bos_token": pair[0], "eos_token": pair[1]})
    return tokenizer


def tokenizer_for(name: str):
    """The tokenizer for template `name` (shared between calls: do not change it)."""
    return _tokenizer(next((pair for prefix, pair in SPECIAL_TOKENS.items() if name.startswith(prefix)), None))
