"""The self-instruct prompt: instructions for the generating model, then a few seed tasks as
numbered `###` blocks, ending where the model should continue with the next task's instruction.

The default text is sftlab's own, with the requirements of the Alpaca recipe; `--prompt_file`
replaces it (`{num_tasks}` in the file is filled in).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from sftlab.data.formats.files import read_json_records, read_text
from sftlab.errors import DataError, SftlabError

DEFAULT_PROMPT = """\
You are helping to build a dataset of diverse tasks for training an AI assistant to follow instructions.
Write {num_tasks} new tasks. Each task has an instruction, an input and an output. Requirements:

1. Use a different verb in every instruction, and vary the kind of task: open-ended writing, classification, \
rewriting, extraction, brainstorming, open and closed questions, reasoning, math, coding, advice.
2. Vary the wording too: some instructions are questions, some are imperatives.
3. An AI language model must be able to do the task with text alone: no images, audio, video or files, \
no browsing, no actions in the world (such as setting reminders or sending messages).
4. Write instructions in English, in one or two sentences.
5. Where a task needs an input, give a realistic and specific one (a real-looking email, paragraph, table, \
list, code snippet or question), up to about 100 words. Where it needs none, write "<noinput>" as the input.
6. Write a good, correct output for the instruction and input, as short as it can be while complete \
(under about 100 words).

List of {num_tasks} tasks:"""


@dataclass(frozen=True)
class SeedTask:
    instruction: str
    input: str
    output: str


def load_seed_tasks(path: Path) -> list[SeedTask]:
    """The self-instruct `seed_tasks.jsonl` format: `instruction`, `instances[0].input/output`."""
    if not path.is_file():
        raise SftlabError(f"--seed_tasks: no such file: {path}")
    tasks = []
    for where, record in read_json_records(path):
        if not isinstance(record, dict) or not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            raise DataError(where, "field 'instruction': expected a non-empty string")
        instances = record.get("instances")
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            raise DataError(where, "field 'instances': expected a list with at least one {input, output} object")
        first = instances[0]
        if not isinstance(first.get("output"), str):
            raise DataError(where, "field 'instances[0].output': expected a string")
        tasks.append(SeedTask(record["instruction"].strip(), str(first.get("input") or "").strip(), first["output"].strip()))
    return tasks


def load_prompt_header(path: str | None, num_tasks: int) -> str:
    text = read_text(Path(path)).rstrip() if path else DEFAULT_PROMPT
    return text.replace("{num_tasks}", str(num_tasks))


@dataclass(frozen=True)
class Prompt:
    """One request's prompt; `shorter()` drops its last example (for context-length errors)."""

    header: str
    examples: tuple[SeedTask, ...]

    @property
    def next_number(self) -> int:
        return len(self.examples) + 1

    @property
    def text(self) -> str:
        blocks = [self.header]
        for number, task in enumerate(self.examples, start=1):
            blocks.append(
                f"###\n{number}. Instruction: {task.instruction}\n{number}. Input:\n{task.input or '<noinput>'}\n"
                f"{number}. Output:\n{task.output}"
            )
        blocks.append(f"###\n{self.next_number}. Instruction:")
        return "\n".join(blocks)

    def shorter(self) -> Prompt | None:
        return replace(self, examples=self.examples[:-1]) if len(self.examples) > 1 else None


def sample_prompt(header: str, seeds: list[SeedTask], count: int, rng: random.Random) -> Prompt:
    return Prompt(header, tuple(rng.sample(seeds, min(count, len(seeds)))))
