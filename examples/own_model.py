"""A model of your own in sftlab: a small GPT written in plain PyTorch, plugged in by `class_path`.

    PYTHONPATH=examples sftlab fit --config configs/tiny.yaml --config examples/own_model.yaml

sftlab trains any module that takes `input_ids` (and `attention_mask` / `position_ids`, `use_cache`) and
returns an object with `.logits`; a builder (`CausalLMBuilder`) makes it when the run starts.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from sftlab.model.causal_lm import CausalLMBuilder


class TinyGPT(nn.Module):
    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, max_length: int) -> None:
        super().__init__()
        self.embed, self.position = nn.Embedding(vocab_size, width), nn.Embedding(max_length, width)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask=None, position_ids=None, use_cache: bool = False) -> SimpleNamespace:
        # Right padding needs no mask under causal attention: padded positions come last and have no labels.
        # (Packed rows would need a block-causal mask: this example trains unpacked batches.)
        length = input_ids.shape[1]
        positions = position_ids if position_ids is not None else torch.arange(length, device=input_ids.device)
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=input_ids.device)
        hidden = self.blocks(self.embed(input_ids) + self.position(positions), mask=causal, is_causal=True)
        return SimpleNamespace(logits=self.head(self.norm(hidden)))


class TinyGPTBuilder(CausalLMBuilder):
    def __init__(
        self, vocab_size: int = 49152, width: int = 64, layers: int = 2, heads: int = 4, max_length: int = 256, seed: int = 0
    ) -> None:
        """
        Args:
            vocab_size: The tokenizer's vocabulary size.
            width: Hidden size.
            layers: Transformer blocks.
            heads: Attention heads per block.
            max_length: Longest sequence (learned positions).
            seed: Seed of the random initialisation.
        """
        self.settings = {"vocab_size": vocab_size, "width": width, "layers": layers, "heads": heads, "max_length": max_length}
        self.seed = seed

    def build(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return TinyGPT(**self.settings).train()
