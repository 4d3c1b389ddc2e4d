"""An LLM judge behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, ...):
single-answer grading on a 1-10 scale, as MT-bench does.

The `openai` client retries rate limits, 5xx answers and dropped connections with exponential
backoff. A reply without a readable rating is asked again (`rating_retries` times) and then counted
as a failure, never guessed. The API key is read from an environment variable and never logged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from sftlab.errors import SftlabError

SYSTEM = "You are an impartial, demanding judge of answers written by AI assistants."

INSTRUCTIONS = (
    "Rate the quality of the AI assistant's answer{which}. Judge how helpful, relevant, accurate, deep, "
    "creative and detailed it is{reference_note}. Do not let the answer's length sway you. First explain "
    "your assessment in a few sentences, then give a rating from 1 to 10 in exactly this format: "
    '"Rating: [[5]]".'
)

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
    reply: str
    attempts: int
    error: str | None = None


class Judge:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 1024,
        max_retries: int = 5,
        rating_retries: int = 2,
        timeout: float = 120.0,
    ) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "unused", max_retries=max_retries, timeout=timeout)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.rating_retries = rating_retries

    def grade(self, prompt: str) -> Judgment:
        import openai

        reply, attempts = "", 0
        for attempts in range(1, self.rating_retries + 2):
            try:
                response = self.client.chat.completions.create(
                    model=self.model,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                )
            except openai.AuthenticationError as err:
                raise SftlabError(f"judge: the endpoint refused the API key ({err.status_code}); set the environment variable") from None
            except openai.APIError as err:  # retries exhausted: counted, not fatal
                return Judgment(None, reply, attempts, f"{type(err).__name__}: {err}")
            reply = response.choices[0].message.content or ""
            rating = parse_rating(reply)
            if rating is not None:
                return Judgment(rating, reply, attempts)
        return Judgment(None, reply, attempts, "no rating in the judge's reply")
