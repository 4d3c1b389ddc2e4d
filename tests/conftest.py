"""Shared fixtures: real files from ../shared (skipped where it is absent), offline hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TOKENIZERS = ("smollm2-135m-instruct", "qwen3", "phi-3-mini-4k-instruct")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED} (shared test data) is not present")
    return SHARED


@pytest.fixture(scope="session")
def tokenizers(shared: Path) -> dict:
    from sftlab.data.datamodule import load_tokenizer

    return {name: load_tokenizer(str(shared / "tokenizers" / name)) for name in TOKENIZERS}


@pytest.fixture(scope="session")
def smollm2_tokenizer(tokenizers: dict):
    return tokenizers["smollm2-135m-instruct"]


@pytest.fixture
def datasets_cache(tmp_path: Path) -> str:
    """A private datasets cache, so tests never reuse each other's tokenized data."""
    return str(tmp_path / "hf-datasets")
