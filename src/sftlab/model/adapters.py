"""LoRA / DoRA adapters with peft; no adapter means full fine-tuning. QLoRA (`lora.quantize_4bit`): the base
weights load as 4-bit NF4 through bitsandbytes (double quantization, bf16 compute, the QLoRA paper's
settings), and peft's `prepare_model_for_kbit_training` readies the rest (float32 norms, input gradients)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import BitsAndBytesConfig, PreTrainedModel

from sftlab.errors import SftlabError

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    """LoRA hyperparameters (alpaca-lora recipe: r 8, alpha 16, dropout 0.05, q_proj/v_proj)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Module names, or "all-linear" (peft then also adapts the fused expert weights of MoE models, which
    needs dropout 0)."""
    modules_to_save: list[str] = field(default_factory=list)
    use_dora: bool = False
    quantize_4bit: bool = False
    """QLoRA: a 4-bit base through bitsandbytes (CUDA only)."""


def quantization_4bit(source: str | None) -> dict[str, Any]:
    """The `from_pretrained` arguments that load `source`'s weights as 4-bit NF4 on this process's GPU."""
    if not torch.cuda.is_available():
        raise SftlabError("model.causal_lm.lora.quantize_4bit (QLoRA) needs a CUDA GPU and bitsandbytes; this machine has no CUDA device")
    if source is None:
        raise SftlabError("model.causal_lm.lora.quantize_4bit (QLoRA) quantizes weights as they load: give model.causal_lm.source")
    try:
        import bitsandbytes  # noqa: F401  (transformers' quantizer imports it later, with a longer message)
    except ImportError as err:
        raise SftlabError(
            f"model.causal_lm.lora.quantize_4bit (QLoRA): cannot import bitsandbytes ({err}); pip install bitsandbytes"
        ) from None
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16
    )
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


def add_lora(model: PreTrainedModel, settings: LoraSettings, revision: str | None = None) -> PeftModel:
    """`model` with a LoRA/DoRA adapter; `revision`: the Hub commit of a base loaded by id, recorded in
    the adapter's config beside the id (`base_model_name_or_path`) so the adapter reloads its very base."""
    if settings.quantize_4bit:
        # Gradient checkpointing is the builder's own setting (HFCausalLM), not forced on here.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if settings.target_modules != "all-linear":
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = sorted(set(settings.target_modules) - names)
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
            raise SftlabError(f"model.lora.target_modules: the model has no module named {missing} (its linear layers: {linear})")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        modules_to_save=settings.modules_to_save or None,
        use_dora=settings.use_dora,
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config, revision=revision)
    except ValueError as err:  # e.g. "all-linear" reaching Mamba projections that fused kernels read directly
        raise SftlabError(f"model.causal_lm.lora: peft cannot adapt {type(model).__name__}: {str(err).splitlines()[0]}") from None
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA: %s trainable of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / total)
    return model
