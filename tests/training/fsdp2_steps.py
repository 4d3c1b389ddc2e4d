"""Two optimizer steps of the tiny model (accumulation 2, gradient clipping that bites) over 16 rows whose
trained-token counts differ a lot, in five variants: full fine-tuning, LoRA, packed rows, activation
checkpointing, and a NaN loss in the second micro-batch (on one process; under FSDP2 on rank 1 only),
which the non-finite guard must skip as one step on every rank. On one process (micro-batch 4) or under FSDP2 on 2 gloo processes (micro-batch 2 each,
rank r taking rows r, r + 2, ...: the same 4 rows per micro-batch in all; Lightning's own distributed
sampler would shuffle them):

    torchrun --nproc_per_node 2 -m tests.training.fsdp2_steps OUT.pt

Rank 0 saves, per variant, the full (gathered) weights, and the logged loss and gradient norm of each step.
"""

from __future__ import annotations

import sys
from typing import Any

import lightning
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.utils.data import DataLoader

import sftlab.training.strategies  # noqa: F401  (registers the strategy name fsdp2)
from sftlab.data.labels.collate import Collator
from sftlab.data.labels.packing import pack_examples
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.model.adapters import LoraSettings
from sftlab.model.module import CausalLMModule
from sftlab.training.guard import NonFiniteGuard
from tests.model.test_module import tiny_module

ROWS_PER_MICRO_BATCH = 4
CLIP = 0.05  # below the tiny model's gradient norms, so clipping changes every step

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "lora": {"lora": LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])},
    "packed": {},
    "checkpointing": {"gradient_checkpointing": True},
    "nonfinite": {},
}


def examples(count: int, seed: int) -> dict[str, list[list[int]]]:
    generator = torch.Generator().manual_seed(seed)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
    for _ in range(count):
        length = int(torch.randint(6, 40, (1,), generator=generator))
        trained = int(torch.randint(1, length, (1,), generator=generator))
        ids = torch.randint(3, 128, (length,), generator=generator).tolist()
        batch["input_ids"].append(ids)
        batch["labels"].append([IGNORE_INDEX] * (length - trained) + ids[length - trained :])
    return batch


def rows(variant: str) -> list[dict[str, list[int]]]:
    """16 rows: plain examples, or (packed) rows of several examples with restarting position ids."""
    batch = pack_examples(examples(48, seed=1), max_seq_length=64) if variant == "packed" else examples(16, seed=0)
    keys = [key for key in ("input_ids", "labels", "position_ids") if key in batch]
    table = [{key: batch[key][i] for key in keys} for i in range(len(batch["input_ids"]))]
    assert len(table) >= 16, len(table)
    return table[:16]


class Recorder(CausalLMModule):
    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.losses: list[float] = []
        self.grad_norms: list[float] = []

    def labelled_sums(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        loss_sum, *rest = super().labelled_sums(batch)
        poisoned = (
            self.poison and self.trainer.fit_loop.epoch_loop.batch_idx == 1 and self.trainer.global_rank == self.trainer.world_size - 1
        )
        return (loss_sum * float("nan") if poisoned else loss_sum), *rest

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        metrics = self.trainer.callback_metrics
        self.losses.append(float(metrics.get("train/loss", float("nan"))))
        self.grad_norms.append(float(metrics.get("train/grad_norm", float("nan"))))


def run(variant: str, devices: int, strategy: str) -> dict[str, Any] | None:
    """Train `variant`; its results on rank 0, None on other ranks."""
    lightning.seed_everything(0, verbose=False)  # LoRA's A matrices are drawn from the global generator
    module = tiny_module(Recorder, causal_lm=VARIANTS[variant])
    module.poison, guard = variant == "nonfinite", NonFiniteGuard()
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        max_steps=2,
        accumulate_grad_batches=2,
        gradient_clip_val=CLIP,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[guard],
    )
    mine = rows(variant)[trainer.global_rank :: trainer.world_size]
    loader = DataLoader(mine, batch_size=ROWS_PER_MICRO_BATCH // devices, collate_fn=Collator(pad_token_id=0))
    trainer.fit(module, loader)
    weights = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not trainer.is_global_zero:
        return None
    return {"weights": weights, "losses": module.losses, "grad_norms": module.grad_norms, "skipped": guard.skipped}


def main(output: str) -> None:
    results = {variant: run(variant, devices=2, strategy="fsdp2") for variant in VARIANTS}
    if all(result is not None for result in results.values()):
        torch.save(results, output)


if __name__ == "__main__":
    main(sys.argv[1])
