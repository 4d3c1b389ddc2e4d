"""The architecture matrix: every cell of every family (cells.py) holds and finds what support.json says, and
the README's support table is the one rendered from support.json (support.py writes both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architectures import cells
from tests.architectures.families import FAMILIES
from tests.architectures.support import COLUMNS, FSDP2_FAMILIES, README, readme_table, recorded, table

RESULTS = recorded()["families"]
REGENERATE = "support.json is out of date: python -m tests.architectures.support --write {name}"


@pytest.fixture(scope="module")
def fit_cache(tmp_path_factory) -> Path:
    """One `datasets` cache for all fits (the same data, tokenized once)."""
    return tmp_path_factory.mktemp("matrix_cache")


def test_every_family_has_every_column_recorded_and_the_readme_shows_them():
    assert list(RESULTS) == list(FAMILIES)
    assert all(set(row) == set(COLUMNS) for row in RESULTS.values())
    assert readme_table(README.read_text()) == table(recorded()), (
        "the README's support table: python -m tests.architectures.support --write"
    )


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("cell", ["attention", "head", "router", "packing"])
def test_cell(cell, name):
    assert getattr(cells, f"{cell}_cell")(name) == RESULTS[name][cell], REGENERATE.format(name=name)


@pytest.mark.parametrize("name", FAMILIES)
def test_full_fit_exports_and_generates(name, tmp_path, fit_cache):
    outcome = cells.fit_cell(name, tmp_path, fit_cache, packing=RESULTS[name]["packing"].startswith("exact"))
    assert outcome == {column: RESULTS[name][key] for column, key in (("fit", "full"), ("export", "export"), ("generate", "generate"))}, (
        REGENERATE.format(name=name)
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_lora_fit_exports_its_adapter(name, tmp_path, fit_cache):
    outcome = cells.fit_cell(name, tmp_path, fit_cache, packing=RESULTS[name]["packing"].startswith("exact"), lora=True)
    assert outcome["fit"] == RESULTS[name]["lora"], REGENERATE.format(name=name)


@pytest.mark.slow  # 2 processes per family
@pytest.mark.parametrize("name", FSDP2_FAMILIES)
def test_fsdp2_fit(name, tmp_path, fit_cache):
    outcome = cells.fsdp2_cell(name, tmp_path, fit_cache, packing=RESULTS[name]["packing"].startswith("exact"))
    assert outcome == RESULTS[name]["fsdp2"], REGENERATE.format(name=name)
