"""The LightningModule around any `AutoModelForCausalLM`: forward, exact token-level loss, AdamW.

Lightning owns the loop, accumulation, precision and strategies; this module adds only what they
do not: the loss normalised over the whole effective batch (see loss.py) and the optimizer groups.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import torch
import torchmetrics
from lightning import LightningModule
from lightning.fabric.utilities.throughput import get_available_flops
from lightning.pytorch.loggers import TensorBoardLogger
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from sftlab.errors import SftlabError
from sftlab.model.adapters import LoraSettings, add_lora
from sftlab.model.head import labelled_head
from sftlab.model.loading import load_causal_lm
from sftlab.model.loss import label_positions, normalise_gradients, token_sums
from sftlab.model.throughput import StepThroughput

log = logging.getLogger(__name__)


# What training sums per accumulation window and per epoch: summed token loss, trainable tokens,
# real (unpadded) tokens, correct next-token predictions, padded token slots.
WINDOW = ("loss", "trainable", "tokens", "correct", "padded")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the model reads from a batch (packed batches: position ids and no attention mask)."""
    return {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids") if key in batch}


class CausalLMModule(LightningModule):
    def __init__(
        self,
        source: str | None = None,
        config: dict[str, Any] | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        learning_rate: float = 2e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        schedule: Literal["cosine", "linear"] = "cosine",
        init_seed: int = 0,
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
        trust_remote_code: bool = False,
        peak_flops: float | None = None,
        tf32: bool = True,
        max_nonfinite_steps: int = 5,
        labelled_logits_only: bool = True,
    ) -> None:
        """
        Args:
            source: A hub-format model folder or a `.gguf` file.
            config: Without a source: a transformers config (with `model_type`) for random weights.
            dtype: Parameter dtype (float32, bfloat16, float16).
            attn_implementation: sdpa, eager, flash_attention_2 ...
            learning_rate: Peak learning rate (Alpaca recipe: 2e-5).
            weight_decay: AdamW weight decay, not applied to biases and norms (Alpaca recipe: 0).
            warmup_ratio: Fraction of optimizer steps spent warming up (Alpaca recipe: 0.03).
            schedule: Learning-rate decay after warmup.
            init_seed: Seed for random initialisation from `config`.
            lora: LoRA/DoRA adapter settings; none means full fine-tuning.
            gradient_checkpointing: Recompute activations in the backward pass (transformers' own;
                under FSDP prefer the strategy's `checkpoint_activations`).
            trust_remote_code: Run model code shipped with the checkpoint (off unless you trust it).
            peak_flops: Peak FLOP/s of one device, for the MFU estimate; default: Lightning's table of GPUs
                (on CPU there is none, and no MFU is logged unless this is given).
            tf32: On CUDA, let float32 matrix products use TF32 tensor cores (Ampere and later).
            max_nonfinite_steps: Optimizer steps with a non-finite loss or gradient are skipped and
                counted (`train/skipped_steps`); this many in a row stop the run.
            labelled_logits_only: Compute the output layer and the loss only at positions whose next
                label is trained (same loss and gradients, much less work with a large vocabulary;
                see head.py). Models that post-process logits keep the full forward regardless.
        """
        super().__init__()
        self.save_hyperparameters()
        self.model = load_causal_lm(source, config, dtype, attn_implementation, trust_remote_code, seed=init_seed)
        if gradient_checkpointing:
            # Reentrant checkpointing breaks with frozen inputs (LoRA); the non-reentrant kind does not.
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if lora is not None:
            self.model = add_lora(self.model, lora)
        self.model.train()  # from_pretrained returns eval mode, which would switch dropout off in training
        self.split_head = labelled_head(self.model) if labelled_logits_only else None
        self.trainable_parameters = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        # Validation sums, synchronised across ranks by torchmetrics at the epoch's end.
        self.val_sums = torchmetrics.MetricCollection({name: torchmetrics.SumMetric() for name in ("loss", "tokens", "correct")})
        # Sums over the current accumulation window (WINDOW order), reduced over ranks at the optimizer
        # step; zero whenever a checkpoint is saved (Lightning saves right after optimizer steps).
        self.window = torch.zeros(len(WINDOW), dtype=torch.float64)
        self.epoch_totals = torch.zeros(len(WINDOW), dtype=torch.float64)
        self.throughput = StepThroughput()
        self.skipped_steps = self.nonfinite_in_a_row = 0

    def on_fit_start(self) -> None:
        log.info("trainable parameters: %s", f"{self.trainable_parameters:,}")
        if self.logger is not None:
            self.logger.log_hyperparams({"trainable_parameters": self.trainable_parameters})
        precision = str(self.trainer.precision)
        self.compute_dtype = (
            torch.bfloat16 if "bf16" in precision else torch.float16 if precision.startswith("16") else next(self.model.parameters()).dtype
        )
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high" if self.hparams.tf32 else "highest")
        self.peak_flops = self.hparams.peak_flops or get_available_flops(self.device, self.compute_dtype)
        self._log_data_reports()

    def _log_data_reports(self) -> None:
        """The data report of each split (read, kept, truncated, dropped, trainable fraction) as scalars."""
        reports = getattr(self.trainer.datamodule, "reports", {}) if self.trainer.datamodule is not None else {}
        if self.logger is None:
            return
        for split, report in reports.items():
            self.logger.log_metrics(report.as_metrics(), step=0)
            if isinstance(self.logger, TensorBoardLogger):
                self.logger.experiment.add_text(f"data/{split}", f"```\n{report.table()}\n```", 0)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits; packed batches (position ids, no mask) need `use_cache=False` to stay isolated."""
        return self.model(**model_inputs(batch), use_cache=False).logits

    def labelled_sums(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Summed next-token loss, right argmax predictions, and the number of trained labels."""
        positions, targets = label_positions(batch["labels"])
        if self.split_head is None:
            return *token_sums(self(batch)[positions], targets), len(targets)
        return *self.split_head.token_sums(model_inputs(batch), positions, targets), len(targets)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss_sum, correct, count = self.labelled_sums(batch)
        trainable = torch.tensor(count, device=loss_sum.device)
        tokens = batch["lengths"].sum()
        sums = torch.stack(
            [loss_sum.detach(), trainable, tokens, correct, torch.tensor(batch["input_ids"].numel(), device=tokens.device)]
        ).double()
        self.window = self.window.to(sums.device) + sums
        self.throughput.add_batch(int(tokens), len(batch["lengths"]))
        # Lightning divides the returned loss by accumulate_grad_batches; the exact normalisation
        # happens on the accumulated gradients in on_before_optimizer_step.
        return loss_sum * self.trainer.accumulate_grad_batches

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        sums = self.trainer.strategy.reduce(self.window, reduce_op="sum")
        self.window = torch.zeros_like(self.window)
        loss_sum, trainable, tokens, correct, padded = sums.tolist()
        # DDP averages gradients over ranks; multiplying by the world size turns that into a sum.
        normalise_gradients(self.parameters(), trainable, scale=self.trainer.world_size)
        gradients = [p.grad for p in self.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(gradients) if gradients else torch.zeros((), device=self.device)
        if not self._finite_step(loss_sum, grad_norm):
            return
        self.epoch_totals = self.epoch_totals.to(sums.device) + sums
        self._log_sums("train", loss_sum, trainable, correct, prog_bar=True)
        self.log("train/padding_fraction", 1 - tokens / max(padded, 1))
        self.log("train/trainable_tokens", trainable)
        self.log("train/grad_norm", grad_norm)  # before clipping; under FSDP the norm of this rank's shards
        figures = self.throughput.step(
            self.model, self.device, self.compute_dtype, tokens, trainable, self.trainer.world_size, self.peak_flops
        )
        for name, value in figures.items():
            self.log(name, value, prog_bar=name == "throughput/tokens_per_s", rank_zero_only=True)

    def _finite_step(self, loss_sum: float, grad_norm: torch.Tensor) -> bool:
        """False, with the step skipped (all gradients dropped, so AdamW changes nothing), when the
        loss or a gradient is not finite on any rank; a run of `max_nonfinite_steps` such steps in a
        row stops training with an error naming the step and batch."""
        bad = torch.tensor(float(not (math.isfinite(loss_sum) and torch.isfinite(grad_norm))), device=self.device)
        if float(self.trainer.strategy.reduce(bad, reduce_op="sum")) == 0:
            self.nonfinite_in_a_row = 0
            return True
        for parameter in self.parameters():
            parameter.grad = None
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        self.log("train/skipped_steps", float(self.skipped_steps))
        where = f"step {self.trainer.global_step + 1}, batch {self.trainer.fit_loop.epoch_loop.batch_idx} of epoch {self.current_epoch}"
        log.warning("%s: non-finite loss or gradient: optimizer step skipped (%d in a row)", where, self.nonfinite_in_a_row)
        if self.nonfinite_in_a_row >= self.hparams.max_nonfinite_steps:
            raise SftlabError(
                f"training stopped at {where}: non-finite loss or gradients in {self.nonfinite_in_a_row} "
                "optimizer steps in a row (model.max_nonfinite_steps); lower the learning rate, check the "
                "data, or train in float32"
            )
        return False

    def _log_sums(self, prefix: str, loss_sum: float, trainable: float, correct: float, prog_bar: bool = False) -> float:
        """Loss, perplexity and token accuracy over all the trainable tokens the sums were taken over
        (not means of per-batch figures)."""
        loss = loss_sum / max(trainable, 1)
        self.log(f"{prefix}/loss", loss, prog_bar=prog_bar)
        self.log(f"{prefix}/perplexity", math.exp(min(loss, 80.0)))
        self.log(f"{prefix}/token_accuracy", correct / max(trainable, 1))
        return loss

    def on_train_epoch_end(self) -> None:
        loss_sum, trainable, _, correct, _ = self.epoch_totals.tolist()
        loss = self._log_sums("train_epoch", loss_sum, trainable, correct)
        log.info("epoch %d: train loss %.4f over %s trainable tokens", self.current_epoch, loss, f"{int(self.epoch_totals[1]):,}")
        self.epoch_totals = torch.zeros_like(self.epoch_totals)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sftlab_epoch_totals"] = self.epoch_totals.tolist()  # a resumed epoch reports the whole epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.epoch_totals = torch.tensor(checkpoint.get("sftlab_epoch_totals", [0.0] * len(WINDOW)), dtype=torch.float64)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss_sum, correct, count = self.labelled_sums(batch)
        self.val_sums["loss"].update(loss_sum)
        self.val_sums["tokens"].update(count)
        self.val_sums["correct"].update(correct)

    def on_validation_epoch_end(self) -> None:
        sums = {name: float(value) for name, value in self.val_sums.compute().items()}
        self.val_sums.reset()
        self._log_sums("val", sums["loss"], sums["tokens"], sums["correct"], prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for p in self.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.ndim < 2]  # biases and norms
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.learning_rate,
        )
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        warmup_steps = math.ceil(self.hparams.warmup_ratio * total_steps)
        make = get_cosine_schedule_with_warmup if self.hparams.schedule == "cosine" else get_linear_schedule_with_warmup
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": make(optimizer, warmup_steps, total_steps), "interval": "step"}}
