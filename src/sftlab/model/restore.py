"""A `sftlab fit` checkpoint back into its module and datamodule, with the trained weights: used by
`sftlab export`, by inference (`--model run.ckpt`) and by evaluation.

Lightning's own `load_from_checkpoint` does it: LightningCLI saves each module's init arguments in the
checkpoint (class paths and plain values, read with `weights_only`) with an instantiator that rebuilds
nested classes (the causal-LM builder, the masking strategy), and calls `configure_model` before the
weights are loaded.
"""

from __future__ import annotations

from pathlib import Path

from sftlab.artifacts import read_checkpoint
from sftlab.data.datamodule import SFTDataModule
from sftlab.errors import SftlabError
from sftlab.model.module import CausalLMModule


def restore_checkpoint(checkpoint: Path) -> tuple[CausalLMModule, SFTDataModule]:
    """(CausalLMModule with the trained weights, SFTDataModule as configured) from a `.ckpt` file."""
    checkpoint = Path(checkpoint)
    saved = read_checkpoint(checkpoint)  # a clear error for a missing, foreign or corrupt file
    if "datamodule_hyper_parameters" not in saved or "hyper_parameters" not in saved:
        raise SftlabError(f"{checkpoint} was not written by `sftlab fit` (no model/data hyperparameters)")
    module = CausalLMModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    return module, SFTDataModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
