"""The OpenAI-compatible endpoint helper against a real loopback server: failures counted and
classified, a stop naming the URL after failures in a row, a refused key stops at once."""

from __future__ import annotations

import pytest

from sftlab.endpoints import OpenAIEndpoint, RequestFailed
from sftlab.errors import SftlabError


def ask(client):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content


def test_failures_in_a_row_stop_with_the_url_and_a_success_resets_the_count(openai_stub):
    replies = iter([(500, "down"), (500, "down"), (200, "fine"), (500, "down"), (500, "down"), (500, "down")])
    stub = openai_stub(lambda body, number: next(replies))
    endpoint = OpenAIEndpoint("--judge.base_url", stub.url, max_retries=0, max_failures_in_a_row=3)
    first = endpoint.request(ask)
    assert (
        isinstance(first, RequestFailed)
        and first.message.startswith("InternalServerError: ")
        and f"POST {stub.url}/chat/completions" in first.message
    )
    assert isinstance(endpoint.request(ask), RequestFailed) and endpoint.request(ask) == "fine"
    assert isinstance(endpoint.request(ask), RequestFailed) and isinstance(endpoint.request(ask), RequestFailed)
    with pytest.raises(SftlabError, match=rf"^--judge.base_url {stub.url}: 3 requests in a row failed; last: InternalServerError"):
        endpoint.request(ask)


def test_a_404_without_v1_suggests_it(openai_stub):
    stub = openai_stub(lambda body, number: (404, "File Not Found"))
    bare = stub.url.removesuffix("/v1")
    failure = OpenAIEndpoint("--openai.base_url", bare, max_retries=0).request(ask)
    assert isinstance(failure, RequestFailed) and failure.message.startswith("NotFoundError: ")
    assert failure.message.endswith(f"OpenAI-compatible servers answer under /v1: try --openai.base_url {bare}/v1")
    failure = OpenAIEndpoint("--openai.base_url", stub.url, max_retries=0).request(ask)
    assert failure.message.endswith("check the URL and the model name")


def test_context_length_errors_count_only_when_the_caller_says_so(openai_stub):
    stub = openai_stub(lambda body, number: (400, "This model's maximum context length is 512 tokens."))
    endpoint = OpenAIEndpoint("--openai.base_url", stub.url, max_retries=0, max_failures_in_a_row=2)
    for _ in range(3):
        failure = endpoint.request(ask, count_context_length=False)
        assert isinstance(failure, RequestFailed) and failure.context_length
    endpoint.request(ask)
    with pytest.raises(SftlabError, match="2 requests in a row failed"):
        endpoint.request(ask)


def test_a_refused_key_stops_at_once_and_is_never_shown(openai_stub, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-very-secret")
    stub = openai_stub(lambda body, number: (401, "Incorrect API key provided: sk-very-secret"))
    with pytest.raises(SftlabError) as error:
        OpenAIEndpoint("--judge.base_url", stub.url, api_key_env="MY_KEY", max_retries=0).request(ask)
    assert str(error.value) == f"--judge.base_url {stub.url}: the server refused the API key (401); $MY_KEY is set"
    assert len(stub.requests) == 1
