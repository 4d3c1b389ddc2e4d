"""Smoke runs of the benchmark scripts, so they do not rot (tiny sizes; no timing asserted): the slow
tier. The scripts read their data and tokenizer from ../shared by default; here they get the files
that ship with the tests, except the ROUGE filter's, which reads ../shared only (`shared`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import SMOLLM2_TOKENIZER
from tests.test_cli import REPO

pytestmark = pytest.mark.slow


@pytest.mark.shared
def test_rouge_filter_benchmark_runs_and_agrees(shared, tmp_path):
    row = _bench("rouge_filter", tmp_path, "--sizes", "150", "--workers", "1")["figures"]["rows"][0]
    assert row["candidates"] == 150 and row["same_kept_set"] and row["kept"] > 0


def _bench(script: str, tmp_path, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}.py", "--results-dir", str(tmp_path / "results"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").is_file()
    return json.loads((tmp_path / "results" / f"{script}.json").read_text())


def test_sft_throughput_benchmark_runs_every_framework(tmp_path):
    pytest.importorskip("trl", reason="the bench extra (trl) is not installed")
    runs = ["recipe", "trl", "trl_packing", "sftlab_padded", "sftlab_packed", "sftlab_packed_full_logits"]
    record = _bench(
        "sft_throughput",
        tmp_path,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--max-length",
        "512",
        "--data",
        str(REPO / "data/demo/alpaca_sample.json"),
        "--tokenizer",
        str(SMOLLM2_TOKENIZER),
        "--runs",
        *runs,
    )
    rows = record["figures"]["rows"]
    assert list(rows) == runs
    for row in rows.values():
        assert row["steps"] == 2 and row["trainable_tokens_per_s"] > 0 and len(row["losses"]) == 2
    assert rows["sftlab_packed"]["padding"] < rows["sftlab_padded"]["padding"]
    assert rows["recipe"]["padding"] == pytest.approx(rows["trl"]["padding"])  # same examples, same padding rule
    section = (tmp_path / "RESULTS.md").read_text()
    assert "## SFT throughput" in section and "TRL SFTTrainer, packing=True" in section


def test_scaling_benchmark_runs(tmp_path):
    record = _bench(
        "scaling",
        tmp_path,
        "--steps",
        "2",
        "--lengths",
        "64",
        "128",
        "--batch-sizes",
        "8",
        "--data",
        str(REPO / "data/demo/alpaca_sample.json"),
        "--tokenizer",
        str(SMOLLM2_TOKENIZER),
    )
    rows = record["figures"]["rows"]
    assert [(r["max_length"], r["layout"]) for r in rows] == [(64, "padded"), (64, "packed"), (128, "padded"), (128, "packed")]
    packed = [r for r in rows if r["layout"] == "packed"]
    assert packed[1]["computed_per_step"] > packed[0]["computed_per_step"]  # packed rows fill the longer length


def test_preprocessing_benchmark_runs_and_labels_agree(tmp_path):
    record = _bench(
        "preprocessing",
        tmp_path,
        "--repeats",
        "1",
        "--data",
        str(REPO / "data/demo/alpaca_sample.json"),
        "--sharegpt",
        str(REPO / "data/demo/chat_sharegpt.json"),
        "--tokenizer",
        str(SMOLLM2_TOKENIZER),
    )
    for row in record["figures"]["rows"]:
        agree = row["identical_labels"] + row["differ_only_at_the_straddling_boundary_token"] + row["differ_only_in_whitespace_after_turns"]
        assert agree == row["examples"], row
