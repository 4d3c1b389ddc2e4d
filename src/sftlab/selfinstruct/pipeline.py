"""The self-instruct loop: sample seed tasks into prompts, ask the backend, parse and filter the
tasks, keep those novel by ROUGE-L, until the target count is reached.

Durability: every kept task is appended to `<output stem>.accepted.jsonl` and flushed to disk
before it counts. A re-run with the same output reads that log first (its instructions join the
novelty filter) and goes on from there: nothing kept is lost or kept twice. A last line cut short
by a kill was never counted; it is removed (and said). The Alpaca-format JSON is written at the end,
atomically. Each logged task also names its nearest instruction (`most_similar`, seeds included)
and their exact ROUGE-L (`max_similarity`; 0.0 and null when no word is shared).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sftlab.artifacts import write_text_atomic
from sftlab.errors import DataError, SftlabError
from sftlab.selfinstruct.backends import Backend, Completion, Decoding
from sftlab.selfinstruct.parse import Task, parse_response
from sftlab.selfinstruct.prompt import load_prompt_header, load_seed_tasks, sample_prompt
from sftlab.selfinstruct.similarity import NoveltyFilter

log = logging.getLogger(__name__)

STALL_BATCHES = 20  # request batches in a row without a kept task before giving up


@dataclass(frozen=True)
class Settings:
    """What to generate, and from what.

    Args:
        seed_tasks: Seed tasks, in the self-instruct seed_tasks.jsonl format.
        output: The Alpaca-format JSON to write (the log of kept tasks, <stem>.accepted.jsonl, goes beside it).
        num_instructions: How many instructions to keep.
        num_prompt_instructions: Seed tasks shown as examples in each prompt.
        request_batch_size: Prompts sent per round.
        num_tasks: Tasks asked for per prompt.
        similarity_threshold: Keep an instruction only when its ROUGE-L with every seed and kept instruction is at most this.
        seed: Seed for sampling the examples of each prompt.
        prompt_file: Your own prompt text instead of sftlab's ({num_tasks} is filled in).
    """

    seed_tasks: str
    output: str
    num_instructions: int = 100
    num_prompt_instructions: int = 3
    request_batch_size: int = 5
    num_tasks: int = 20
    similarity_threshold: float = 0.7
    seed: int = 42
    prompt_file: str | None = None


@dataclass
class Report:
    kept_before: int = 0
    kept: int = 0
    candidates: int = 0
    requests: int = 0
    request_seconds: float = 0.0
    rejected: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        new = self.kept - self.kept_before
        lines = [
            f"kept {self.kept} instructions ({new} new, {self.kept_before} from the earlier run)",
            f"candidates {self.candidates}, kept/candidates {new / max(self.candidates, 1):.1%}",
            f"requests {self.requests}, {self.request_seconds / max(self.requests, 1):.2f} s per request",
        ]
        lines += [f"  rejected {reason:<26} {count}" for reason, count in self.rejected.most_common()]
        return lines


def accepted_log(output: Path) -> Path:
    return output.with_name(f"{output.stem}.accepted.jsonl")


def read_accepted(path: Path) -> list[dict[str, Any]]:
    """Records of an earlier run; a last line without its newline (a write cut by a kill) is removed."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        log.warning("%s: removing an incomplete last line (%d bytes) left by an interrupted run", path, len(data) - len(complete))
        with path.open("r+b") as file:
            file.truncate(len(complete))
    records = []
    # Split on "\n" only: str.splitlines also splits on U+2028, U+2029 and U+0085, which JSON
    # strings hold raw.
    for number, line in enumerate(complete.decode("utf-8").split("\n")[:-1], start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{path} line {number}", f"invalid JSON in the accepted log: {err.msg}") from None
    return records


class Appender:
    """Appends one JSON line per kept task, on disk (fsync) before the task counts."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


class Collector:
    """Turns completions into kept tasks: parsed, filtered, novel, on disk, then counted."""

    def __init__(self, novelty: NoveltyFilter, appender: Appender, report: Report, target: int) -> None:
        self.novelty, self.appender, self.report, self.target = novelty, appender, report, target

    def take(self, completion: Completion) -> None:
        self.report.requests += 1
        self.report.request_seconds += completion.seconds
        if completion.error:
            self.report.rejected["request_failed"] += 1
            return
        tasks, reasons = parse_response(completion.text, completion.prompt.next_number, completion.stopped_on_length)
        self.report.rejected.update(reasons)
        self.report.candidates += len(tasks) + sum(reasons.values())
        for task in tasks:
            self.keep(task)

    def keep(self, task: Task) -> None:
        if self.report.kept >= self.target:
            self.report.rejected["over_target"] += 1
            return
        verdict = self.novelty.check(task.instruction)
        if not verdict.novel:
            self.report.rejected["too_similar"] += 1
            return
        nearest = {"most_similar": verdict.most_similar, "max_similarity": round(verdict.max_similarity, 4)}
        self.appender.write({**task.to_alpaca(), **nearest, "time": round(time.time(), 3)})
        self.novelty.add(task.instruction)
        self.report.kept += 1


def default_stop(decoding: Decoding, num_tasks: int) -> Decoding:
    """Without stop sequences, stop where the model starts task num_tasks+1."""
    return decoding if decoding.stop else replace(decoding, stop=(f"\n{num_tasks + 1}.", f"{num_tasks + 1}. Instruction"))


def run_self_instruct(settings: Settings, decoding: Decoding, backend: Backend) -> Report:
    output = Path(settings.output)
    seeds = load_seed_tasks(Path(settings.seed_tasks))
    header = load_prompt_header(settings.prompt_file, settings.num_tasks)
    decoding = default_stop(decoding, settings.num_tasks)
    records = read_accepted(accepted_log(output))
    novelty = NoveltyFilter(settings.similarity_threshold)
    for instruction in [seed.instruction for seed in seeds] + [record["instruction"] for record in records]:
        novelty.add(instruction)
    report = Report(kept_before=len(records), kept=len(records))
    rng = random.Random(f"{settings.seed}:{len(records)}")  # a resumed run does not replay the same prompts
    appender = Appender(accepted_log(output))
    collector = Collector(novelty, appender, report, settings.num_instructions)
    stalled = 0
    try:
        with tqdm(
            total=settings.num_instructions,
            initial=min(report.kept, settings.num_instructions),
            desc="kept",
            unit="instruction",
            file=sys.stderr,
        ) as bar:
            while report.kept < settings.num_instructions:
                prompts = [sample_prompt(header, seeds, settings.num_prompt_instructions, rng) for _ in range(settings.request_batch_size)]
                kept_before_batch = report.kept
                for completion in backend.complete(prompts, decoding):
                    collector.take(completion)
                bar.update(report.kept - kept_before_batch)
                bar.set_postfix(requests=report.requests, s_per_request=f"{report.request_seconds / report.requests:.1f}")
                stalled = 0 if report.kept > kept_before_batch else stalled + 1
                if stalled >= STALL_BATCHES:
                    raise SftlabError(
                        f"self-instruct: no new instruction kept in {STALL_BATCHES} request batches "
                        f"(rejections: {dict(report.rejected)}); check the backend's output"
                    )
    finally:
        appender.close()
    kept = read_accepted(accepted_log(output))[: settings.num_instructions]
    write_text_atomic(
        output, json.dumps([{k: r[k] for k in ("instruction", "input", "output")} for r in kept], indent=1, ensure_ascii=False) + "\n"
    )
    return report
