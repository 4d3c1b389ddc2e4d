"""OpenAI-compatible endpoints (OpenAI, vLLM, llama.cpp's server, TGI, ...): the one way the LLM
judge and self-instruct talk to a server.

- The API key comes from an environment variable; it is never logged nor put in a message.
- The `openai` client retries rate limits (429), 5xx, timeouts and dropped connections with
  exponential backoff (`max_retries`). A request that still fails comes back as a `RequestFailed`
  for the caller to count; a refused key (401/403) stops the run at once, since no later request
  can succeed.
- `max_failures_in_a_row` failed requests in a row stop the run with one line naming the URL: a
  wrong URL or a dead server must never look like a run whose answers merely happened to fail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlparse

from sftlab.errors import SftlabError

if TYPE_CHECKING:
    from openai import APIError, OpenAI

T = TypeVar("T")
R = TypeVar("R")

# How servers say a prompt is too long: OpenAI and vLLM ("maximum context length"), llama.cpp
# ("exceeds the available context size"), others ("context_length_exceeded", "reduce your prompt").
CONTEXT_LENGTH_PHRASES = ("context length", "context_length", "maximum context", "context size", "reduce your prompt")


def in_parallel(function: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    """`[function(item) for item in items]` in `workers` threads. On an error or Ctrl-C, requests not
    yet sent are cancelled and nothing waits for those in flight, so the run stops at once."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        return list(pool.map(function, items))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class RequestFailed:
    """A request that got no usable answer, after the client's own retries."""

    message: str  # one line: the error, the URL requested, and a hint where there is one
    context_length: bool = False  # the prompt was too long for the model: a shorter one may pass


class OpenAIEndpoint:
    """A client for one endpoint, shared by the threads that send requests to it.

    `url_flag` is the option that set `base_url` (e.g. `--judge.base_url`), so that errors say
    what to change.
    """

    def __init__(
        self,
        url_flag: str,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        max_retries: int = 5,
        timeout: float = 120.0,
        max_failures_in_a_row: int = 10,
    ) -> None:
        from openai import OpenAI

        self.url_flag, self.base_url, self.api_key_env = url_flag, base_url, api_key_env
        self.key_is_set = bool(os.environ.get(api_key_env))
        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "unused", max_retries=max_retries, timeout=timeout)
        self.max_failures_in_a_row = max_failures_in_a_row
        self.failures_in_a_row = 0
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        """How errors name this endpoint: the option and its value."""
        return f"{self.url_flag} {self.base_url}"

    def request(self, send: Callable[[OpenAI], T], count_context_length: bool = True) -> T | RequestFailed:
        """`send(client)`'s result, or why it failed. A failure counts towards the stop after
        `max_failures_in_a_row`, except a context-length error when the caller will shorten the
        prompt (`count_context_length=False`): the server answered, and sensibly."""
        import openai

        try:
            result = send(self.client)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            state = "is set" if self.key_is_set else "is not set"
            raise SftlabError(f"{self.name}: the server refused the API key ({err.status_code}); ${self.api_key_env} {state}") from None
        except openai.APIError as err:
            failure = RequestFailed(self.describe(err), any(phrase in str(err).lower() for phrase in CONTEXT_LENGTH_PHRASES))
            if count_context_length or not failure.context_length:
                self._count(failure)
            return failure
        with self.lock:
            self.failures_in_a_row = 0
        return result

    def _count(self, failure: RequestFailed) -> None:
        """Count a failed request; raise once `max_failures_in_a_row` failed in a row."""
        with self.lock:
            self.failures_in_a_row += 1
            failures = self.failures_in_a_row
        if failures >= self.max_failures_in_a_row:
            raise SftlabError(f"{self.name}: {failures} requests in a row failed; last: {failure.message}")

    def describe(self, error: APIError) -> str:
        """One line: the error class, the server's message (shortened) and the URL requested."""
        import openai

        text = " ".join(str(error).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        where = f" (POST {error.request.url})"
        hint = ""
        if isinstance(error, openai.NotFoundError):
            path = urlparse(self.base_url).path.rstrip("/")
            hint = (
                f"; OpenAI-compatible servers answer under /v1: try {self.url_flag} {self.base_url.rstrip('/')}/v1"
                if not path.endswith("/v1")
                else "; check the URL and the model name"
            )
        return f"{type(error).__name__}: {text}{where}{hint}"
