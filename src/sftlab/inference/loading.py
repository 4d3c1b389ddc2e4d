"""Load whatever training produced, for generation: an HF-format folder, a LoRA adapter folder (with
its base), a `sftlab fit` checkpoint, or a `.gguf` file, or any of the folders by Hub id (`org/name`,
resolved through the Hugging Face cache, see `sftlab.hub`); and the prompt format it was trained with.
An adapter's base is the one its `adapter_config.json` names, a folder or a Hub id at the recorded revision.

The prompt format comes from `sftlab.json` in an export (Alpaca template or chat template), from the
checkpoint's data settings, or defaults to the tokenizer's chat template; `template=` overrides it
(`alpaca`, `chat` or a `.jinja` file), exactly as `data.template` does in training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sftlab import hub
from sftlab.artifacts import load_tokenizer, read_training_info
from sftlab.data.rendering.templates import Renderer, make_renderer
from sftlab.errors import SftlabError
from sftlab.model.loading import load_causal_lm
from sftlab.model.restore import restore_checkpoint

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    renderer: Renderer
    tokenizer_path: str  # where the tokenizer came from (for `SFTDataModule` in `eval ppl`)
    template: str  # the template setting: alpaca, chat or a .jinja path


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file()


def load_for_inference(
    path: str, base: str | None = None, template: str | None = None, dtype: str = "float32", revision: str | None = None
) -> LoadedModel:
    """The model at `path` (a Hub id at `revision`) in eval mode, its tokenizer (left padding) and prompt renderer."""
    location = hub.model_folder(path, revision, key="--model")
    if not location.exists():
        raise SftlabError(f"model: no such file or folder: {location}")
    trained_template = None
    if location.suffix == ".ckpt":
        module, datamodule = restore_checkpoint(location)
        model, tokenizer_path = module.model, datamodule.tokenizer_name
        trained_template = datamodule.template
    elif location.is_dir() and (location / "adapter_config.json").is_file():
        model, tokenizer_path = _load_adapter(location, base, dtype)
        trained_template = read_training_info(location).get("template")
    elif location.suffix == ".gguf" or (location / "config.json").is_file():
        model, tokenizer_path = load_causal_lm(str(location), dtype=dtype), str(location)
        trained_template = read_training_info(location).get("template") if location.is_dir() else None
    else:
        raise SftlabError(
            f"model: {location} is neither a model folder (config.json), a LoRA adapter "
            "(adapter_config.json), a .ckpt checkpoint nor a .gguf file"
        )
    tokenizer = load_tokenizer(tokenizer_path)
    tokenizer.padding_side = "left"  # answers continue right where each prompt ends
    chosen = template or trained_template or "chat"
    return LoadedModel(model.eval(), tokenizer, make_renderer(chosen, tokenizer), tokenizer_path, chosen)


def _load_adapter(folder: Path, base: str | None, dtype: str) -> tuple[PreTrainedModel, str]:
    adapter = json.loads((folder / "adapter_config.json").read_text())
    named = adapter.get("base_model_name_or_path")
    revision = adapter.get("revision") if not base else None  # the commit the adapter was trained on
    base = base or named
    if not base or not (Path(base).expanduser().exists() or hub.is_hub_id(base)):
        raise SftlabError(
            f"model: {folder} is a LoRA adapter and its base model {named!r} is not here: "
            "give the base with --base (a folder, a .gguf file or a Hub id)"
        )
    log.info("loading the base model %s for the adapter %s", base, folder)
    model = PeftModel.from_pretrained(load_causal_lm(base, dtype=dtype, revision=revision), str(folder))
    tokenizer = f"{base}@{revision}" if revision and hub.is_hub_id(base) else base
    return model, str(folder) if _has_tokenizer(folder) else tokenizer
