"""A Hugging Face Hub cache built by the tests (no network): repositories laid out as `huggingface-cli
download` leaves them, `<HF_HOME>/hub/{models,datasets}--org--name/{refs/main, snapshots/<commit>/...}`,
read with `HF_HUB_OFFLINE=1`."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.test_cli import REPO

TINY_CONFIG = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())["model"]["causal_lm"]["config"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


def cached_repo(hf_home: Path, repo_id: str, fill: Callable[[Path], None], kind: str = "model", branch: str = "main") -> Path:
    """The snapshot folder of `repo_id` in the cache under `hf_home`, written by `fill(folder)` once."""
    storage = hf_home / "hub" / f"{kind}s--{repo_id.replace('/', '--')}"
    commit = commit_of(f"{repo_id}@{branch}")
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        snapshot.mkdir(parents=True)
        fill(snapshot)
        (storage / "refs").mkdir(exist_ok=True)
        (storage / "refs" / branch).write_text(commit)
    return snapshot


def tiny_model(testdata: Path) -> Callable[[Path], None]:
    """configs/tiny.yaml's random model (init seed 0), saved with the SmolLM2 tokenizer beside it."""

    def fill(folder: Path) -> None:
        from sftlab.model.loading import load_causal_lm

        load_causal_lm(config=TINY_CONFIG).save_pretrained(folder)
        for name in TOKENIZER_FILES:
            shutil.copy(testdata / "tokenizers/smollm2-135m-instruct" / name, folder / name)

    return fill
