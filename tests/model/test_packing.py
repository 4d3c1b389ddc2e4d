"""Packed rows into the model (model/packing.py): the boundaries are the ones transformers' own flattening
collator gives; a model that reads them trains packed rows exactly; one that cannot keep examples apart is
refused, naming its layer type; the refusal comes before any data is read (the corpus cases
`packing_on_*` hold that through `sftlab fit`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import DataCollatorWithFlattening

from sftlab.errors import SftlabError
from sftlab.model.causal_lm import Prebuilt
from sftlab.model.loading import load_causal_lm
from sftlab.model.module import CausalLMModule
from sftlab.model.packing import PackedRows, flattened, model_inputs, packed_rows
from tests.architectures.cells import assert_same, examples, largest_leak, loss_and_gradients, packed_batch, padded_batch
from tests.architectures.families import family_config


def test_flattened_rows_carry_the_boundaries_transformers_flattening_collator_gives():
    rows = examples()
    ids = torch.tensor([[token for row in rows for token in row["input_ids"]]])
    ours = flattened(ids, torch.tensor([[position for row in rows for position in range(len(row["input_ids"]))]]))
    theirs = DataCollatorWithFlattening(return_flash_attn_kwargs=True, return_seq_idx=True)(rows)
    assert set(ours) == set(theirs) - {"labels"}
    for key, value in ours.items():
        assert (value.equal(theirs[key]) and value.dtype == theirs[key].dtype) if torch.is_tensor(value) else value == theirs[key], key


def test_packed_rows_of_a_batch_become_one_row_and_unpacked_batches_stay_as_they_are():
    batch = packed_batch()
    inputs = model_inputs(batch, boundaries=True)
    rows, length = batch["input_ids"].shape
    assert inputs["input_ids"].shape == (1, rows * length) and inputs["cu_seq_lens_q"][-1] == rows * length
    assert int(inputs["seq_idx"].max()) + 1 == len(inputs["cu_seq_lens_q"]) - 1 == int((batch["position_ids"] == 0).sum())
    assert set(model_inputs(batch)) == {"input_ids", "position_ids"}
    assert set(model_inputs(padded_batch(), boundaries=True)) == {"input_ids", "attention_mask"}


class ConvBlock(torch.nn.Module):
    """A causal depthwise convolution over 4 tokens, like LFM2's short convolutions: it ignores position ids,
    and keeps packed examples apart only through `seq_idx` (when it honours it, as causal-conv1d does)."""

    def __init__(self, width: int, honours_boundaries: bool) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, width) * 0.5)
        self.honours_boundaries = honours_boundaries

    def forward(self, hidden: torch.Tensor, seq_idx: torch.Tensor | None) -> torch.Tensor:
        mixed = torch.zeros_like(hidden)
        for shift in range(4):
            earlier = F.pad(hidden, (0, 0, shift, 0))[:, : hidden.shape[1]]
            if seq_idx is not None and self.honours_boundaries:
                earlier = earlier * (F.pad(seq_idx, (shift, 0), value=-1)[:, : hidden.shape[1]] == seq_idx)[..., None]
            mixed = mixed + self.weight[shift] * earlier
        return hidden + torch.tanh(mixed)


class ConvLM(torch.nn.Module):
    _no_split_modules = ("ConvBlock",)

    def __init__(self, honours_boundaries: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = torch.nn.Embedding(1000, 16), torch.nn.Linear(16, 1000)
        self.blocks = torch.nn.ModuleList([ConvBlock(16, honours_boundaries) for _ in range(2)])

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False, seq_idx=None, **boundaries) -> SimpleNamespace:
        hidden = self.embed(input_ids)
        for block in self.blocks:
            hidden = block(hidden, seq_idx)
        return SimpleNamespace(logits=self.head(hidden))


def _module(model: torch.nn.Module) -> CausalLMModule:
    module = CausalLMModule(causal_lm=Prebuilt(model))
    module.configure_model()
    return module


def test_a_model_that_reads_the_boundaries_gets_them_and_trains_packed_rows_exactly():
    module = _module(ConvLM(honours_boundaries=True))
    assert module.forward_pass.packing() == PackedRows(boundaries=True)
    packed, padded = packed_batch(), padded_batch()
    assert largest_leak(module, packed, padded) > 1e-3  # the rows as they are mix the examples
    assert largest_leak(module, packed, padded, sftlab=True) <= 1e-6
    assert_same(loss_and_gradients(module, packed), loss_and_gradients(module, padded), atol=1e-6)


def test_a_model_that_mixes_packed_examples_is_refused_naming_its_layer_type():
    module = _module(ConvLM(honours_boundaries=False))
    refusal = module.forward_pass.packing().refusal
    assert refusal.startswith("data.packing: ConvLM's ConvBlock layers let packed examples see each other (the second example's")
    assert (
        "with boundaries too" in refusal
        and refusal.endswith("data.batching.group_by_length: true for little padding")
        and "\n" not in refusal
    )
    with pytest.raises(SftlabError, match="ConvBlock layers"):
        module.labelled_sums(packed_batch())
    module.labelled_sums(padded_batch())  # unpacked batches train


def test_a_kernel_refusing_the_boundaries_is_named_in_the_refusal():
    """transformers' torch fallbacks refuse `seq_idx` / `cu_seqlens`: the refusal quotes them."""
    refusal = packed_rows(load_causal_lm(config=family_config("lfm2"))).refusal
    assert (
        "Lfm2ForCausalLM's conv layers" in refusal
        and "given the boundaries: `causal_conv1d_fn` can't keep packed sequences apart" in refusal
    )
