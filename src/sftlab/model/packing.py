"""Packed rows into the model: examples kept apart, measured on the model itself, or packing refused.

A packed row holds several examples, each with position ids restarting at 0 and no attention mask
(data/labels/packing.py). Transformers builds a block-causal mask from such position ids, which keeps
attention layers apart; layers that carry a state along the sequence do not read position ids at all:
linear attention (Qwen3.5, Qwen3-Next, Granite-4), short convolutions (LFM2, and the ones inside those
linear-attention and Mamba layers) and state-space layers (Falcon-H1). Those read each example's boundaries
from keyword arguments instead, as `DataCollatorWithFlattening(return_flash_attn_kwargs=True,
return_seq_idx=True)` passes them: the batch as one row, with `cu_seq_lens_q/k` and `max_length_q/k`
(flash-attention's varlen convention, read by the gated-delta layers) and `seq_idx` (read by the
convolutions and Mamba kernels). Only their kernels honour them (flash-linear-attention, causal-conv1d,
mamba-ssm, CUDA); the torch fallbacks transformers 5.24 runs without those packages refuse the boundaries
("can't keep packed sequences apart without `causal_conv1d`"), and without the boundaries they mix the
examples. Some attention layers also mix them: gpt-oss builds its masks without the position ids.

So how packed rows reach a model is measured once on the model (`packed_rows`), never assumed from its
name: two packed rows whose second example is the same and whose first differs must give the second
example the same logits (exactly: same tokens, positions and shapes). First as the rows are, then
flattened with boundaries; where neither keeps the examples apart, packing is refused, naming the
layer type through which the first example reached the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from peft import PeftModel

from sftlab.errors import SftlabError
from sftlab.model.layers import decoder_layers

PROBE = (11, 13)  # lengths of the probe's two examples
SUGGESTION = "train without it (data.packing: false) and with data.batching.group_by_length: true for little padding"


def model_inputs(batch: dict[str, torch.Tensor], boundaries: bool = False) -> dict[str, torch.Tensor]:
    """What the model reads from a batch: ids with an attention mask, or packed rows (position ids restarting
    per example, no mask), flattened with each example's boundaries when `boundaries`."""
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids") if key in batch}
    if boundaries and "position_ids" in inputs:
        return flattened(inputs["input_ids"], inputs["position_ids"])
    return inputs


def flattened(input_ids: torch.Tensor, position_ids: torch.Tensor) -> dict[str, torch.Tensor | int]:
    """Packed rows (rows, length), each starting an example at position 0, as one row (1, rows x length) with
    the boundaries `DataCollatorWithFlattening(return_flash_attn_kwargs=True, return_seq_idx=True)` gives:
    cumulative lengths (int32), the longest example (an int) and each token's example index (int32)."""
    positions = position_ids.reshape(1, -1)
    starts = torch.nonzero(positions[0] == 0).squeeze(1)
    lengths = torch.diff(starts, append=torch.tensor([positions.shape[1]], device=starts.device))
    cumulative = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    example = torch.repeat_interleave(torch.arange(len(lengths), device=starts.device), lengths).to(torch.int32)
    longest = int(lengths.max())
    return {
        "input_ids": input_ids.reshape(1, -1),
        "position_ids": positions,
        "cu_seq_lens_q": cumulative,
        "cu_seq_lens_k": cumulative,
        "max_length_q": longest,
        "max_length_k": longest,
        "seq_idx": example[None],
    }


def by_row(values: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A model output (rows, length, ...) or, for flattened rows, (1, rows x length, ...) as (rows, length, ...)."""
    return values.reshape(*shape, *values.shape[2:])


@dataclass(frozen=True)
class PackedRows:
    """How packed rows reach a model: as they are, or flattened with boundaries; or why they cannot."""

    boundaries: bool = False
    refusal: str | None = None

    def checked(self) -> PackedRows:
        if self.refusal is not None:
            raise SftlabError(self.refusal)
        return self


@dataclass(frozen=True)
class Leak:
    """Where the first example reached the second: a layer type (or `output`), and what showed it."""

    layer: str
    evidence: str


def packed_rows(model: torch.nn.Module) -> PackedRows:
    """Measure, on a probe input, which way packed rows keep their examples apart in `model`."""
    as_they_are = _probe(model, boundaries=False)
    if as_they_are is None:
        return PackedRows(boundaries=False)
    flat = _probe(model, boundaries=True)
    if flat is None:
        return PackedRows(boundaries=True)
    name = type(model.get_base_model() if isinstance(model, PeftModel) else model).__name__
    with_boundaries = f"given the boundaries: {flat.evidence}" if flat.evidence != as_they_are.evidence else "with boundaries too"
    return PackedRows(
        refusal=f"data.packing: {name}'s {as_they_are.layer} layers let packed examples see each other "
        f"({as_they_are.evidence}; {with_boundaries}); {SUGGESTION}"
    )


def _probe(model: torch.nn.Module, boundaries: bool) -> Leak | None:
    """None when the second example of two packed rows gets the same logits whichever first example precedes
    it; else the first decoder layer whose output for it differed (or that raised)."""
    layers, types = typed_layers(model)
    outputs: dict[int, torch.Tensor] = {}
    entered: list[int] = []

    def record(i: int, output: object) -> None:  # a forward hook returning a value would replace the output
        outputs[i] = output[0] if isinstance(output, tuple) else output

    hooks = [layer.register_forward_pre_hook(lambda module, args, i=i: entered.append(i)) for i, layer in enumerate(layers)]
    hooks += [layer.register_forward_hook(lambda module, args, output, i=i: record(i, output)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(**model_inputs(probe_rows(model), boundaries), use_cache=False).logits
    except Exception as err:  # a layer refusing the inputs (transformers' torch fallbacks refuse boundaries)
        return Leak(types[entered[-1]] if entered else "input", (str(err).splitlines() or [type(err).__name__])[0])
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    for i in sorted(outputs):
        if (difference := _second_example_difference(outputs[i])) is not None:
            return Leak(types[i], f"the second example's hidden states differ by {difference:.1e}")
    if (difference := _second_example_difference(logits)) is not None:
        return Leak("output", f"the second example's logits differ by {difference:.1e}")
    return None


def probe_rows(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Two packed rows: examples (A, B) and (A', B), A' of A's length with every token different."""
    parameter = next(model.parameters())
    vocabulary = min([module.num_embeddings for module in model.modules() if isinstance(module, torch.nn.Embedding)] or [2])
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.randint(0, min(vocabulary, 1000), (n,), generator=generator) for n in PROBE)
    other = (first + 1) % vocabulary  # every token differs
    input_ids = torch.stack([torch.cat([first, second]), torch.cat([other, second])]).to(parameter.device)
    positions = torch.cat([torch.arange(PROBE[0]), torch.arange(PROBE[1])]).expand(2, -1).to(parameter.device)
    return {"input_ids": input_ids, "position_ids": positions}


def _second_example_difference(values: torch.Tensor) -> float | None:
    """The largest difference between the rows' second examples, if more than float noise of identical input."""
    rows = values.reshape(2, sum(PROBE), -1)[:, PROBE[0] :].float()
    difference = float((rows[0] - rows[1]).abs().max())
    return difference if difference > 1e-6 * max(1.0, float(rows.abs().max())) else None


def typed_layers(model: torch.nn.Module) -> tuple[list[torch.nn.Module], list[str]]:
    """The decoder layers in order (model/layers.py; none for a model of one's own that names none: the probe
    then names its output) and each one's type (`config.layer_types`, else its class name)."""
    try:
        layers = decoder_layers(model)
    except SftlabError:
        layers = []
    declared = list(getattr(getattr(model, "config", None), "layer_types", None) or [])
    types = declared if len(declared) == len(layers) else [type(layer).__name__ for layer in layers]
    return layers, types
