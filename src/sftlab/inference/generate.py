"""Batched generation with left padding and the KV cache, stopping at eos or the end-of-turn text
the model was trained to write.

Prompts are sorted by length before batching (less padding) and answers returned in input order.
Left padding keeps every prompt's last token in the last column, so one `generate` call continues
all of them; transformers derives position ids from the attention mask, so a padded prompt gets the
same tokens as alone (tested against one-by-one generation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers.generation.streamers import BaseStreamer

from sftlab.data.formats.records import Conversation
from sftlab.inference.loading import LoadedModel
from sftlab.model.moe import without_router_loss


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; temperature 0 means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0

    def generate_kwargs(self) -> dict[str, object]:
        if self.temperature <= 0:
            settings: dict[str, object] = {"do_sample": False}
        else:
            settings = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        return {**settings, "max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty}


@dataclass(frozen=True)
class Answer:
    rendered_prompt: str  # the prompt as the model saw it (template applied)
    answer: str
    prompt_tokens: int
    answer_tokens: int
    seconds: float
    finish_reason: str  # "stop" (eos / end of turn) or "length"


def batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Generator:
    def __init__(self, loaded: LoadedModel, sampling: Sampling = Sampling(), batch_size: int = 8) -> None:
        self.loaded = loaded
        self.sampling = sampling
        self.batch_size = batch_size
        self.stop_text = loaded.renderer.stop_text
        tokenizer = loaded.tokenizer
        # Stop ids: eos, and the end-of-turn text when it is one token (else it stops as a string).
        stop_ids = tokenizer(self.stop_text, add_special_tokens=False)["input_ids"]
        self.eos_ids = sorted({tokenizer.eos_token_id, *(stop_ids if len(stop_ids) == 1 else [])} - {None})
        self.stop_strings = [self.stop_text] if len(stop_ids) > 1 else None

    @property
    def device(self) -> torch.device:
        return next(self.loaded.model.parameters()).device

    def prompt(self, conversation: Conversation) -> str:
        return self.loaded.renderer.prompt_text(conversation)

    def _generate(self, prompt_ids: list[list[int]], streamer: BaseStreamer | None = None) -> torch.Tensor:
        """The new tokens for already tokenized prompts (left-padded into one batch)."""
        tokenizer = self.loaded.tokenizer
        inputs = tokenizer.pad({"input_ids": prompt_ids}, return_tensors="pt").to(self.device)
        extra = {"stop_strings": self.stop_strings, "tokenizer": tokenizer} if self.stop_strings else {}
        with torch.no_grad():
            output = self.loaded.model.generate(
                **inputs,
                **self.sampling.generate_kwargs(),
                eos_token_id=self.eos_ids,
                pad_token_id=tokenizer.pad_token_id,
                streamer=streamer,
                **extra,
                **without_router_loss(self.loaded.model),
            )
        return output[:, inputs["input_ids"].shape[1] :]

    def _decode(self, new_tokens: torch.Tensor) -> tuple[str, int, str]:
        """The answer text (without padding, eos and end-of-turn), its token count, finish reason."""
        tokenizer = self.loaded.tokenizer
        ids = new_tokens.tolist()
        stop_at = next((i for i, token in enumerate(ids) if token in self.eos_ids), None)
        stopped = stop_at is not None
        if stopped:
            ids = ids[: stop_at + 1]
        else:  # a stop string or the length limit ended it; generate pads what follows
            while ids and ids[-1] == tokenizer.pad_token_id:
                ids.pop()
        text = tokenizer.decode(ids, skip_special_tokens=False)
        if self.stop_text and self.stop_text in text:
            text, stopped = text[: text.index(self.stop_text)], True
        for token in tokenizer.all_special_tokens:  # eos/pad after the answer, never inside it
            text = text.replace(token, "") if token else text
        return text.strip(), len(ids), "stop" if stopped else "length"

    def answer(self, conversations: Sequence[Conversation], progress: Callable[[int], None] | None = None) -> list[Answer]:
        prompts = [self.prompt(conversation) for conversation in conversations]
        prompt_ids = self.loaded.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompt_ids[i]))
        answers: dict[int, Answer] = {}
        for batch in batches(order, self.batch_size):
            started = time.perf_counter()
            new_tokens = self._generate([prompt_ids[i] for i in batch])
            seconds = (time.perf_counter() - started) / len(batch)
            for row, index in enumerate(batch):
                text, count, reason = self._decode(new_tokens[row])
                answers[index] = Answer(prompts[index], text, len(prompt_ids[index]), count, seconds, reason)
            if progress:
                progress(len(batch))
        return [answers[i] for i in range(len(prompts))]

    def stream(self, conversation: Conversation, streamer: BaseStreamer) -> Answer:
        """One answer, its tokens handed to `streamer` as they come (for `sftlab chat`)."""
        prompt = self.prompt(conversation)
        prompt_ids = self.loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        started = time.perf_counter()
        text, count, reason = self._decode(self._generate([prompt_ids], streamer)[0])
        return Answer(prompt, text, len(prompt_ids), count, time.perf_counter() - started, reason)
