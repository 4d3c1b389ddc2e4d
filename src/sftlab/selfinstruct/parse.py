"""Turning a generated continuation into tasks, with the filters of the Alpaca recipe.

The response continues the prompt right after "N. Instruction:", so the first block has no header;
the following blocks are separated by "###" and numbered "K. Instruction: / K. Input: / K. Output:".
Every candidate that is not returned as a task is counted under a reason.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)
MIN_WORDS, MAX_WORDS = 4, 150
# A reply that starts with a numbered one-word label ("4. Instruction:", or a mistyped
# "1. Instructions:") did not continue the prompt's open header: it has its own.
STARTS_WITH_LABEL = re.compile(r"\s*\d+\s*\.\s*[A-Za-z]+\s*:")
FIELDS = re.compile(r"^\s*\d+\s*\.\s*(Instruction|Input|Output)\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Task:
    instruction: str
    input: str
    output: str

    def to_alpaca(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}


def _fields(block: str) -> dict[str, str] | None:
    parts = FIELDS.split(block)
    # parts = [before, name, value, name, value, ...]
    if len(parts) != 7 or [parts[1], parts[3], parts[5]] != ["Instruction", "Input", "Output"] or parts[0].strip():
        return None
    return {"instruction": parts[2].strip(), "input": parts[4].strip(), "output": parts[6].strip()}


def rejection(task: Task) -> str | None:
    """Why `task` fails the filters, or None."""
    words = task.instruction.split()
    if len(words) < MIN_WORDS:
        return "instruction_too_short"
    if len(words) > MAX_WORDS:
        return "instruction_too_long"
    lowered = task.instruction.lower()
    if any(re.search(rf"\b{re.escape(word)}\b", lowered) for word in BLACKLIST):
        return "blacklisted_keyword"
    if lowered.startswith("write a program"):
        return "write_a_program"
    if task.instruction[0] in string.punctuation:
        return "starts_with_punctuation"
    if not task.instruction[0].isascii():
        return "starts_with_non_ascii"
    if not task.output:
        return "empty_output"
    return None


def parse_response(text: str, first_number: int, stopped_on_length: bool) -> tuple[list[Task], Counter]:
    """Tasks from a completion that continues "{first_number}. Instruction:", and counted rejects."""
    reasons: Counter = Counter()
    text = re.sub(r"^\s*###\s*", "", text)
    if not STARTS_WITH_LABEL.match(text):  # a completion continues the prompt's open header
        text = f"{first_number}. Instruction:" + text
    blocks = re.split(r"^\s*###\s*$|###", text, flags=re.MULTILINE)
    blocks = [block for block in blocks if block.strip()]
    if stopped_on_length and blocks:
        blocks.pop()  # the last task was cut off mid-way
        reasons["truncated"] += 1
    tasks = []
    for block in blocks:
        fields = _fields(block)
        if fields is None:
            reasons["malformed"] += 1
            continue
        if fields["input"].strip().lower() in ("<noinput>", "<no input>", "noinput"):
            fields["input"] = ""
        task = Task(**fields)
        reason = rejection(task)
        if reason:
            reasons[reason] += 1
        else:
            tasks.append(task)
    return tasks, reasons
