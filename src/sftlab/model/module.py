"""The LightningModule: a causal LM (built by an injected `CausalLMBuilder`), its loss normalised over
the whole effective batch, and the injected optimizer and learning-rate schedule.

Lightning owns the loop, accumulation, precision, strategies and checkpoints; the callbacks in `sftlab.training`
own throughput, the non-finite-step guard, exports and samples. What is left here defines training: which
positions are trained, the exact normalisation (see loss.py), the metrics of each optimizer step and epoch,
and the optimizer's parameter groups.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from jsonargparse import lazy_instance
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from sftlab.model.causal_lm import CausalLMBuilder, HFCausalLM
from sftlab.model.forward_pass import ForwardPass
from sftlab.model.layers import compile_decoder_layers
from sftlab.model.loss import TokenLoss, gradient_norm, label_positions, normalise_gradients, prompt_of
from sftlab.model.metrics import SUMS, loss_metrics
from sftlab.model.optim import WarmupDecay, default_optimizer, parameter_groups, takes_total_steps

log = logging.getLogger(__name__)

# What training sums per accumulation window and per epoch: the loss sums (metrics.py: weighted loss, Σ
# weights, trained labels, right predictions, the prompt's part), real (unpadded) tokens, token slots incl.
# padding, and an MoE model's router loss times each micro-batch's normaliser (moe.py).
WINDOW = (*SUMS, "tokens", "padded", "router")


class CausalLMModule(LightningModule):
    def __init__(
        self,
        causal_lm: CausalLMBuilder = lazy_instance(HFCausalLM),
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: LRSchedulerCallable = WarmupDecay,
        loss: TokenLoss = lazy_instance(TokenLoss),
        labelled_logits_only: bool = True,
        tf32: bool = True,
        compile: bool = False,
    ) -> None:
        """
        Args:
            causal_lm: Builds the model: `HFCausalLM` (a folder, `.gguf` or config, with LoRA) or your own.
            optimizer: Called with two parameter groups (decayed weights; biases and norms with
                weight_decay 0). Default: AdamW, lr 2e-5, no weight decay (the Alpaca recipe).
            lr_scheduler: Called with the optimizer, stepped every optimizer step; a `total_steps`
                argument gets the run's length. Default: 3% linear warmup then cosine decay.
            loss: Per-token weights of the cross-entropy (default: the data's, else 1) and what counts
                the same in the average (`normalisation`: token, sequence or turn), exact over the whole
                effective batch.
            labelled_logits_only: Compute the output layer and the loss only at positions whose next
                label is trained (same loss and gradients, much less work with a large vocabulary;
                see head.py). Models that post-process logits keep the full forward regardless.
            tf32: On CUDA, let float32 matrix products use TF32 tensor cores (Ampere and later).
            compile: `torch.compile` each decoder layer (model/layers.py): fused kernels on GPUs.
        """
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])  # callables; the run's config.yaml has them
        self.builder, self.optimizer_factory, self.scheduler_factory, self.loss = causal_lm, optimizer, lr_scheduler, loss
        self.model: torch.nn.Module | None = None  # built in configure_model
        self.forward_pass: ForwardPass | None = None  # with the model: logits where trained, packing, router loss
        self.val_names: list[str] = []  # validation sets by name, when there are several (a mixture's sources)
        self.val_sums = torch.zeros(1, len(SUMS), dtype=torch.float64)  # per validation set
        # Sums over the current accumulation window (WINDOW order), reduced over ranks at the optimizer
        # step; zero whenever a checkpoint is saved (Lightning saves right after optimizer steps).
        self.window = torch.zeros(len(WINDOW), dtype=torch.float64)
        self.epoch_totals = torch.zeros(len(WINDOW), dtype=torch.float64)

    def configure_model(self) -> None:
        """Build the model once (Lightning calls this under the strategy's context, before restoring a checkpoint)
        and decide, with probe forward passes, how it is called (forward_pass.py)."""
        if self.model is not None:
            return
        self.model = self.builder.build()
        self.forward_pass = ForwardPass(self.model, self.hparams.labelled_logits_only)  # probed before compiling
        self.model = compile_decoder_layers(self.model) if self.hparams.compile else self.model
        log.info("trainable parameters: %s", f"{sum(p.numel() for p in self.model.parameters() if p.requires_grad):,}")

    def on_fit_start(self) -> None:
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high" if self.hparams.tf32 else "highest")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (batch, seq, vocabulary)."""
        return self.forward_pass.logits(batch)

    def labelled_sums(self, batch: dict[str, torch.Tensor], training: bool = True) -> tuple[torch.Tensor, ...]:
        """A batch's loss sums (SUMS order) and an MoE router loss times the normaliser (both losses keep their
        graphs). Validation uses the token average (loss.py)."""
        positions, targets = label_positions(batch["labels"])
        weights, normaliser = self.loss.scale(batch, positions, None if training else "token")
        loss_sum, correct, prompt_sum, prompt_normaliser, router = self.forward_pass.sums(
            batch, positions, targets, weights, normaliser, prompt_of(batch, positions)
        )
        count, device = torch.tensor(len(targets), device=loss_sum.device), loss_sum.device
        return loss_sum, normaliser.to(device), count, correct, prompt_sum, prompt_normaliser.to(device), router

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss_sum, *rest, router = self.labelled_sums(batch)
        tokens, slots = batch["lengths"].sum(), torch.tensor(batch["input_ids"].numel(), device=loss_sum.device)
        sums = torch.stack([loss_sum.detach(), *rest, tokens, slots, router.detach()]).double()
        self.window = self.window.to(sums.device) + sums
        # Lightning divides the returned loss by accumulate_grad_batches; the exact normalisation
        # happens on the accumulated gradients in on_before_optimizer_step.
        return (loss_sum + (self.forward_pass.router_coefficient or 0.0) * router) * self.trainer.accumulate_grad_batches

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        sums = self.trainer.strategy.reduce(self.window, reduce_op="sum")
        self.window = torch.zeros_like(self.window)
        *loss_sums, tokens, slots, router = sums.tolist()
        # DDP averages gradients over ranks; multiplying by the world size turns that into a sum.
        normalise_gradients(self.parameters(), loss_sums[1], scale=self.trainer.world_size)
        gradients = [p.grad for p in self.parameters() if p.grad is not None]
        if not gradients or not math.isfinite(loss_sums[0]):  # the step is skipped (NonFiniteGuard dropped its gradients)
            return
        self.epoch_totals = self.epoch_totals.to(sums.device) + sums
        self._log_sums("train", loss_sums, prog_bar=True)
        self.log("train/padding_fraction", 1 - tokens / max(slots, 1))
        self.log("train/trainable_tokens", loss_sums[2])
        self.log("train/grad_norm", gradient_norm(gradients))  # before clipping; of the whole model under FSDP2
        if self.forward_pass.router_coefficient is not None:
            self.log("train/aux_loss", router / loss_sums[1] if loss_sums[1] else 0.0)

    def _log_sums(self, prefix: str, sums: list[float], prog_bar: bool = False) -> float:
        """The metrics of `sums` (SUMS order; metrics.py); the loss."""
        metrics = loss_metrics(prefix, sums)
        for name, value in metrics.items():
            self.log(name, value, prog_bar=prog_bar and name == f"{prefix}/loss")
        return metrics[f"{prefix}/loss"]

    def on_train_epoch_end(self) -> None:
        sums = self.epoch_totals.tolist()[: len(SUMS)]
        loss = self._log_sums("train_epoch", sums)
        log.info("epoch %d: train loss %.4f over %s trainable tokens", self.current_epoch, loss, f"{int(sums[2]):,}")
        self.epoch_totals = torch.zeros_like(self.epoch_totals)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sftlab_epoch_totals"] = self.epoch_totals.tolist()  # a resumed epoch reports the whole epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        totals = checkpoint.get("sftlab_epoch_totals", [0.0] * len(WINDOW))
        self.epoch_totals = torch.tensor((totals + [0.0] * len(WINDOW))[: len(WINDOW)], dtype=torch.float64)

    # Validation: sums per validation set (a dict of loaders names them), reduced over ranks at the end.
    def on_validation_epoch_start(self) -> None:
        loaders = self.trainer.val_dataloaders
        self.val_names = list(loaders) if isinstance(loaders, dict) else []
        self.val_sums = torch.zeros(max(len(self.val_names), 1), len(SUMS), dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self.val_sums[dataloader_idx] += torch.stack(
            [value.detach().double() for value in self.labelled_sums(batch, training=False)[: len(SUMS)]]
        )

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self.val_sums, reduce_op="sum")
        for prefix, row in [("val", sums.sum(0).tolist())] + [(f"val/{name}", row) for name, row in zip(self.val_names, sums.tolist())]:
            self._log_sums(prefix, row, prog_bar=prefix == "val")
            self.log(f"{prefix}/trainable_tokens", row[2])

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(parameter_groups(self.parameters()))
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        make = self.scheduler_factory
        scheduler = make(optimizer, total_steps=total_steps) if takes_total_steps(make) else make(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
