"""Hub ids for models and tokenizers, resolved through a Hugging Face cache the test builds (no network):
what is cached loads offline and keeps its id; what is missing, unknown or gated is one line saying which and
what to do, and the token from the environment reaches the Hub but never a message."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import datasets
import pytest
import torch
import yaml
from huggingface_hub import constants

from sftlab import hub
from sftlab.artifacts import load_tokenizer
from sftlab.cli import main
from sftlab.errors import SftlabError
from sftlab.model.loading import load_causal_lm
from tests.hub_cache import TINY_CONFIG, cached_repo, commit_of, tiny_model
from tests.test_cli import REPO


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache (HF_HOME = tmp_path/hf), offline."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf"


def test_a_cached_model_and_tokenizer_load_by_id_offline_and_keep_the_id(testdata, hub_cache):
    snapshot = cached_repo(hub_cache, "org/tiny", tiny_model(testdata))
    model = load_causal_lm("org/tiny")
    assert model.name_or_path == "org/tiny"  # what an adapter records as its base, not this machine's path
    reference = load_causal_lm(config=TINY_CONFIG)
    ids = torch.tensor([[1, 200, 3000]])
    torch.testing.assert_close(model(ids).logits, reference(ids).logits)
    assert hub.origin(snapshot) == hub.HubRepo("org/tiny", commit_of("org/tiny@main"))
    assert load_tokenizer("org/tiny").eos_token == "<|im_end|>"


def test_ids_and_paths_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct") and hub.is_hub_id("Qwen/Qwen3-0.6B")
    assert not hub.is_hub_id("data/train.jsonl") and not hub.is_hub_id("/models/llama") and not hub.is_hub_id("model.gguf")
    (tmp_path / "org/name").mkdir(parents=True)
    assert not hub.is_hub_id("org/name")  # an existing folder is read as a folder


def test_a_model_not_in_the_cache_offline_says_how_to_get_it(hub_cache):
    with pytest.raises(SftlabError) as error:
        load_causal_lm("org/missing", revision="v2")
    message = str(error.value)
    assert "model 'org/missing' (revision 'v2') is not in the Hugging Face cache" in message and "HF_HUB_OFFLINE=1" in message
    assert "huggingface-cli download org/missing --revision v2" in message and "\n" not in message
    with pytest.raises(SftlabError, match=r"data.tokenizer: model 'org/missing' is not in the Hugging Face cache"):
        load_tokenizer("org/missing")


class HubStub:
    """A Hub endpoint answering every repository request with `status` and an `X-Error-Code`, recording
    the Authorization headers it got."""

    def __init__(self, status: int, code: str) -> None:
        self.authorization: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.authorization.append(self.headers.get("Authorization"))
                body = b'{"error": "no"}'
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "RepoNotFound", "model 'org/nope' is neither a local file or folder nor a model repository on the Hugging Face Hub"),
        (403, "GatedRepo", "model 'org/nope' is gated on the Hugging Face Hub: accept its conditions at http://127.0.0.1:"),
        (404, "RevisionNotFound", "model 'org/nope': the repository has no such revision"),
    ],
)
def test_unknown_gated_and_revisions_are_one_line_and_the_token_is_sent_never_shown(hub_cache, monkeypatch, caplog, status, code, expected):
    stub = HubStub(status, code)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", stub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_notarealtoken1234")
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(SftlabError) as error:
            load_causal_lm("org/nope")
    finally:
        stub.server.shutdown()
    assert str(error.value).startswith(f"model.causal_lm.source: {expected}"), str(error.value)
    assert "\n" not in str(error.value)
    assert "Bearer hf_notarealtoken1234" in stub.authorization  # the environment's token reached the Hub
    assert "hf_notarealtoken1234" not in str(error.value) + caplog.text


def chat_set(testdata):
    """100 OpenAI-style conversations (oasst) as a Hub data set publishes them: a Parquet shard per split."""

    def fill(folder):
        records = [json.loads(line) for line in (testdata / "data/oasst_en100/en_100_top_thread.messages.jsonl").read_text().splitlines()]
        (folder / "data").mkdir()
        datasets.Dataset.from_list(records[:90]).to_parquet(str(folder / "data/train-00000-of-00001.parquet"))
        datasets.Dataset.from_list(records[90:]).to_parquet(str(folder / "data/test-00000-of-00001.parquet"))

    return fill


def test_fit_generate_and_an_adapter_reload_by_hub_ids_offline(testdata, tmp_path, monkeypatch, capsys):
    """`sftlab fit --model.causal_lm.source org/tiny --data.train_path org/chat --data.split train[:50%]` with
    HF_HOME a cache the test built and HF_HUB_OFFLINE=1; the adapter names its base by id and commit, and
    `sftlab generate` loads the base by id and the adapter through it."""
    hf_home = tmp_path / "hf"
    cached_repo(hf_home, "org/tiny", tiny_model(testdata))
    cached_repo(hf_home, "org/chat", chat_set(testdata), kind="dataset")
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    config["model"]["causal_lm"] = {"source": "org/tiny", "lora": {"r": 4, "alpha": 8}}
    config["data"] = {**config["data"], "format": "auto", "train_path": None, "val_path": None}
    del config["data"]["tokenizer"]  # it follows the model: org/tiny
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(tmp_path / "hub.yaml"), "--trainer.max_steps", "2"]
    command += ["--data.train_path", "org/chat", "--data.split", "train[:50%]", "--trainer.enable_progress_bar", "false"]
    command += ["--trainer.default_root_dir", str(tmp_path / "run"), "--data.cache_dir", str(tmp_path / "cache")]
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"records read\s+45\b", result.stderr)  # half of the 90 records of the train split
    export = tmp_path / "run/lightning_logs/version_0/hf"
    adapter = json.loads((export / "adapter_config.json").read_text())
    commit = commit_of("org/tiny@main")
    assert (adapter["base_model_name_or_path"], adapter["revision"]) == ("org/tiny", commit)
    assert json.loads((export / "sftlab.json").read_text())["base_model"] == {"id": "org/tiny", "revision": commit}

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))  # this process: the same cache, offline
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for model in ("org/tiny", str(export)):
        main(["generate", "--model", model, "--prompt", "Hello!", "--max_new_tokens", "4"])
        (answer,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert answer["answer_tokens"] == 4 and answer["rendered_prompt"].endswith("<|im_start|>assistant\n")
