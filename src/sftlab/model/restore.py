"""A `sftlab fit` checkpoint back into its module and datamodule, with the trained weights: used by
`sftlab export`, by inference (`--model run.ckpt`) and by evaluation.

A checkpoint is a file, or a sharded checkpoint: a folder (still named `*.ckpt`) in which each rank of an
FSDP2 run wrote its shards with torch Distributed Checkpoint (DCP), beside `meta.pt` (hyperparameters,
loop and callback states) that Lightning's `ModelParallelStrategy` writes on rank 0.

Lightning's own `load_from_checkpoint` rebuilds the module: LightningCLI saves each module's init arguments
in the checkpoint (class paths and plain values, read with `weights_only`) with an instantiator that
rebuilds nested classes (the causal-LM builder, the masking strategy), and calls `configure_model` before
the weights are loaded. For a sharded checkpoint it gets `meta.pt` without weights, and DCP then reads the
weights (not the optimizer state) straight into the module's own tensors, in one process, whatever the
number of ranks that wrote them.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader

from sftlab.artifacts import read_checkpoint
from sftlab.data.datamodule import SFTDataModule
from sftlab.errors import SftlabError
from sftlab.model.module import CausalLMModule

SHARDED_META = "meta.pt"  # Lightning's ModelParallelStrategy: the non-tensor part of a sharded checkpoint


def is_sharded_checkpoint(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / SHARDED_META).is_file()


def read_sharded_checkpoint(folder: Path) -> dict[str, Any]:
    """The `meta.pt` of a sharded checkpoint, after checking that the shard index can be read and that
    every shard file it names is there, whole; else a SftlabError saying what is missing."""
    meta = read_checkpoint(folder / SHARDED_META)
    try:
        index = FileSystemReader(str(folder)).read_metadata()
    except Exception as err:  # missing or truncated .metadata raise assorted errors
        raise SftlabError(f"cannot read checkpoint {folder}: no readable shard index (.metadata): {type(err).__name__}") from None
    for item in index.storage_data.values():
        shard = folder / item.relative_path
        if not shard.is_file() or shard.stat().st_size < item.offset + item.length:
            raise SftlabError(f"checkpoint {folder} is incomplete: its shard {item.relative_path} is missing or cut short")
    return meta


def read_any_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents, or a sharded checkpoint's `meta.pt` (checked whole)."""
    return read_sharded_checkpoint(path) if is_sharded_checkpoint(path) else read_checkpoint(path)


def restore_checkpoint(checkpoint: Path) -> tuple[CausalLMModule, SFTDataModule]:
    """(CausalLMModule with the trained weights, SFTDataModule as configured) from a checkpoint file or folder.
    The module is eager whatever `model.compile` the run trained with: exports, generation and evaluation
    gain nothing from compiling the layers for training."""
    checkpoint = Path(checkpoint)
    saved = read_any_checkpoint(checkpoint)  # a clear error for a missing, foreign, corrupt or partial checkpoint
    if "datamodule_hyper_parameters" not in saved or "hyper_parameters" not in saved:
        raise SftlabError(f"{checkpoint} was not written by `sftlab fit` (no model/data hyperparameters)")
    if is_sharded_checkpoint(checkpoint):
        module = _module_from_shards(checkpoint, saved)
        data_file = checkpoint / SHARDED_META
    else:
        module = CausalLMModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True, compile=False)
        data_file = checkpoint
    return module, SFTDataModule.load_from_checkpoint(data_file, map_location="cpu", weights_only=True)


def _module_from_shards(folder: Path, meta: dict[str, Any]) -> CausalLMModule:
    buffer = io.BytesIO()
    torch.save({**meta, "state_dict": {}}, buffer)
    buffer.seek(0)
    with warnings.catch_warnings():  # the weights are missing from `meta.pt` on purpose: DCP reads them next
        warnings.filterwarnings("ignore", message="Found keys that are in the model state dict but not in the checkpoint")
        warnings.filterwarnings("ignore", message="The state dict in .* contains no parameters")
        module = CausalLMModule.load_from_checkpoint(buffer, map_location="cpu", weights_only=True, strict=False, compile=False)
    try:
        dcp.load({"state_dict": module.state_dict()}, checkpoint_id=str(folder))
    except Exception as err:  # a checkpoint of another model: DCP names the missing or mismatched keys
        raise SftlabError(f"cannot load the weights of {folder}: {type(err).__name__}: {str(err).splitlines()[0]}") from None
    return module
