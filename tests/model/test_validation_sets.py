"""Several validation sets (a mixture's sources, a dict of loaders): each one's loss over its own tokens,
and `val/*` over all of them together, as with one set."""

from __future__ import annotations

import lightning
import pytest
import torch
from torch.utils.data import DataLoader

from sftlab.data.labels.collate import Collator
from tests.model.test_module import _examples, summed_token_loss, tiny_module


def test_each_validation_set_has_its_loss_and_val_is_over_all_tokens():
    module = tiny_module()
    rows = _examples()
    sets = {"alpaca": rows[:3], "wiki": rows[3:]}
    loaders = {name: DataLoader(part, batch_size=2, collate_fn=Collator(pad_token_id=0)) for name, part in sets.items()}
    trainer = lightning.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, loaders, verbose=False)
    logged = {key: value for result in metrics for key, value in result.items()}
    sums = {}
    with torch.no_grad():
        for name, part in {**sets, "all": rows}.items():
            batch = Collator(pad_token_id=0)(part)
            loss_sum, count = summed_token_loss(module(batch), batch["labels"])
            sums[name] = (loss_sum / count).item(), count.item()
    for name in sets:
        assert logged[f"val/{name}/loss"] == pytest.approx(sums[name][0], rel=1e-5)
        assert logged[f"val/{name}/trainable_tokens"] == sums[name][1]
    assert logged["val/loss"] == pytest.approx(sums["all"][0], rel=1e-5)
    assert logged["val/trainable_tokens"] == sums["all"][1]
    assert not any("dataloader_idx" in key for key in logged)
