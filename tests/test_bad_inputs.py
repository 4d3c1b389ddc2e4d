"""The bad-input corpus (tests/data/bad/cases.yaml): every case through the real `sftlab` entry point
ends with exit status 2 and exactly one line `sftlab: error: ...` naming the file, record and field
where there is one, and no traceback; valid-but-unusual input (a BOM) succeeds."""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

import pytest
import yaml

from sftlab.cli import main
from tests.test_cli import REPO

BAD = REPO / "tests/data/bad"
CASES = yaml.safe_load((BAD / "cases.yaml").read_text())


def _setup(name: str | None, tmp_path: Path, testdata: Path, monkeypatch, openai_stub) -> dict[str, str]:
    extra: dict[str, str] = {}
    if name == "bare_tokenizer":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(testdata / "tokenizers/smollm2-135m-instruct")
        tokenizer.pad_token = tokenizer.eos_token = None
        tokenizer.save_pretrained(tmp_path / "bare_tokenizer")
    elif name == "typo_config":
        (tmp_path / "typo.yaml").write_text((REPO / "configs/tiny.yaml").read_text().replace("  packing: true", "  packign: true"))
    elif name == "full_disk":
        import torch

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run/checkpoints"))

        monkeypatch.setattr(torch, "save", no_space)
    elif name == "garbage_endpoint":
        extra["stub"] = openai_stub(lambda body, number: (200, "lorem ipsum dolor sit amet")).url
    elif name == "not_found_endpoint":  # a server's answer to a base URL without /v1
        extra["stub"] = openai_stub(lambda body, number: (404, "File Not Found")).url.removesuffix("/v1")
    return extra


def _argv(case: dict, values: dict[str, str]) -> list[str]:
    args = [str(arg).format(**values) for arg in case["args"]]
    command = case["command"]
    base = {
        "inspect": ["inspect", "--data.tokenizer", values["tok"], "--data.cache_dir", f"{values['tmp']}/cache"],
        "fit": [
            "fit",
            "--config",
            "configs/tiny.yaml",
            "--data.tokenizer",
            values["tok"],
            "--trainer.default_root_dir",
            f"{values['tmp']}/run",
            "--data.cache_dir",
            f"{values['tmp']}/cache",
            "--trainer.max_steps",
            "1",
            "--trainer.enable_progress_bar",
            "false",
        ],
        "generate": ["generate", "--model", values["gguf"]],
        "export": ["export"],
        "self-instruct": ["self-instruct", "--output", f"{values['tmp']}/out.json", "--request_batch_size", "1", "--workers", "1"],
        "eval": [
            "eval",
            "mtbench",
            "--model",
            values["gguf"],
            "--limit",
            "1",
            "--max_new_tokens",
            "2",
            "--output",
            f"{values['tmp']}/mtbench",
        ],
    }[command]
    if command == "fit" and args[:1] == ["--config"]:
        base = base[:1] + base[3:]  # the case's own config replaces tiny.yaml
    return base + args


def _log_to_current_stderr() -> None:
    """Libraries (Lightning, datasets) attach stream handlers at import, bound to the sys.stderr of
    that moment; here each case runs `main` in one process under a fresh capture, so point them at it."""
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in logging.root.manager.loggerDict]
    for logger in loggers:
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stderr  # not setStream: it flushes the old, closed stream
                if "flush" in vars(handler):  # transformers binds its handler's flush to the stderr of its import
                    handler.flush = sys.stderr.flush


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 30 and len({case["name"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_bad_input(case, testdata, smollm2_gguf, tmp_path, monkeypatch, capsys, openai_stub):
    monkeypatch.chdir(REPO)
    values = {
        "bad": str(BAD),
        "tok": str(testdata / "tokenizers/smollm2-135m-instruct"),
        "testdata": str(testdata),
        "gguf": str(smollm2_gguf),
        "tmp": str(tmp_path),
        "stub": "",
    }
    values.update(_setup(case.get("setup"), tmp_path, testdata, monkeypatch, openai_stub))
    if "mkdir" in case:
        Path(case["mkdir"].format(**values)).mkdir(parents=True)
    argv = _argv(case, values)
    _log_to_current_stderr()
    if case.get("ok"):
        main(argv)
        return
    with pytest.raises(SystemExit) as stop:
        main(argv)
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("sftlab: error:")]
    assert stop.value.code == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert len(errors) == 1 and case["error"] in errors[0], f"{errors} / expected {case['error']!r}"
    if case.get("before_data"):  # a setting that cannot work is refused before any data is read
        assert "data report" not in stderr and not (tmp_path / "cache").exists(), stderr[-2000:]
