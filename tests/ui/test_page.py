"""`sftlab ui` without a browser: the send handler, start-up errors (missing extra, port taken), the login."""

from __future__ import annotations

import http.cookiejar
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
import torch

pytest.importorskip("gradio", reason="the ui extra (gradio) is not installed")

from sftlab.errors import SftlabError
from sftlab.inference.generate import Sampling
from sftlab.inference.loading import load_for_inference
from sftlab.ui import cli as ui_cli
from sftlab.ui.app import ChatModel, conversation
from sftlab.ui.page import build_page, responder


@pytest.fixture(scope="module")
def tiny_model(tiny_lora_run) -> ChatModel:
    return ChatModel("tiny", load_for_inference(str(tiny_lora_run / "checkpoints/last.ckpt")))


def _run(respond, text, history=(), base_history=(), both=False, max_new_tokens=12):
    """All page updates of one send; sampling at temperature 1, since the tiny random model's
    greedy answer is only newlines."""
    torch.manual_seed(0)
    return list(respond(text, list(history), list(base_history), "", 1.0, 1.0, max_new_tokens, both))


def test_the_handler_streams_and_keeps_history(tiny_model):
    updates = _run(responder(tiny_model, None, Sampling()), "Hello there")
    chats = [update[1] for update in updates]
    statuses = [update[3] for update in updates]
    assert "generating" in statuses[0] and "generating" not in statuses[-1]
    assert "tiny: " in statuses[-1] and " tokens in " in statuses[-1]
    assert chats[0] == [{"role": "user", "content": "Hello there"}]
    partial = [chat[-1]["content"] for chat in chats[1:]]
    assert len(partial) >= 3 and partial[-1]  # several partial answers, then the final one
    final_prompt = updates[-1][4]
    assert final_prompt.endswith(tiny_model.loaded.renderer.prompt_text(conversation(chats[0], "")))
    second = _run(responder(tiny_model, None, Sampling()), "And then?", history=chats[-1])
    assert "Hello there" in second[-1][4] and partial[-1].strip()[:5] in second[-1][4]  # the second prompt sees the first turn
    assert [turn["role"] for turn in second[-1][1]] == ["user", "assistant", "user", "assistant"]


def test_side_by_side_answers_with_both_models(tiny_model):
    updates = _run(responder(tiny_model, tiny_model, Sampling()), "Hi", both=True)
    chat, base_chat = updates[-1][1], updates[-1][2]
    assert [t["role"] for t in chat] == [t["role"] for t in base_chat] == ["user", "assistant"]
    assert chat[-1]["content"].strip() and base_chat[-1]["content"].strip()


def test_a_generation_failure_is_shown_and_the_message_kept(tiny_model, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(tiny_model.loaded.model, "generate", fail)
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    text, chat, _, status, _ = _run(responder(tiny_model, None, Sampling()), "Hello", history=history)[-1]
    assert text == "Hello" and chat == history  # the message is back in the box, the chat as before
    assert "Generation failed" in status and "RuntimeError: out of memory (simulated)" in status


def test_missing_extra_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    monkeypatch.delitem(sys.modules, "sftlab.ui.page", raising=False)
    with pytest.raises(SftlabError, match=r"pip install 'sftlab\[ui\]'"):
        ui_cli.ui_command(["--model", "whatever"])


def test_a_taken_port_is_a_clear_error_before_any_model_loads(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(ui_cli, "load_model", lambda config: pytest.fail("loaded a model before checking the port"))
        with pytest.raises(SftlabError, match=f"port {port} on 127.0.0.1 is taken"):
            ui_cli.ui_command(["--model", "whatever", "--port", str(port)])


def _request(opener, url: str, form: dict | None = None) -> int:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with opener.open(url, data=data) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_page_asks_for_the_login_it_was_given(tiny_model):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page = build_page(tiny_model, None, Sampling())
    ui_cli.launch(page, "127.0.0.1", port, [("alice", "s3cret")], block=False)
    try:
        url = f"http://127.0.0.1:{port}"
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        assert _request(browser, f"{url}/config") == 401
        assert _request(browser, f"{url}/login", {"username": "alice", "password": "wrong"}) == 400
        assert _request(browser, f"{url}/config") == 401
        assert _request(browser, f"{url}/login", {"username": "alice", "password": "s3cret"}) == 200
        assert _request(browser, f"{url}/config") == 200
    finally:
        page.close()
