"""Smoke run of benchmarks/streaming.py at tiny sizes, so it does not rot (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_cli import REPO


def test_streaming_benchmark_runs(shared, tmp_path):
    command = ["benchmarks/streaming.py", "--sizes", "2", "4", "--workers", "0", "1", "--tokens", "20000", "--train-steps", "2"]
    result = subprocess.run(
        [sys.executable, *command, "--results-dir", str(tmp_path / "results")], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "results/streaming.json").read_text())["figures"]
    assert [(row["megabytes"], row["workers"]) for row in figures["rows"]] == [(2, 0), (2, 1), (4, 0), (4, 1)]
    assert all(row["tokens"] >= 20000 and row["tokens_per_s"] > 0 and row["peak_pss_gb"] > 0 for row in figures["rows"])
    assert figures["training"]["tokens_per_s"] > 0
    assert "## Streaming pretraining data" in (tmp_path / "RESULTS.md").read_text()
