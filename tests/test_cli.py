"""The real `sftlab` command: inspect output, shipped configs, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftlab.cli import inspect_parser

REPO = Path(__file__).resolve().parents[1]


def sftlab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "sftlab.cli", *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_inspect_json_gives_input_ids_and_labels(testdata, tmp_path):
    result = sftlab(
        "inspect",
        "--json",
        "--limit",
        "2",
        "--data.template",
        "alpaca",
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.train_path",
        str(testdata / "data/alpaca_en_demo.json"),
        "--data.cache_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2
    assert all(len(r["input_ids"]) == len(r["labels"]) and -100 in r["labels"] for r in rows)
    assert "detected 'alpaca'" in result.stderr


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses_and_inspect_runs_on_it(testdata, tmp_path, config):
    parser = inspect_parser()
    parser.parse_args(["--config", str(config), "--data.tokenizer", "t"])  # keys and types match the signatures
    corpus = ("--data.train_path", str(testdata / "data/wiki_demo.txt")) if config.name == "pretrain_text.yaml" else ()
    result = sftlab(
        "inspect",
        "--config",
        str(config),
        "--limit",
        "1",
        "--data.cache_dir",
        str(tmp_path),
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        *corpus,
    )
    assert result.returncode == 0, result.stderr
    assert "trainable tokens" in result.stdout and "length histogram" in result.stdout


def test_user_errors_are_one_line_without_traceback(testdata, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "wizard", "content": "a"}]}\n')
    result = sftlab(
        "inspect",
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        "--data.train_path",
        str(bad),
        "--data.cache_dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("sftlab: error:")]
    assert error == [
        f"sftlab: error: {bad} line 1: field 'messages[1]': unknown role 'wizard' (expected one of system, user, assistant, tool)"
    ]


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    result = sftlab("inspect", "--data.tokenizer", str(tmp_path / "nope"), "--data.train_path", str(REPO / "data/demo/chat_sharegpt.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.tokenizer: cannot load a tokenizer" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--model.bogus", "1"),
            "Parser key \"model\": Problem with given class_path 'sftlab.model.module.CausalLMModule': Option 'bogus' is not accepted",
        ),
        (("--trainer.bogus", "1"), "unrecognized arguments: --trainer.bogus 1"),
        (("--model.causal_lm.source", "/nonexistent/llama"), "model: no such file or folder: /nonexistent/llama"),
        (("--model.causal_lm.lora", '{"target_modules": ["query_key_value"]}'), "query_key_value"),
        (("--model.causal_lm.lora", '{"quantize_4bit": true}'), "QLoRA"),
    ],
    ids=["unknown-model-key", "unknown-trainer-key", "missing-model", "lora-target", "qlora-on-cpu"],
)
def test_fit_user_errors_are_one_line(testdata, tmp_path, args, expected):
    result = sftlab(
        "fit",
        "--config",
        "configs/tiny.yaml",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.tokenizer",
        str(testdata / "tokenizers/smollm2-135m-instruct"),
        *args,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("sftlab: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


def test_unknown_key_in_a_config_file_is_named(testdata, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text((REPO / "configs/tiny.yaml").read_text().replace("  packing: true", "  packign: true"))
    result = sftlab("fit", "--config", str(config), "--data.tokenizer", str(testdata / "tokenizers/smollm2-135m-instruct"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "packign" in result.stderr.splitlines()[-1]
