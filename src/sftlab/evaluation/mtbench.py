"""MT-bench: 80 two-turn questions in 8 categories; the second turn sees the model's first answer.
Answers are generated in batches (all first turns, then all second turns), then optionally graded
one answer at a time by an LLM judge and summarised per category.

The questions (FastChat's `question.jsonl`, Apache-2.0, `LICENSE.mt_bench`) ship with sftlab.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sftlab.data.formats.files import read_json_records
from sftlab.data.formats.records import Conversation, Message
from sftlab.endpoints import in_parallel
from sftlab.errors import DataError, SftlabError
from sftlab.evaluation.judge import Judge, judge_prompt
from sftlab.inference.generate import Generator

PACKAGED_QUESTIONS = "mt_bench_questions.jsonl"


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: tuple[str, ...]
    references: tuple[str, ...] = ()


def load_questions(path: Path | None = None) -> list[Question]:
    path = path or Path(str(resources.files("sftlab.evaluation") / PACKAGED_QUESTIONS))
    questions = []
    for where, record in read_json_records(path):
        turns = record.get("turns") if isinstance(record, dict) else None
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise DataError(where, "field 'turns': expected a list of non-empty strings")
        questions.append(
            Question(
                record.get("question_id", len(questions)),
                str(record.get("category", "")),
                tuple(turns),
                tuple(record.get("reference") or ()),
            )
        )
    return questions


def answer_questions(
    generator: Generator,
    questions: list[Question],
    model_name: str,
    system: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per question with the model's answer to every turn, each turn seeing the earlier answers."""
    histories: list[list[Message]] = [[Message("system", system)] if system else [] for _ in questions]
    answers: list[list[Any]] = [[] for _ in questions]
    for turn in range(max(len(q.turns) for q in questions)):
        asking = [i for i, q in enumerate(questions) if turn < len(q.turns)]
        for i in asking:
            histories[i].append(Message("user", questions[i].turns[turn]))
        conversations = [Conversation(tuple(histories[i]), f"question {questions[i].question_id} turn {turn + 1}") for i in asking]
        for i, answer in zip(asking, generator.answer(conversations, progress=progress)):
            histories[i].append(Message("assistant", answer.answer))
            answers[i].append(answer)
    return [
        {
            "question_id": q.question_id,
            "category": q.category,
            "model": model_name,
            "turns": list(q.turns),
            "answers": [a.answer for a in answers[i]],
            "answer_tokens": [a.answer_tokens for a in answers[i]],
            "finish_reasons": [a.finish_reason for a in answers[i]],
            "seconds": [round(a.seconds, 3) for a in answers[i]],
        }
        for i, q in enumerate(questions)
    ]


def judge_answers(
    judge: Judge, rows: list[dict[str, Any]], questions: list[Question], progress: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """One judgment per answered turn: rating (None when the judge gave none), reply, error.
    A judge that rated no answer at all is an error (naming its URL), not a summary of dashes."""
    by_id = {q.question_id: q for q in questions}
    tasks = [(row, turn) for row in rows for turn in range(1, len(row["answers"]) + 1)]

    def grade(task: tuple[dict[str, Any], int]) -> dict[str, Any]:
        row, turn = task
        prompt = judge_prompt(row["turns"][:turn], row["answers"][:turn], list(by_id[row["question_id"]].references))
        judgment = judge.grade(prompt)
        if progress:
            progress(1)
        return {
            "question_id": row["question_id"],
            "category": row["category"],
            "turn": turn,
            "rating": judgment.rating,
            "judge": judge.model,
            "attempts": judgment.attempts,
            "error": judgment.error,
            "reply": judgment.reply,
        }

    judgments = in_parallel(grade, tasks, judge.concurrency)
    if judgments and all(j["rating"] is None for j in judgments):
        raise SftlabError(f"{judge.endpoint.name}: none of the {len(judgments)} answers got a rating; last: {judgments[-1]['error']}")
    return judgments


def summarize(judgments: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Mean rating per category and turn, and overall; failures counted apart."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for judgment in judgments:
        groups[judgment["category"]].append(judgment)
    groups["overall"] = list(judgments)

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    summary = {}
    for name, items in groups.items():
        rated = [j for j in items if j["rating"] is not None]
        summary[name] = {
            "turn_1": mean([j["rating"] for j in rated if j["turn"] == 1]),
            "turn_2": mean([j["rating"] for j in rated if j["turn"] == 2]),
            "mean": mean([j["rating"] for j in rated]),
            "rated": len(rated),
            "failed": len(items) - len(rated),
        }
    return summary


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=1) + "\n"
