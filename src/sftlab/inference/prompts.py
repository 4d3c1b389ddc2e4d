"""Prompts for generation: `--prompt` texts, a prompts file (.txt: one per line; .jsonl/.json:
records with a `prompt` field), or a dataset in any training format (each conversation up to its
last assistant message is the prompt; that message is kept as the reference)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftlab.data.formats import containers, readers
from sftlab.data.formats.base import ConversationFormat
from sftlab.data.formats.files import read_json_records, read_text
from sftlab.data.formats.records import Conversation, Message
from sftlab.data.formats.splits import data_files
from sftlab.errors import DataError, SftlabError


@dataclass(frozen=True)
class PromptItem:
    conversation: Conversation  # ends with the turn to answer
    reference: str | None = None


def user_prompt(text: str, system: str | None, source: str) -> PromptItem:
    messages = ((Message("system", system),) if system else ()) + (Message("user", text),)
    return PromptItem(Conversation(messages, source))


def read_prompts_file(path: Path, system: str | None = None) -> list[PromptItem]:
    if not path.is_file():
        raise SftlabError(f"--prompts: no such file: {path}")
    if path.suffix == ".txt":
        items = [
            user_prompt(line.strip(), system, f"{path} line {number}")
            for number, line in enumerate(read_text(path).splitlines(), start=1)
            if line.strip()
        ]
    else:
        items = []
        for where, record in read_json_records(path):
            prompt = record.get("prompt") if isinstance(record, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise DataError(where, "field 'prompt': expected a non-empty string")
            items.append(user_prompt(prompt, system, where))
    if not items:
        raise SftlabError(f"--prompts: {path} holds no prompts")
    return items


def read_dataset_prompts(path: str, fmt: readers.FormatName = "auto", split: str = "train") -> list[PromptItem]:
    """Each conversation of a data set (any form a training source takes: a file, folder, glob or Hub id) up
    to its last answer, which is kept as the reference."""
    files = data_files(path, split, key="--data")
    detected = readers.resolve_format(list(files.files), fmt)
    if not isinstance(detected, ConversationFormat):
        raise SftlabError(f"--data: {path} is raw text; generation needs conversations (alpaca, sharegpt, messages, prompt_completion)")
    items = []
    for file, start, stop in files.rows():
        for where, record in containers.records(file, start, stop):
            conversation = readers.read_record(record, where, detected)
            last = conversation.assistant_indices()[-1] if conversation.assistant_indices() else len(conversation.messages)
            reference = conversation.messages[last].content if last < len(conversation.messages) else None
            items.append(PromptItem(Conversation(conversation.messages[:last], where, conversation.tools), reference))
    if not items:
        raise SftlabError(f"--data: {path} holds no conversations")
    return items
