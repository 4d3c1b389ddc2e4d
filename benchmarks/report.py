"""Where benchmark results go: each script saves `results/<name>.json` (its figures plus a Markdown
section) and rewrites `benchmarks/RESULTS.md` from all saved sections, so RESULTS.md always holds
the figures last measured by the scripts themselves, never numbers typed by hand."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shlex
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
# Section order in RESULTS.md; sections not listed follow in name order.
ORDER = ("sft_throughput", "sft_throughput_smollm2", "scaling", "preprocessing", "rouge_filter")


def machine() -> str:
    """CPU model, cores, vector extensions that decide fp32 vs bf16 speed, library versions."""
    import torch
    import transformers

    model = (
        next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    capability = torch.backends.cpu.get_cpu_capability()
    amx = "AMX-BF16" if torch.cpu.get_capabilities().get("amx_bf16") else "no AMX"
    if torch.cuda.is_available():
        amx += f"; GPU {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return (
        f"{model}, {platform.machine()}, {os.cpu_count()} cores, {capability}, {amx}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def command_line() -> str:
    """The command that ran this script, quoted so that it runs as written."""
    return "python " + shlex.join([os.path.relpath(sys.argv[0], BENCHMARKS.parent)] + sys.argv[1:])


def save(name: str, figures: dict, markdown: str, results_dir: Path = RESULTS) -> Path:
    """Save one benchmark's figures and section; rewrite RESULTS.md beside the results folder."""
    results_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "command": command_line(),
        "machine": machine(),
        "markdown": markdown,
        "figures": figures,
    }
    (results_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return write_results_md(results_dir)


def write_results_md(results_dir: Path = RESULTS) -> Path:
    records = [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))]
    records = [record for record in records if "markdown" in record]
    records.sort(key=lambda r: (ORDER.index(r["name"]) if r["name"] in ORDER else len(ORDER), r["name"]))
    parts = [
        "# Benchmark results\n",
        "Written by the scripts in `benchmarks/` (see README.md there); each section gives the command, "
        "date and machine it was measured with. Ratios are measured within one run.\n",
    ]
    for record in records:
        parts.append(f"{record['markdown'].rstrip()}\n\nMeasured {record['date']} with `{record['command']}` on {record['machine']}.\n")
    target = results_dir.parent / "RESULTS.md"
    staging = target.with_suffix(".md.tmp")
    staging.write_text("\n".join(parts))
    staging.replace(target)
    return target
