"""Causal LMs from a hub-format folder, a `.gguf` file, or a small config with random weights.

GGUF files are dequantised by transformers (`gguf_file=`), which costs ~30 s for a 135M model on
2 cores; the result is saved once as a hub-format folder in a cache keyed by the file's content hash
and loaded from there afterwards (seconds). A Hub id (`org/name`) is resolved to its snapshot folder in
the Hugging Face cache first (`sftlab.hub`: downloaded only when missing and allowed), then loaded as a
local folder; the model keeps the id as its `name_or_path`, so an adapter trained on it names its base by id.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from sftlab import hub
from sftlab.artifacts import write_folder
from sftlab.errors import SftlabError
from sftlab.model.attention import check_attention

log = logging.getLogger(__name__)


def gguf_cache_root() -> Path:
    return Path(os.environ.get("SFTLAB_CACHE", Path(constants.HF_HOME) / "sftlab")) / "gguf"


def file_digest(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:24]


def gguf_as_folder(path: Path, cache_root: Path | None = None) -> Path:
    """The hub-format folder converted from a `.gguf` file (converted once, atomically: written to a
    temporary folder and renamed, so an interrupted conversion never leaves a half folder)."""
    target = (cache_root or gguf_cache_root()) / f"{path.stem}-{file_digest(path)}"
    if (target / "config.json").is_file():
        return target
    log.info("converting %s to a hub-format folder in %s (once)", path, target)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except Exception as err:  # the gguf reader raises assorted errors on a corrupt file
        raise SftlabError(f"model: cannot read GGUF file {path}: {type(err).__name__}: {err}") from None
    # The weights are already dequantised float tensors, but transformers refuses to save a model that
    # went through its GGUF "quantizer"; forgetting it saves plain safetensors (same logits, tested).
    model.hf_quantizer = None
    del model.config.quantization_config
    try:
        write_folder(target, model.save_pretrained)
    except SftlabError:
        if not (target / "config.json").is_file():  # not another process winning the same race
            raise
    return target


def random_causal_lm(
    config: dict[str, Any], dtype: torch.dtype, attn_implementation: str | None, trust_remote_code: bool, seed: int
) -> PreTrainedModel:
    """A causal LM with random weights drawn from `seed`; a config or attention transformers refuses is a one-line error."""
    settings = dict(config)
    model_type = settings.pop("model_type")
    try:
        model_config = AutoConfig.for_model(model_type, **settings)
        check_attention(model_config, attn_implementation)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return AutoModelForCausalLM.from_config(
                model_config, dtype=dtype, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code
            )
    except (ValueError, ImportError) as err:
        raise SftlabError(f"model.causal_lm.config: cannot build a {model_type} model: {str(err).splitlines()[0][:300]}") from None


def load_causal_lm(
    source: str | None = None,
    config: dict[str, Any] | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
    quantization: dict[str, Any] | None = None,
    revision: str | None = None,
) -> PreTrainedModel:
    """A causal LM from `source` (a hub-format folder, a `.gguf` file or a Hub id at `revision`) or, without
    a source, from `config` (e.g. `{"model_type": "llama", "hidden_size": 64, ...}`) with random weights
    drawn from `seed`. `attn_implementation` None: the one transformers picks for the model (attention.py).
    `quantization`: further `from_pretrained` arguments that quantize the weights as they load (QLoRA)."""
    torch_dtype = getattr(torch, dtype)
    if source is None:
        if not config or "model_type" not in config:
            raise SftlabError("model: give a source (folder or .gguf) or a config with a model_type")
        return random_causal_lm(config, torch_dtype, attn_implementation, trust_remote_code, seed)
    path = hub.model_folder(source, revision)
    if not path.exists():
        raise SftlabError(f"model: no such file or folder: {path}")
    folder = gguf_as_folder(path) if path.suffix == ".gguf" else path
    try:
        if attn_implementation is not None:
            check_attention(
                AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=trust_remote_code), attn_implementation
            )
        model = AutoModelForCausalLM.from_pretrained(
            str(folder),
            dtype=torch_dtype,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            **(quantization or {}),
        )
    except (OSError, ValueError) as err:
        raise SftlabError(f"model: cannot load a causal LM from {folder}: {str(err).splitlines()[0]}") from None
    if repo := hub.origin(folder):
        model.name_or_path = model.config.name_or_path = repo.id  # not this machine's cache path
    return model
