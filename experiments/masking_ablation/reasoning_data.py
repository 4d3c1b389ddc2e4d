"""A small reasoning data set of sftlab's own making: arithmetic, time and ordering word problems, each with
step-by-step reasoning in `reasoning_content` and a short answer whose first word is the result.

Deterministic (a seeded `random.Random`), so the same command always writes the same file; licence: the
project's (Apache-2.0), nothing is taken from elsewhere. One family per function; each returns
(question, reasoning, answer). `problems(n, seed)` draws distinct questions.

    python -m experiments.masking_ablation.reasoning_data 20      # prints 20 records as JSON lines
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo", "Nia", "Omar", "Pia"]
ITEMS = ["pens", "apples", "tickets", "books", "cups", "balls"]
THINGS = [("rolls", "baker"), ("stamps", "collector"), ("marbles", "child"), ("plants", "gardener"), ("cards", "teacher")]
Problem = tuple[str, str, str]


def shopping(rng: random.Random) -> Problem:
    name, items = rng.choice(NAMES), rng.choice(ITEMS)
    count, price, extra = rng.randint(2, 9), rng.randint(2, 12), rng.randint(1, 20)
    question = f"{name} buys {count} {items} at {price} dollars each and a bag for {extra} dollars. How much does {name} spend?"
    cost = count * price
    reasoning = f"The {items} cost {count} × {price} = {cost} dollars.\nWith the bag: {cost} + {extra} = {cost + extra} dollars."
    return question, reasoning, f"{cost + extra} dollars."


def left_over(rng: random.Random) -> Problem:
    things, who = rng.choice(THINGS)
    total = rng.randint(20, 90)
    first, second = rng.randint(1, total // 3), rng.randint(1, total // 3)
    question = f"A {who} has {total} {things}, gives away {first} in the morning and {second} in the afternoon. How many {things} are left?"
    given = first + second
    reasoning = f"Given away in all: {first} + {second} = {given}.\nLeft: {total} - {given} = {total - given}."
    return question, reasoning, f"{total - given} {things}."


def ages(rng: random.Random) -> Problem:
    older, younger = rng.sample(NAMES, 2)
    gap, age, years = rng.randint(2, 15), rng.randint(5, 40), rng.randint(2, 10)
    question = f"{older} is {gap} years older than {younger}. {younger} is {age}. How old will {older} be in {years} years?"
    now = age + gap
    reasoning = f"{older} is now {age} + {gap} = {now}.\nIn {years} years: {now} + {years} = {now + years}."
    return question, reasoning, f"{now + years} years old."


def end_time(rng: random.Random) -> Problem:
    hour, minute, length = rng.randint(8, 19), rng.choice(range(0, 60, 5)), rng.choice(range(35, 180, 5))
    question = f"A film starts at {hour}:{minute:02d} and lasts {length} minutes. At what time does it end?"
    hours, minutes = divmod(length, 60)
    end_hour, end_minute = divmod(hour * 60 + minute + length, 60)
    reasoning = (
        f"{length} minutes is {hours} hour{'s' if hours != 1 else ''} and {minutes} minutes.\n"
        f"{hour}:{minute:02d} plus {hours}:{minutes:02d} is {end_hour}:{end_minute:02d}."
    )
    return question, reasoning, f"{end_hour}:{end_minute:02d}."


def sharing(rng: random.Random) -> Problem:
    people, each, things = rng.randint(2, 9), rng.randint(2, 12), rng.choice(THINGS)[0]
    question = f"{people * each} {things} are shared equally among {people} friends. How many does each friend get?"
    reasoning = (
        f"Each friend gets {people * each} ÷ {people}.\n{people} × {each} = {people * each}, so {people * each} ÷ {people} = {each}."
    )
    return question, reasoning, f"{each} {things}."


def ordering(rng: random.Random) -> Problem:
    tall, middle, short = rng.sample(NAMES, 3)
    facts = [f"{tall} is taller than {middle}.", f"{middle} is taller than {short}."]
    rng.shuffle(facts)
    asked, answer = rng.choice([("shortest", short), ("tallest", tall)])
    question = f"{' '.join(facts)} Who is the {asked}?"
    reasoning = (
        f"{tall} is taller than {middle}, and {middle} is taller than {short}.\nFrom tallest to shortest: {tall}, {middle}, {short}."
    )
    return question, reasoning, f"{answer}."


def minutes(rng: random.Random) -> Problem:
    hours, extra = rng.randint(1, 9), rng.randint(1, 59)
    question = f"How many minutes are there in {hours} hours and {extra} minutes?"
    reasoning = f"{hours} hours are {hours} × 60 = {hours * 60} minutes.\nAdding {extra}: {hours * 60} + {extra} = {hours * 60 + extra}."
    return question, reasoning, f"{hours * 60 + extra} minutes."


FAMILIES: list[Callable[[random.Random], Problem]] = [shopping, left_over, ages, end_time, sharing, ordering, minutes]


def problems(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct problems as `messages` records (a user question; an answer with `reasoning_content`),
    the families taken in turn."""
    rng, seen, records = random.Random(seed), set(), []
    while len(records) < n:
        question, reasoning, answer = FAMILIES[len(records) % len(FAMILIES)](rng)
        if question in seen:
            continue
        seen.add(question)
        messages = [{"role": "user", "content": question}, {"role": "assistant", "reasoning_content": reasoning, "content": answer}]
        records.append({"messages": messages})
    return records


def answer_key(answer: str) -> str:
    """What a generated answer must start with to be right: the result (its first word, without the period)."""
    words = answer.split()
    return words[0].rstrip(".") if words else ""


if __name__ == "__main__":
    for record in problems(int(sys.argv[1]) if len(sys.argv) > 1 else 10):
        print(json.dumps(record, ensure_ascii=False))
