#!/usr/bin/env bash
# The Python packages benchmarks/gpu_check.sh needs on a GPU machine that reaches no package registry, as
# wheels in .wheels/ (git-ignored), fetched here, where PyPI is reachable:
#
#     bash benchmarks/gpu_wheels.sh            # ~1 min, ~25 MB; then carry .wheels with the working tree
#
# The GPU machine's image already has CUDA torch, lightning, accelerate, tokenizers, huggingface_hub, pyarrow,
# pytest; what sftlab needs beyond it comes pinned to the versions of this checkout's virtualenv (the ones
# the CPU tests ran with), for CPython 3.12 on x86-64 Linux: transformers (the image's is older than sftlab's
# lower bound), datasets, jsonargparse, torchdata, peft, TRL, and for the GPU rows Liger-Kernel and
# bitsandbytes. bitsandbytes ships a library per CUDA release (43 MB); only the CUDA 13 ones are kept
# (the image's torch is a CUDA 13 build), which brings it to ~9 MB. datasets 5 needs pyarrow >= 24;
# .wheels/alt/ holds datasets 4.0 and its pins for an image with an older pyarrow (gpu_check.sh chooses).
# flash-attn has no wheel on PyPI (it compiles for about an hour), so it is not here: its rows are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WHEELS=.wheels
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
fetch() {
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$@"
}

rm -rf "$WHEELS" && mkdir -p "$WHEELS/alt"
pinned=()
for package in transformers datasets dill multiprocess fsspec jsonargparse docstring_parser typeshed_client torchdata peft trl lightning pytorch_lightning; do
    pinned+=("$package==$(version "$package")")
done
fetch "$WHEELS" "${pinned[@]}" liger-kernel bitsandbytes
fetch "$WHEELS/alt" datasets==4.0.0 dill==0.3.8 multiprocess==0.70.16 fsspec==2025.3.0

# bitsandbytes: keep the CUDA 13 libraries and the CPU one, drop the others (and their RECORD lines).
wheel=$(ls "$WHEELS"/bitsandbytes-*.whl)
unpacked=$(mktemp -d)
unzip -q "$wheel" -d "$unpacked"
rm -f "$unpacked"/bitsandbytes/libbitsandbytes_cuda1[12]*.so "$unpacked"/bitsandbytes/libbitsandbytes_rocm*.so
sed -i '/libbitsandbytes_cuda1[12]/d; /libbitsandbytes_rocm/d' "$unpacked"/bitsandbytes-*.dist-info/RECORD
rm "$wheel"
(cd "$unpacked" && zip -q -r "$OLDPWD/$wheel" .)
rm -rf "$unpacked"

ls -la "$WHEELS" "$WHEELS/alt"
du -sh "$WHEELS"
