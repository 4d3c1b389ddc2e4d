"""What `CausalLMModule` trains, injected by `class_path`: a builder whose `build()` returns the network.

The contract of the built model is small: called as `model(input_ids=..., attention_mask=... or
position_ids=..., use_cache=False)` it returns an object with `.logits` (batch, sequence, vocabulary).
Every transformers causal LM fits, and so does a researcher's own `nn.Module` (see
`examples/own_model`). What sftlab can do beyond training depends on what the model offers:
logits only at trained positions need a transformers model (backbone + output layer), HF export
needs `save_pretrained`, sample answers need `generate`; each says so when it is missing.

A config names a builder like any other Lightning part:

    model:
      causal_lm:
        class_path: mypkg.MyBuilder        # default: sftlab.model.causal_lm.HFCausalLM
        init_args: {...}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any

import torch
from transformers import PreTrainedModel

from sftlab import hub
from sftlab.model.adapters import LoraSettings, add_lora, quantization_4bit
from sftlab.model.kernels import apply_liger
from sftlab.model.loading import load_causal_lm


class CausalLMBuilder(ABC):
    """Builds the causal LM that a `CausalLMModule` trains (once, in its `configure_model`)."""

    @abstractmethod
    def build(self) -> torch.nn.Module:
        """The model, in training mode."""


class HFCausalLM(CausalLMBuilder):
    def __init__(
        self,
        source: str | None = None,
        config: dict[str, Any] | None = None,
        dtype: str = "float32",
        attn_implementation: str | None = None,
        init_seed: int = 0,
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
        trust_remote_code: bool = False,
        liger: bool = False,
        revision: str | None = None,
    ) -> None:
        """A transformers causal LM (`AutoModelForCausalLM`), optionally with a LoRA/DoRA adapter.

        Args:
            source: A hub-format model folder, a `.gguf` file (dequantised once into a cached folder) or a
                Hugging Face Hub id (`org/name`: from the cache, downloaded when missing unless HF_HUB_OFFLINE=1).
            config: Without a source: a transformers config (with `model_type`) for random weights.
            dtype: Parameter dtype (float32, bfloat16, float16); compute precision is `trainer.precision`.
            attn_implementation: sdpa, eager, flex_attention, flash_attention_2 ...; unset: the one transformers
                picks for the model (sdpa where it has it, else eager).
            init_seed: Seed for random initialisation from `config`.
            lora: LoRA/DoRA adapter settings; none means full fine-tuning.
            gradient_checkpointing: Recompute activations in the backward pass (transformers' own,
                non-reentrant so it works with LoRA).
            trust_remote_code: Run model code shipped with the checkpoint (off unless you trust it).
            liger: Liger-Kernel's fused RMSNorm, SwiGLU and RoPE kernels (CUDA, `pip install liger-kernel`).
            revision: The Hub revision (branch, tag or commit) of a `source` given by id (default: main).
        """
        self.source = source
        self.config = config
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.init_seed = init_seed
        self.lora = lora
        self.gradient_checkpointing = gradient_checkpointing
        self.trust_remote_code = trust_remote_code
        self.liger = liger
        self.revision = revision

    @cached_property
    def origin(self) -> hub.HubRepo | None:
        """The Hub repository and commit the weights come from (what exports record), if any."""
        return hub.origin(hub.model_folder(self.source, self.revision)) if self.source else None

    def load(self) -> PreTrainedModel:
        """The plain transformers model (override to build yours and keep adapters and checkpointing)."""
        quantization = quantization_4bit(self.source) if self.lora is not None and self.lora.quantize_4bit else None
        return load_causal_lm(
            self.source,
            self.config,
            self.dtype,
            self.attn_implementation,
            self.trust_remote_code,
            seed=self.init_seed,
            quantization=quantization,
            revision=self.revision,
        )

    def build(self) -> torch.nn.Module:
        model = self.load()
        if self.liger:
            model = apply_liger(model)
        if self.gradient_checkpointing:
            # Reentrant checkpointing breaks with frozen inputs (LoRA); the non-reentrant kind does not.
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.lora is not None:
            model = add_lora(model, self.lora, revision=self.origin.revision if self.origin else None)
        return model.train()  # from_pretrained returns eval mode, which would switch dropout off in training


class Prebuilt(CausalLMBuilder):
    """A model already in memory (for code, e.g. `sftlab eval ppl` validating a loaded model; not for configs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def build(self) -> torch.nn.Module:
        return self.model
