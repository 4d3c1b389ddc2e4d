"""Lightning's FSDP, told which layers to shard and checkpoint by the model itself.

FSDP needs the decoder-layer class for its auto-wrap policy (one FSDP unit per layer) and for
activation checkpointing. Naming it in a config ties the config to one architecture; transformers
models already name it in `_no_split_modules` (the modules that must stay whole on one device), so
this strategy reads it from the model when Lightning sets the strategy up, and one config serves
Llama, Qwen, Phi, SmolLM, ...
"""

from __future__ import annotations

from typing import Any

from lightning import Trainer
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from sftlab.errors import SftlabError


def decoder_layer_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The classes inside `model` (a LightningModule, a peft model, a transformers model) that a
    transformers model lists in its `_no_split_modules`."""
    names = {name for module in model.modules() for name in (getattr(module, "_no_split_modules", None) or ())}
    classes = {type(module) for module in model.modules() if type(module).__name__ in names}
    if not classes:
        raise SftlabError(
            f"trainer.strategy: cannot find the decoder-layer class of {type(model).__name__} "
            f"(its _no_split_modules is {sorted(names) or 'empty'}); use Lightning's FSDPStrategy "
            "with an explicit auto_wrap_policy"
        )
    return classes


class DecoderLayerFSDP(FSDPStrategy):
    def __init__(self, checkpoint_activations: bool = False, **kwargs: Any) -> None:
        """
        Args:
            checkpoint_activations: Recompute each decoder layer's activations in the backward pass
                (less memory, about a third more compute).
            **kwargs: Lightning's FSDPStrategy arguments (sharding_strategy, state_dict_type, cpu_offload, ...).
        """
        super().__init__(**kwargs)
        self.checkpoint_activations = checkpoint_activations

    def configure_for(self, model: nn.Module) -> set[type[nn.Module]]:
        """Set the wrap (and checkpointing) policy to `model`'s decoder layers; returns their classes."""
        layers = decoder_layer_classes(model)
        self.kwargs["auto_wrap_policy"] = ModuleWrapPolicy(layers)
        if self.checkpoint_activations:
            self._activation_checkpointing_kwargs = {"auto_wrap_policy": ModuleWrapPolicy(layers)}
        return layers

    def setup(self, trainer: Trainer) -> None:
        self.configure_for(trainer.lightning_module)
        super().setup(trainer)
