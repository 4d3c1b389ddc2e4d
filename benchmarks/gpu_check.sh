#!/usr/bin/env bash
# The GPU check in one call of under 10 minutes on one H100/H200: install the carried wheels, run the gpu
# test tier, then the GPU throughput rows (sftlab vs. TRL with and without Liger, on SmolLM2-135M's shape and
# a ~0.5B Llama built from config), leaving logs and results under $OUT.
#
#   here, once (PyPI reachable):      bash benchmarks/gpu_wheels.sh       # .wheels/, git-ignored, ~28 MB
#   on the GPU machine (no network):  bash benchmarks/gpu_check.sh        # carry .wheels; $OUT gets the logs
#   anywhere, to check the plan:      bash benchmarks/gpu_check.sh --dry-run
#
# What comes back: gpu_check.log (versions, what installed, timings), gpu_tier.log, bench_<model>.log, and
# results/gpu_throughput_<model>.json + RESULTS.md. To publish: copy the two JSON files into
# benchmarks/results/ and run `python -c "import sys; sys.path.insert(0, 'benchmarks'); import report;
# report.write_results_md()"`, which rewrites benchmarks/RESULTS.md with them.
#
# Time: everything shares GPU_CHECK_BUDGET seconds (default 540); each part gets what is left, benchmark rows
# that would start past it are listed as not run, and results are saved after every row. --dry-run (no GPU
# needed) checks that the tier collects, that every row name exists, and prints the plan.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT=${OUT:-$PWD/gpu_check_out}
BUDGET=${GPU_CHECK_BUDGET:-540}
PY=${PYTHON:-python3}
STEPS=${GPU_CHECK_STEPS:-20}
mkdir -p "$OUT/results"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
log() { echo "[gpu_check +$SECONDS s] $*" | tee -a "$OUT/gpu_check.log"; }
left() { echo $((BUDGET - SECONDS)); }

# 1. Packages: the carried wheels into a private folder ahead of the image's own packages.
SITE=/tmp/sftlab-gpu-site
if [[ -d .wheels && $DRY == 0 ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .wheels/*.whl 2>&1 | tail -3 | tee -a "$OUT/gpu_check.log"
    if ! PYTHONPATH=$SITE "$PY" -c "import pyarrow, sys; sys.exit(int(pyarrow.__version__.split('.')[0]) < 24)"; then
        log "pyarrow < 24 here: datasets 4.0 instead of 5"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .wheels/alt/*.whl 2>&1 | tail -3 | tee -a "$OUT/gpu_check.log"
    fi
    export PYTHONPATH=$SITE:$PWD/src:$PWD
else
    export PYTHONPATH=$PWD/src:$PWD
    [[ $DRY == 0 ]] && log "no .wheels/ (run benchmarks/gpu_wheels.sh where PyPI is reachable): using the installed packages"
fi
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/gpu_check.log"
import importlib, importlib.util
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")
for name in ("transformers", "lightning", "datasets", "peft", "trl", "jsonargparse", "torchdata", "liger_kernel", "bitsandbytes", "flash_attn"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as error:  # a package that does not import here: its tests and rows are skipped
        print(f"  {name}: not usable ({type(error).__name__}: {str(error)[:120]})")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/gpu_check.log"

# 2. The gpu test tier.
if [[ $DRY == 1 ]]; then
    "$PY" -m pytest -q -n 0 -p no:cacheprovider --collect-only -m gpu tests/test_gpu.py tests/architectures/test_cuda.py 2>&1 | tail -3 | tee -a "$OUT/gpu_check.log"
else
    log "gpu tier"
    tier=$(($(left) - 300))
    tier=$((tier > 240 ? 240 : tier < 60 ? 60 : tier))
    timeout "$tier" "$PY" -m pytest -q -rs -n 0 -p no:cacheprovider -m gpu tests/test_gpu.py tests/architectures/test_cuda.py 2>&1 | tee "$OUT/gpu_tier.log" | tail -15
fi

# 3. Throughput rows: the most telling first (rows past the budget are listed as not run).
has() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }
SMOLLM2_RUNS="recipe_bf16 trl_bf16 trl_packing_bf16 sftlab_packed"
has liger_kernel && SMOLLM2_RUNS+=" trl_bf16_liger trl_packing_bf16_liger sftlab_packed_liger"
SMOLLM2_RUNS+=" sftlab_packed_compile sftlab_packed_fsdp2"
has flash_attn && SMOLLM2_RUNS+=" sftlab_packed_fa2"
has bitsandbytes && SMOLLM2_RUNS+=" sftlab_packed_qlora"
LARGE_RUNS="trl_bf16 trl_packing_bf16 sftlab_packed"
has liger_kernel && LARGE_RUNS+=" trl_bf16_liger sftlab_packed_liger"
LARGE_RUNS+=" sftlab_packed_compile"
bench() {  # model, runs, seconds it may start runs for
    "$PY" benchmarks/sft_throughput.py --device cuda --model "$1" --steps "$STEPS" --batch-size 8 --max-length 512 --runs $2 \
        --name "gpu_throughput_${1%-config}" --results-dir "$OUT/results" --deadline "$3" \
        --note "GPU rows from benchmarks/gpu_check.sh: random weights of the model's shape (throughput, not quality)."
}
if [[ $DRY == 1 ]]; then
    "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); import sft_throughput as s; names = sys.argv[1:]; unknown = set(names) - set(s.RUNNERS); print('rows:', ' '.join(names)); sys.exit(f'unknown rows: {unknown}' if unknown else 0)" \
        $SMOLLM2_RUNS $LARGE_RUNS sftlab_packed_fa2 sftlab_packed_qlora trl_packing_bf16_liger 2>&1 | tee -a "$OUT/gpu_check.log"
    log "dry run: plan checked (budget ${BUDGET} s, ${STEPS} steps per row); nothing trained"
    exit 0
fi
export -f bench
export PY STEPS OUT
log "smollm2-config rows: $SMOLLM2_RUNS"
timeout $(($(left) - 20)) bash -c "bench smollm2-config '$SMOLLM2_RUNS' $(($(left) - 150))" > "$OUT/bench_smollm2.log" 2>&1
tail -25 "$OUT/bench_smollm2.log"
log "llama-0.5b-config rows: $LARGE_RUNS"
timeout $(($(left) - 10)) bash -c "bench llama-0.5b-config '$LARGE_RUNS' $(($(left) - 60))" > "$OUT/bench_0.5b.log" 2>&1
tail -25 "$OUT/bench_0.5b.log"
log "done"
