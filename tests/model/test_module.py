"""Exact loss normalisation: micro-batch 8 x accumulation 1 equals 2 x 4 with uneven token counts."""

from __future__ import annotations

import lightning
import pytest
import torch
from torch.utils.data import DataLoader

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.model.causal_lm import HFCausalLM
from sftlab.model.loss import label_positions, token_sums
from sftlab.model.module import CausalLMModule
from sftlab.model.optim import WarmupDecay
from sftlab.training.guard import NonFiniteGuard
from tests.model.test_loading import TINY


def summed_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition, from full logits: summed next-token cross-entropy over trained labels, and their count."""
    positions, targets = label_positions(labels)
    return token_sums(logits[positions], targets)[0], positions.sum()


def tiny_module(cls=CausalLMModule, lr: float = 1e-3, **kwargs) -> CausalLMModule:
    """A built tiny module (AdamW at `lr`, constant learning rate)."""
    module = cls(
        causal_lm=HFCausalLM(config=TINY, **kwargs.pop("causal_lm", {})),
        optimizer=lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=0.0),
        lr_scheduler=lambda optimizer, total_steps: WarmupDecay(optimizer, warmup_ratio=0.0, decay="constant", total_steps=total_steps),
        **kwargs,
    )
    module.configure_model()
    return module


def _examples() -> list[dict[str, list[int]]]:
    """Eight examples whose trainable-token counts differ a lot (1 to 40)."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _i, (length, trained) in enumerate([(12, 1), (48, 40), (20, 3), (33, 30), (8, 2), (40, 5), (16, 15), (24, 9)]):
        ids = torch.randint(3, 128, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (length - trained) + ids[length - trained :]})
    return rows


class GradientRecorder(CausalLMModule):
    def on_before_optimizer_step(self, optimizer):
        super().on_before_optimizer_step(optimizer)
        self.gradients = [p.grad.clone() for p in self.parameters()]
        self.step_loss = float(self.trainer.callback_metrics["train/loss"])


def fit_one_step(module: CausalLMModule, rows: list[dict], micro_batch: int, accumulation: int) -> CausalLMModule:
    """`module` after one optimizer step on `rows` (micro-batches of `micro_batch`, `accumulation` of them), on CPU."""
    loader = DataLoader(rows, batch_size=micro_batch, collate_fn=Collator(pad_token_id=0))
    trainer = lightning.Trainer(
        accelerator="cpu",
        max_steps=1,
        accumulate_grad_batches=accumulation,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    return module


def _one_step(micro_batch: int, accumulation: int) -> GradientRecorder:
    return fit_one_step(tiny_module(GradientRecorder), _examples(), micro_batch, accumulation)


def _reference() -> tuple[list[torch.Tensor], float]:
    """The definition: the summed token loss of the whole batch divided by its trainable tokens."""
    module = tiny_module()
    batch = Collator(pad_token_id=0)(_examples())
    loss_sum, count = summed_token_loss(module(batch), batch["labels"])
    loss = loss_sum / count
    loss.backward()
    return [p.grad for p in module.parameters()], loss.item()


def test_accumulation_gives_the_same_gradients_and_logged_loss_as_one_big_batch():
    reference, reference_loss = _reference()
    for micro_batch, accumulation in ((8, 1), (2, 4), (1, 8)):
        module = _one_step(micro_batch, accumulation)
        for got, expected in zip(module.gradients, reference):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
        assert module.step_loss == pytest.approx(reference_loss, rel=1e-5)


def test_a_mean_of_micro_batch_means_would_differ():
    """The control: the HF-before-2024 normalisation is measurably wrong on this data."""
    module = tiny_module()
    for rows in (_examples()[i : i + 2] for i in range(0, 8, 2)):
        batch = Collator(pad_token_id=0)(rows)
        loss_sum, count = summed_token_loss(module(batch), batch["labels"])
        (loss_sum / count / 4).backward()
    naive = [p.grad for p in module.parameters()]
    assert max((a - b).abs().max().item() for a, b in zip(naive, _reference()[0])) > 1e-4


def test_no_trainable_token_gives_zero_not_nan():
    logits = torch.randn(2, 5, 11, requires_grad=True)
    loss_sum, count = summed_token_loss(logits, torch.full((2, 5), IGNORE_INDEX))
    loss_sum.backward()
    assert count.item() == 0 and loss_sum.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_lora_trains_only_adapters_and_checks_targets():
    from sftlab.errors import SftlabError
    from sftlab.model.adapters import LoraSettings

    def trainable(module: CausalLMModule) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    module = tiny_module(causal_lm={"lora": LoraSettings(r=4, alpha=8)})
    names = [name for name, p in module.named_parameters() if p.requires_grad]
    assert names and all("lora_" in name for name in names)
    assert trainable(tiny_module(causal_lm={"lora": LoraSettings(target_modules="all-linear")})) > trainable(module)
    with pytest.raises(SftlabError, match=r"no module named \['query_key_value'\].*q_proj"):
        tiny_module(causal_lm={"lora": LoraSettings(target_modules=["query_key_value"])})
    with pytest.raises(SftlabError, match="QLoRA.*CUDA"):
        tiny_module(causal_lm={"lora": LoraSettings(quantize_4bit=True)})


def test_validation_loss_and_perplexity_are_over_all_tokens_of_the_epoch():
    module = tiny_module()
    loader = DataLoader(_examples(), batch_size=2, collate_fn=Collator(pad_token_id=0))
    trainer = lightning.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, loader, verbose=False)[0]
    batch = Collator(pad_token_id=0)(_examples())
    with torch.no_grad():
        loss_sum, count = summed_token_loss(module(batch), batch["labels"])
    assert metrics["val/loss"] == pytest.approx((loss_sum / count).item(), rel=1e-5)
    assert metrics["val/perplexity"] == pytest.approx(torch.exp(loss_sum / count).item(), rel=1e-4)


def test_two_process_ddp_gives_the_same_gradients_and_loss_as_one_process(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    output = tmp_path / "ddp.pt"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "tests.model.ddp_one_step", str(output)],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "src")])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = torch.load(output)
    reference, reference_loss = _reference()
    for gradient, expected in zip(got["gradients"], reference):
        torch.testing.assert_close(gradient, expected, rtol=1e-5, atol=1e-7)
    assert got["loss"] == pytest.approx(reference_loss, rel=1e-5)


class PoisonedBatches(CausalLMModule):
    """Forward gives NaN logits on the listed batch indices (as an overflow would)."""

    def __init__(self, poisoned: set[int] = frozenset(), **kwargs):
        super().__init__(**kwargs)
        self.poisoned = poisoned
        self.snapshots = []

    def training_step(self, batch, batch_idx):
        self.current_batch = batch_idx
        return super().training_step(batch, batch_idx)

    def labelled_sums(self, batch):
        loss_sum, *rest = super().labelled_sums(batch)
        return (loss_sum * float("nan") if self.current_batch in self.poisoned else loss_sum), *rest

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.snapshots.append([p.detach().clone() for p in self.parameters()])


def _fit(module, steps, guard: NonFiniteGuard):
    loader = DataLoader(_examples(), batch_size=2, collate_fn=Collator(pad_token_id=0))
    trainer = lightning.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[guard],
    )
    trainer.fit(module, loader)


def test_a_non_finite_step_is_skipped_and_counted_and_changes_nothing():
    module, guard = tiny_module(PoisonedBatches, lr=1e-2, poisoned={1}), NonFiniteGuard()
    _fit(module, 3, guard)
    assert guard.skipped == 1 and guard.in_a_row == 0
    before, skipped, after = module.snapshots
    assert all(torch.equal(a, b) for a, b in zip(before, skipped))  # the NaN step changed no weight
    assert not all(torch.equal(a, b) for a, b in zip(skipped, after))  # training went on
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_non_finite_steps_in_a_row_stop_with_the_step_and_batch():
    from sftlab.errors import SftlabError

    module = tiny_module(PoisonedBatches, poisoned={1, 2})
    with pytest.raises(SftlabError, match=r"training stopped at step 3, batch 2 of epoch 0: non-finite loss or gradients in 2"):
        _fit(module, 4, NonFiniteGuard(max_in_a_row=2))
