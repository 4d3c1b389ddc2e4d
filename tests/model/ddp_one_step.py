"""One optimizer step of the tiny model under 2-process DDP on CPU (gloo): micro-batch 2 x
accumulation 2 x 2 ranks over the eight uneven examples of test_module. Run as
`python -m tests.model.ddp_one_step OUT.pt` (Lightning re-launches it for rank 1); rank 0 saves
the normalised gradients and the logged step loss to OUT.pt."""

from __future__ import annotations

import sys

import lightning
import torch
from torch.utils.data import DataLoader

from sftlab.data.labels.collate import Collator
from tests.model.test_module import GradientRecorder, _examples, tiny_module


def main(output: str, scheme: str | None = None) -> None:
    """Without `scheme`: the token loss on the examples of test_module; with it, the weighted examples of
    test_normalisation under that normalisation."""
    if scheme is None:
        module, rows = tiny_module(GradientRecorder), _examples()
    else:
        from sftlab.model.loss import TokenLoss
        from tests.model.test_normalisation import weighted_examples

        module, rows = tiny_module(GradientRecorder, loss=TokenLoss(normalisation=scheme)), weighted_examples()
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=1,
        accumulate_grad_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(rows, batch_size=2, collate_fn=Collator(pad_token_id=0)))
    if trainer.global_rank == 0:
        torch.save({"gradients": module.gradients, "loss": module.step_loss}, output)


if __name__ == "__main__":
    main(*sys.argv[1:])
