"""Smoke runs of the benchmark scripts, so they do not rot (tiny sizes; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_cli import REPO


def test_rouge_filter_benchmark_runs_and_agrees(shared, tmp_path):
    output = tmp_path / "rouge.json"
    result = subprocess.run([sys.executable, "benchmarks/rouge_filter.py", "--sizes", "150", "--workers", "1",
                             "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(output.read_text())["rows"][0]
    assert row["candidates"] == 150 and row["same_kept_set"] and row["kept"] > 0
