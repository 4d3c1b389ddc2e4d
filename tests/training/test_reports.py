"""`configs/pretrain_mixture.yaml` through the real CLI: the data report has each source, requested and
planned; TensorBoard has the realised mixture as it trains, the validation loss of each source, and
the requested vs. realised table; the realised shares are the requested ones (an epoch draws them exactly)."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.test_cli import sftlab


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
def test_a_mixture_fit_reports_each_source(testdata, tmp_path):
    result = sftlab(
        "fit",
        "--config",
        "configs/pretrain_mixture.yaml",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "requested  planned" in result.stderr and "mixture trained (all ranks)" in result.stderr
    events = EventAccumulator(str(tmp_path / "lightning_logs/version_0"))
    events.Reload()
    for source, weight in (("web", 0.5), ("alpaca", 0.3), ("chat", 0.2)):
        assert events.Scalars(f"data/train/{source}/requested")[0].value == pytest.approx(weight)
        assert events.Scalars(f"data/train/{source}/realised")[-1].value == pytest.approx(weight, abs=0.01)  # 20 steps: one epoch
        assert events.Scalars(f"data/train/{source}/trained_tokens")[-1].value > 0
        assert events.Scalars(f"val/{source}/loss") and events.Scalars(f"data/val/{source}/tokens")
    assert events.Scalars("val/loss")
    assert "data/train/mixture/text_summary" in events.Tags()["tensors"]
