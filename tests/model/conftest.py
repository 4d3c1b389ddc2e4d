"""A tiny LoRA fine-tune through the real CLI, shared by the resume and export tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import sftlab

# 12 packed rows, 2 per batch, 2 batches per step: 3 steps per epoch, so step 4 is mid-epoch; LoRA
# dropout draws random numbers; length grouping reorders each epoch.
LORA_FIT = ("--config", "configs/tiny.yaml", "--trainer.max_steps", "8", "--data.batch_size", "2",
            "--data.group_by_length", "true", "--trainer.enable_progress_bar", "false",
            "--model.lora", '{"r": 4, "alpha": 8, "dropout": 0.2, "target_modules": ["q_proj", "v_proj"]}')


def fit_tiny_lora(shared: Path, root: Path, *extra: str) -> None:
    result = sftlab("fit", *LORA_FIT, "--trainer.default_root_dir", str(root),
                    "--data.tokenizer", str(shared / "tokenizers/smollm2-135m-instruct"),
                    "--data.cache_dir", str(root.parent / "cache"), *extra)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="session")
def tiny_lora_run(shared, tmp_path_factory) -> Path:
    """The root folder of an 8-step tiny LoRA fit with checkpoints at steps 4 and 8."""
    root = tmp_path_factory.mktemp("tiny_lora") / "run"
    fit_tiny_lora(shared, root)
    return root
