"""The page of `sftlab ui`: a chat with a trained model, optionally side by side with a base model.

Answers are streamed by the same `Generator` as `sftlab generate` and `sftlab chat` (same prompt
rendering, stop handling and answer trimming); the page only turns its chat history into a
`Conversation` and shows the tokens as they come. Gradio (the `ui` extra) serves the page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from transformers import TextIteratorStreamer

from sftlab.data.formats.records import Conversation, Message
from sftlab.inference.generate import Answer, Generator, Sampling
from sftlab.inference.loading import LoadedModel

EXAMPLE = Conversation((Message("system", "{system prompt}"), Message("user", "{message}")), "example")


@dataclass
class ChatModel:
    """A loaded model and how the page names it."""

    name: str
    loaded: LoadedModel


def conversation(history: list[dict[str, Any]], system: str) -> Conversation:
    """The chat so far (Gradio messages: role + content) as a conversation for the renderer."""
    messages = [Message("system", system)] if system.strip() else []
    messages += [Message(turn["role"], message_text(turn["content"])) for turn in history]
    return Conversation(tuple(messages), "ui")


def message_text(content: Any) -> str:
    """Gradio 6 may hand message content back as a list of typed parts; only text is used here."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def stream_answer(model: ChatModel, history: list[dict[str, Any]], system: str, sampling: Sampling) -> Iterator[str | Answer]:
    """The answer so far, after every new piece of text, then the final `Answer` (trimmed at the
    stop text, as `sftlab generate` returns it). Errors in generation are raised here, in the caller."""
    generator = Generator(model.loaded, sampling, batch_size=1)
    streamer = TextIteratorStreamer(model.loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    outcome: dict[str, Answer | BaseException] = {}

    def run() -> None:
        try:
            outcome["answer"] = generator.stream(conversation(history, system), streamer)
        except BaseException as err:  # handed to the page's thread below
            outcome["error"] = err
            streamer.end()  # unblock the reader

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["answer"]


def prompt_format(model: ChatModel) -> str:
    """How the model's prompts are rendered, shown in the page before the first answer."""
    return model.loaded.renderer.prompt_text(EXAMPLE)
