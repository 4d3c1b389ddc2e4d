"""Hub ids for models and tokenizers, resolved through a Hugging Face cache the test builds (no network):
what is cached loads offline and keeps its id; what is missing, unknown or gated is one line saying which and
what to do, and the token from the environment reaches the Hub but never a message."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from huggingface_hub import constants

from sftlab import hub
from sftlab.artifacts import load_tokenizer
from sftlab.errors import SftlabError
from sftlab.model.loading import load_causal_lm
from tests.hub_cache import TINY_CONFIG, cached_repo, commit_of, tiny_model


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
