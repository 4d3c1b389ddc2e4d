"""Liger-Kernel's fused Triton kernels (RMSNorm, SwiGLU/GeGLU, RoPE) on a built transformers model, by
`model.causal_lm.liger: true`: fewer passes over activations on GPUs, the same model.

Only the layers are patched: sftlab's labelled head already fuses the output projection with the
cross-entropy (linear_cross_entropy.py), and Liger's own fused loss needs labels in the model's forward,
which sftlab never passes. Liger's patch function for the model's family is found by its public name
(`liger_kernel.transformers.apply_liger_kernel_to_<model_type>`) and applied to this instance only.
"""

from __future__ import annotations

import importlib
import inspect
import logging

import torch
from peft import PeftModel
from transformers import PreTrainedModel

from sftlab.errors import SftlabError

log = logging.getLogger(__name__)

LAYER_KERNELS = ("rope", "rms_norm", "swiglu", "geglu", "layer_norm")


def apply_liger(model: PreTrainedModel) -> PreTrainedModel:
    """Liger's layer kernels on `model` (in place); a one-line error where they cannot run."""
    if not torch.cuda.is_available():
        raise SftlabError("model.causal_lm.liger: Liger's kernels are Triton kernels for GPUs; this machine has no CUDA device")
    try:
        liger = importlib.import_module("liger_kernel.transformers")
    except ImportError as err:
        raise SftlabError(f"model.causal_lm.liger: cannot import liger_kernel ({err}); pip install liger-kernel") from None
    causal_lm = model.get_base_model() if isinstance(model, PeftModel) else model
    model_type = causal_lm.config.model_type
    patch = getattr(liger, f"apply_liger_kernel_to_{model_type}", None)
    if patch is None:
        raise SftlabError(f"model.causal_lm.liger: liger_kernel has no kernels for model_type {model_type!r}")
    accepted = inspect.signature(patch).parameters
    kernels = {name: True for name in LAYER_KERNELS if name in accepted}
    losses = {name: False for name in ("cross_entropy", "fused_linear_cross_entropy") if name in accepted}
    patch(model=causal_lm, **kernels, **losses)
    log.info("model.causal_lm.liger: %s kernels on %s", ", ".join(kernels), type(causal_lm).__name__)
    return model
