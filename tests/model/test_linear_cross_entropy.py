"""The fused chunked projection + cross-entropy equals the plain one: loss, accuracy and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sftlab.model.linear_cross_entropy import linear_cross_entropy


def _inputs(n: int, bias: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, 32, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = (torch.randn(500, 32, generator=generator, dtype=torch.float64) * 0.3).requires_grad_()
    bias_tensor = (torch.randn(500, generator=generator, dtype=torch.float64) * 0.1).requires_grad_() if bias else None
    targets = torch.randint(0, 500, (n,), generator=generator)
    return hidden, weight, bias_tensor, targets


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000])
def test_same_loss_accuracy_and_gradients_as_the_unfused_loss(bias, chunk_rows):
    hidden, weight, bias_tensor, targets = _inputs(50, bias)
    targets[:10] = F.linear(hidden[:10], weight, bias_tensor).argmax(-1)  # some right answers
    loss, correct = linear_cross_entropy(hidden, weight, bias_tensor, targets, chunk_rows=chunk_rows)
    (loss * 0.5).backward()  # the incoming gradient is applied
    fused = [t.grad.clone() for t in (hidden, weight, bias_tensor) if t is not None]
    for t in (hidden, weight, bias_tensor):
        if t is not None:
            t.grad = None
    logits = F.linear(hidden, weight, bias_tensor)
    expected = F.cross_entropy(logits, targets, reduction="sum")
    (expected * 0.5).backward()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-6)
    assert int(correct) == int((logits.argmax(-1) == targets).sum()) >= 10
    for got, want in zip(fused, [t.grad for t in (hidden, weight, bias_tensor) if t is not None]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_no_rows_gives_zero_loss_and_zero_gradients():
    hidden, weight, _, targets = _inputs(0, False)
    loss, correct = linear_cross_entropy(hidden, weight, None, targets)
    loss.backward()
    assert loss.item() == 0 and int(correct) == 0 and not weight.grad.any()


def test_frozen_weight_gets_no_gradient_and_no_grad_mode_computes_none():
    hidden, weight, _, targets = _inputs(20, False)
    weight.requires_grad_(False)
    loss, _ = linear_cross_entropy(hidden, weight, None, targets)
    loss.backward()
    assert weight.grad is None and hidden.grad is not None
    with torch.no_grad():
        loss_no_grad, _ = linear_cross_entropy(hidden, weight, None, targets)
    assert loss_no_grad.item() == pytest.approx(loss.item())


def test_under_bf16_autocast_it_follows_the_unfused_loss():
    hidden, weight, _, targets = _inputs(40, False)
    hidden, weight = hidden.detach().float().requires_grad_(), weight.detach().float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = linear_cross_entropy(hidden, weight, None, targets, chunk_rows=16)
        expected = F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected.item(), rel=1e-3)
    loss.backward()
    assert hidden.grad.dtype == torch.float32 and weight.grad.dtype == torch.float32


@pytest.mark.parametrize("scale, softcap", [(0.25, None), (1.0, 2.0), (3.0, 8.0)])
def test_scaled_and_soft_capped_logits_give_the_unfused_loss_and_gradients(scale, softcap):
    """Cohere / Granite / Falcon-H1 scale their logits, Gemma soft-caps them: cap * tanh(scale * z / cap)."""
    hidden, weight, bias_tensor, targets = _inputs(40, True)
    loss, correct = linear_cross_entropy(hidden, weight, bias_tensor, targets, chunk_rows=16, scale=scale, softcap=softcap)
    loss.backward()
    fused = [t.grad.clone() for t in (hidden, weight, bias_tensor)]
    for t in (hidden, weight, bias_tensor):
        t.grad = None
    logits = F.linear(hidden, weight, bias_tensor) * scale
    logits = softcap * torch.tanh(logits / softcap) if softcap is not None else logits
    expected = F.cross_entropy(logits, targets, reduction="sum")
    expected.backward()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-6)
    assert int(correct) == int((logits.argmax(-1) == targets).sum())
    for got, want in zip(fused, [t.grad for t in (hidden, weight, bias_tensor)]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
