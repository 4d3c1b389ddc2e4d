"""A transformers model's decoder layers: the units FSDP2 shards (training/strategies.py) and that
`model.compile` compiles one by one.

The decoder-layer classes are the ones a transformers model lists in `_no_split_modules` (the modules
that must stay whole on one device), so one rule serves Llama, Qwen, Phi, SmolLM, ... Compiling each
layer rather than the whole model is torchtitan's way: every layer has the same code, so one compiled
graph serves them all (parameters are graph inputs, not constants), compilation stays short, and the
parts between layers (embeddings, the labelled head's fused loss, FSDP2's hooks) stay eager.
"""

from __future__ import annotations

import logging

from torch import nn

from sftlab.errors import SftlabError

log = logging.getLogger(__name__)


def decoder_layer_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The classes inside `model` (a peft model, a transformers model) that a transformers model lists
    in its `_no_split_modules`."""
    names = {name for module in model.modules() for name in (getattr(module, "_no_split_modules", None) or ())}
    classes = {type(module) for module in model.modules() if type(module).__name__ in names}
    if not classes:
        raise SftlabError(
            f"cannot find the decoder-layer class of {type(model).__name__} "
            f"(its _no_split_modules is {sorted(names) or 'empty'}); name them in your model's _no_split_modules"
        )
    return classes


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """Every decoder layer of `model`, in order."""
    classes = decoder_layer_classes(model)
    return [module for module in model.modules() if type(module) in classes]


def compile_decoder_layers(model: nn.Module) -> nn.Module:
    """`torch.compile` each decoder layer in place (`nn.Module.compile`: the layer keeps its class and
    its place in the model, so FSDP2 still finds and shards it, and checkpoints keep their keys).
    Returns the model."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile()
    log.info("model.compile: %d decoder layers (%s) compiled, each on its first call", len(layers), type(layers[0]).__name__)
    return model
