"""A short-completion data set of sftlab's own making: long instructions, one-word answers.

Five families of classification and extraction tasks, each with a paragraph of instructions and an input,
answered by one word that can be checked exactly: a field of a customer record, the category of a word,
the sentiment of a review, the odd one out of a list of words, the larger of two numbers. The prompt is
about 100 tokens with SmolLM2's template, the answer one to three tokens and the end-of-turn marker:
the "short completion" case of Huerta-Enochian & Ko (2024) and of Shi et al. (2024), where the loss on
the prompt is claimed to matter.

Deterministic (a seeded `random.Random`): the same command always writes the same records. The words of
the `category` and `odd_one_out` families are split in two halves, `train` and `heldout`, so held-out
questions ask about words no training record has. Licence: the project's (Apache-2.0); nothing is taken
from elsewhere.

    python -m experiments.masking_ablation.short_answers 10 train   # prints 10 records as JSON lines
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable

Task = tuple[str, str]  # (the user's message, the one-word answer)

CATEGORIES = {
    "animal": ["horse", "otter", "badger", "camel", "falcon", "lizard", "rabbit", "donkey", "salmon", "beaver", "turtle", "weasel"],
    "fruit": ["apple", "mango", "cherry", "papaya", "lemon", "plum", "apricot", "banana", "kiwi", "peach", "grape", "melon"],
    "tool": ["hammer", "chisel", "wrench", "shovel", "pliers", "saw", "drill", "rake", "trowel", "axe", "screwdriver", "file"],
    "vehicle": ["truck", "bicycle", "tractor", "canoe", "scooter", "tram", "van", "yacht", "bus", "sledge", "ferry", "taxi"],
    "instrument": ["violin", "trumpet", "piano", "flute", "cello", "drum", "harp", "oboe", "guitar", "banjo", "tuba", "organ"],
    "clothing": ["jacket", "scarf", "sock", "glove", "shirt", "coat", "skirt", "hat", "boot", "vest", "sweater", "belt"],
}
FIELDS = {
    "city": ["Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Porto", "Quito", "Dakar", "Riga", "Perth", "Cork", "Kyoto"],
    "job": ["baker", "pilot", "nurse", "plumber", "farmer", "teacher", "chemist", "tailor", "welder", "judge", "editor", "dentist"],
    "pet": ["parrot", "hamster", "cat", "dog", "goldfish", "tortoise", "ferret", "canary", "rabbit", "iguana", "gecko", "pony"],
    "colour": ["green", "yellow", "purple", "orange", "crimson", "teal", "silver", "brown", "violet", "navy", "amber", "ivory"],
    "sport": ["tennis", "rowing", "hockey", "judo", "cricket", "fencing", "golf", "rugby", "sailing", "squash", "karate", "cycling"],
    "car": ["Volvo", "Toyota", "Fiat", "Skoda", "Honda", "Renault", "Mazda", "Peugeot", "Kia", "Opel", "Seat", "Dacia"],
}
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo", "Nia", "Omar", "Pia"]
SURNAMES = ["Petrov", "Okafor", "Silva", "Novak", "Haddad", "Larsen", "Moreau", "Tanaka", "Kowalski", "Rossi", "Mendes", "Berg"]
PRODUCTS = ["kettle", "backpack", "lamp", "blender", "umbrella", "headset", "mattress", "toaster", "tent", "printer", "camera", "chair"]
GOOD = [
    "It works exactly as described and feels sturdy.",
    "Setting it up took two minutes and it has not failed once.",
    "The quality is excellent for the price.",
    "I use it every day and it still looks new.",
    "Customer service answered quickly and kindly.",
    "It arrived early and was very well packed.",
]
BAD = [
    "It stopped working after a week.",
    "The parts feel cheap and one of them cracked.",
    "It is much smaller than the pictures suggest.",
    "Customer service never replied to my emails.",
    "It arrived scratched and the box was torn.",
    "The instructions were useless and it never worked properly.",
]
NEUTRAL = [
    "I bought it for my sister's new flat.",
    "It comes in three colours; I chose the grey one.",
    "I ordered it on a Tuesday.",
    "My neighbour has the older model.",
]
REPLY_RULES = "Reply with one word only: no punctuation, no explanation, nothing else."


def half(words: list[str], split: str) -> list[str]:
    """The first half of a word list for training, the second for held-out questions."""
    return words[: len(words) // 2] if split == "train" else words[len(words) // 2 :]


def record_field(rng: random.Random, split: str) -> Task:
    values = {field: rng.choice(options) for field, options in FIELDS.items()}
    asked = rng.choice(list(FIELDS))
    lines = [f"Name: {rng.choice(NAMES)} {rng.choice(SURNAMES)}", *(f"{field.capitalize()}: {value}" for field, value in values.items())]
    text = (
        "Below is a record from a customer database, one field per line, followed by a question about the "
        "customer. Find the field the question asks about and copy its value exactly as it is written in the "
        f"record. {REPLY_RULES}\n\nRecord:\n" + "\n".join(lines) + f"\n\nQuestion: What is the customer's {asked}?"
    )
    return text, values[asked]


def category(rng: random.Random, split: str) -> Task:
    name = rng.choice(list(CATEGORIES))
    word = rng.choice(half(CATEGORIES[name], split))
    text = (
        "You are sorting words for a children's picture dictionary. Every word belongs to exactly one of these "
        f"categories: {', '.join(CATEGORIES)}. Read the word below and decide which category it belongs to. "
        f"Answer with the name of the category in lower case, exactly as it is spelled in the list. {REPLY_RULES}"
        f"\n\nWord: {word}"
    )
    return text, name


def sentiment(rng: random.Random, split: str) -> Task:
    label = rng.choice(["positive", "negative"])
    sentences = rng.sample(GOOD if label == "positive" else BAD, 2) + [rng.choice(NEUTRAL)]
    rng.shuffle(sentences)
    text = (
        "Here is a customer review from an online shop. Decide whether the customer is satisfied with the "
        "product overall. Answer positive if the review is favourable and negative if it is unfavourable; "
        f"sentences that say nothing about the product do not count. {REPLY_RULES}"
        f"\n\nReview of a {rng.choice(PRODUCTS)}: " + " ".join(sentences)
    )
    return text, label


def odd_one_out(rng: random.Random, split: str) -> Task:
    common, other = rng.sample(list(CATEGORIES), 2)
    words = rng.sample(half(CATEGORIES[common], split), 4)
    odd = rng.choice(half(CATEGORIES[other], split))
    words.insert(rng.randrange(5), odd)
    text = (
        "The list below has five words. Four of them belong to the same group of things and one does not. "
        f"Find the word that does not belong with the others and write it exactly as it appears in the list. {REPLY_RULES}"
        f"\n\nWords: {', '.join(words)}"
    )
    return text, odd


def larger(rng: random.Random, split: str) -> Task:
    first, second = rng.sample(range(100, 1000), 2)
    text = (
        "Two numbers are given below. Compare them and reply with the larger of the two, written in digits "
        f"exactly as it is given. {REPLY_RULES}\n\nNumbers: {first} and {second}"
    )
    return text, str(max(first, second))


FAMILIES: list[Callable[[random.Random, str], Task]] = [record_field, category, sentiment, odd_one_out, larger]


def short_answer_records(n: int, split: str, seed: int = 0) -> list[dict]:
    """`n` distinct tasks as `messages` records (a user message, a one-word answer), the families taken in
    turn; `split` (`train` or `heldout`) chooses the half of the word lists and the seed stream."""
    rng, seen, records = random.Random(f"{split}-{seed}"), set(), []
    while len(records) < n:
        text, answer = FAMILIES[len(records) % len(FAMILIES)](rng, split)
        if text in seen:
            continue
        seen.add(text)
        records.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]})
    return records


if __name__ == "__main__":
    for record in short_answer_records(int(sys.argv[1]) if len(sys.argv) > 1 else 10, sys.argv[2] if len(sys.argv) > 2 else "train"):
        print(json.dumps(record, ensure_ascii=False))
