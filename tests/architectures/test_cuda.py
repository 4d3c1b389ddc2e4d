"""The matrix's packing check on a CUDA GPU in bf16 (the gpu tier, skipped without CUDA): for every family, with sdpa and,
where the flash-attn package is installed, flash_attention_2, how packed rows reach the model is measured on
the GPU model (with flash-linear-attention, causal-conv1d or mamba-ssm installed, the hybrid families get
their boundaries and must come out exact), and where packing is exact every example's logits, the loss and
the gradients of packed rows match the examples unpacked within bf16's resolution; where it is refused the
refusal is one line and the leak is real.

    pytest -m gpu -rs -s tests/architectures/test_cuda.py     # prints what ran and what was refused
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sftlab.errors import SftlabError
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.module import CausalLMModule
from tests.architectures.cells import largest_leak, packed_batch, padded_batch
from tests.architectures.families import FAMILIES, family_config
from tests.architectures.support import recorded

pytestmark = pytest.mark.gpu  # the GPU tier (`pytest -m gpu`, benchmarks/gpu_check.sh): skipped without CUDA

IMPLEMENTATIONS = ["sdpa", *(["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])]
# The packages whose kernels keep a hybrid family's packed examples apart (transformers' torch fallbacks refuse).
KERNELS = {
    "qwen3_5_text": ("fla", "causal_conv1d"),
    "qwen3_next": ("fla", "causal_conv1d"),
    "lfm2": ("causal_conv1d",),
    "falcon_h1": ("mamba_ssm", "causal_conv1d"),
    "granitemoehybrid": ("mamba_ssm", "causal_conv1d"),
}
BF16 = 3e-2  # bf16 keeps 8 bits of mantissa: different kernels for packed and padded rows differ by ~1e-2


def _on_gpu(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.cuda() for key, value in batch.items()}


def _loss_and_gradients(module: CausalLMModule, batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
    module.zero_grad()
    loss_sum, normaliser, *_ = module.labelled_sums(batch)
    (loss_sum / normaliser).backward()
    return float(loss_sum / normaliser), torch.cat([p.grad.float().flatten() for p in module.parameters() if p.grad is not None])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", FAMILIES)
def test_packed_rows_in_bf16_on_cuda(name, implementation):
    module = CausalLMModule(causal_lm=HFCausalLM(config=family_config(name), dtype="bfloat16", attn_implementation=implementation))
    try:
        module.configure_model()
    except SftlabError as err:  # the model has no such attention
        pytest.skip(str(err))
    module.model.cuda().eval()
    packed, padded = _on_gpu(packed_batch()), _on_gpu(padded_batch())
    plan = module.forward_pass.packing()
    print(f"{name} {implementation}: {plan.refusal or ('exact with boundaries' if plan.boundaries else 'exact')}")
    assert plan.refusal is None or not recorded()["families"][name]["packing"].startswith("exact"), plan.refusal  # exact on CPU: exact here
    if name in KERNELS and all(importlib.util.find_spec(package) for package in KERNELS[name]):
        assert plan.boundaries and plan.refusal is None, plan.refusal  # the kernels take the boundaries
    if plan.refusal is not None:
        assert "\n" not in plan.refusal and "data.batching.group_by_length: true" in plan.refusal
        assert largest_leak(module, packed, padded) > 0
        return
    with torch.no_grad():
        scale = float(module(padded).abs().max())
    assert largest_leak(module, packed, padded, sftlab=True) <= BF16 * max(1.0, scale)
    (packed_loss, packed_grads), (padded_loss, padded_grads) = _loss_and_gradients(module, packed), _loss_and_gradients(module, padded)
    assert packed_loss == pytest.approx(padded_loss, rel=BF16)
    assert float((packed_grads - padded_grads).norm()) <= BF16 * float(padded_grads.norm())
