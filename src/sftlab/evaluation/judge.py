"""An LLM judge behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, ...):
single-answer grading on a 1-10 scale, as MT-bench does.

Requests go through `sftlab.endpoints` (key from an environment variable and never logged; rate
limits, 5xx and dropped connections retried; a stop naming the URL after failures in a row). A reply
without a readable rating is followed up in the same conversation, asking for the rating alone
(`rating_retries` times): a new request, so a deterministic server (temperature 0) answers it
differently, where asking the same question again would get the same reply. Then it is counted as
a failure, never guessed. The `Judge` signature is the `--judge.*` options of `sftlab eval mtbench`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from sftlab.endpoints import OpenAIEndpoint, RequestFailed

if TYPE_CHECKING:
    from openai import OpenAI

SYSTEM = "You are an impartial, demanding judge of answers written by AI assistants."

INSTRUCTIONS = (
    "Rate the quality of the AI assistant's answer{which}. Judge how helpful, relevant, accurate, deep, "
    "creative and detailed it is{reference_note}. Do not let the answer's length sway you. First explain "
    "your assessment in a few sentences, then give a rating from 1 to 10 in exactly this format: "
    '"Rating: [[5]]".'
)

FOLLOW_UP = 'Your reply has no rating in the required format. Reply with the rating only, exactly like this: "Rating: [[5]]".'

RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
LOOSE_RATING = re.compile(r"[Rr]ating:?\s*\[?(\d+(?:\.\d+)?)\]?")


def judge_prompt(questions: list[str], answers: list[str], references: list[str] | None = None) -> str:
    """The grading request for the last of `answers` (earlier turns shown as context)."""
    turn = len(answers)
    which = (
        " to the user's question below"
        if turn == 1
        else f" to the user's question number {turn} in the conversation below (and only that answer)"
    )
    reference = references[turn - 1] if references and len(references) >= turn else None
    note = "; a reference answer is given: an answer that contradicts it on facts or results is wrong" if reference else ""
    parts = [INSTRUCTIONS.format(which=which, reference_note=note), ""]
    for number, (question, answer) in enumerate(zip(questions, answers), start=1):
        parts += [f"[User question {number}]", question, ""]
        if number == turn and reference:
            parts += [f"[Reference answer {number}]", reference, ""]
        parts += [f"[Assistant answer {number}]", answer, ""]
    return "\n".join(parts).rstrip() + "\n"


def parse_rating(reply: str) -> float | None:
    """The 1-10 rating in the judge's reply ("[[7]]", or "Rating: 7"), or None."""
    for pattern in (RATING, LOOSE_RATING):
        found = pattern.findall(reply)
        if found:
            value = float(found[-1])
            return value if 1 <= value <= 10 else None
    return None


@dataclass
class Judgment:
    rating: float | None
    reply: str  # the judge's replies, follow-ups included, one after the other
    attempts: int  # requests sent for this answer
    error: str | None = None


class Judge:
    """An LLM judge at an OpenAI-compatible endpoint.

    Args:
        base_url: The endpoint, e.g. http://host:8000/v1.
        model: The judge's model name at that endpoint.
        api_key_env: The environment variable holding the API key (never logged).
        concurrency: Grading requests in flight.
        rating_retries: Follow-ups asking for the rating when a reply has none.
        max_retries: Retries on rate limits, 5xx and dropped connections (exponential backoff).
        max_failures_in_a_row: Failed requests in a row that stop the run (a wrong URL or a dead server).
        timeout: Seconds per request.
        temperature: The judge's sampling temperature.
        max_tokens: Tokens per reply.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "gpt-4o",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        rating_retries: int = 2,
        max_retries: int = 5,
        max_failures_in_a_row: int = 10,
        timeout: float = 120.0,
        temperature: float = 0.0,
        max_tokens: int = 1024,
    ) -> None:
        self.endpoint = OpenAIEndpoint("--judge.base_url", base_url, api_key_env, max_retries, timeout, max_failures_in_a_row)
        self.model, self.concurrency, self.rating_retries = model, concurrency, rating_retries
        self.temperature, self.max_tokens = temperature, max_tokens

    def _send(self, messages: list[dict[str, str]], client: OpenAI) -> str:
        response = client.chat.completions.create(
            model=self.model, temperature=self.temperature, max_tokens=self.max_tokens, messages=messages
        )
        return response.choices[0].message.content or ""

    def grade(self, prompt: str) -> Judgment:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        replies: list[str] = []
        for attempt in range(1, self.rating_retries + 2):
            reply = self.endpoint.request(partial(self._send, list(messages)))
            if isinstance(reply, RequestFailed):
                return Judgment(None, "\n\n".join(replies), attempt, reply.message)
            replies.append(reply)
            rating = parse_rating(reply)
            if rating is not None:
                return Judgment(rating, "\n\n".join(replies), attempt)
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": FOLLOW_UP}]
        return Judgment(None, "\n\n".join(replies), self.rating_retries + 1, "no rating in the judge's reply")
