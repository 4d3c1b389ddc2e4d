"""A `sftlab fit` checkpoint back into its module and datamodule, from the hyperparameters saved in
it (which base model, tokenizer, template, masking): used by `sftlab export` and by inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sftlab.errors import SftlabError


def _arguments(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments from saved hyperparameters (without LightningCLI's `_class_path` etc.)."""
    return {name: value for name, value in hyperparameters.items() if not name.startswith("_")}


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents (memory-mapped), or a SftlabError saying why it cannot be read."""
    if not path.is_file():
        raise SftlabError(f"no such checkpoint: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # a truncated or foreign file raises assorted errors
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise SftlabError(f"cannot read checkpoint {path}: {type(err).__name__}: {first_line}") from None
    if not isinstance(saved, dict):
        raise SftlabError(f"{path} is not a checkpoint (it holds a {type(saved).__name__})")
    return saved


def restore_checkpoint(checkpoint: Path) -> tuple[Any, Any]:
    """(CausalLMModule with the trained weights, SFTDataModule as configured) from a `.ckpt` file."""
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.model.adapters import LoraSettings
    from sftlab.model.module import CausalLMModule

    checkpoint = Path(checkpoint)
    saved = read_checkpoint(checkpoint)
    if "datamodule_hyper_parameters" not in saved or "hyper_parameters" not in saved:
        raise SftlabError(f"{checkpoint} was not written by `sftlab fit` (no model/data hyperparameters)")
    model_settings = _arguments(saved["hyper_parameters"])
    if isinstance(model_settings.get("lora"), dict):
        model_settings["lora"] = LoraSettings(**model_settings["lora"])
    module = CausalLMModule(**model_settings)
    module.load_state_dict(saved["state_dict"])
    return module, SFTDataModule(**_arguments(saved["datamodule_hyper_parameters"]))
