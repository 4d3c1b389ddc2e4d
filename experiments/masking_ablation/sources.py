"""The ablation's data: four sources mixed into one training set, each with its own held-out split.

- `oasst`: oasst_en100's top threads (multi-turn chat, no system prompt), `../shared/data` (else `tests/data/files/data`);
- `fastchat`: FastChat's ShareGPT sample (system prompts, two assistant turns on average), `../shared/data` (else `tests/data/files/data`);
- `reasoning`: sftlab's own word problems with step-by-step `reasoning_content` (`reasoning_data.py`);
- `tools`: 120 Glaive tool-calling conversations (`data/glaive_toolcall_sample.json`, Apache-2.0).

Every source is shuffled once with seed 0 and split into held-out and training records; the training
records of all sources are shuffled together into `train.jsonl`. `heldout/<source>.jsonl` is what each
trained model is scored on afterwards; `curve.jsonl` (the first few held-out records of each source) is
the validation split during training, for the curves. All of it is written once per output folder.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.masking_ablation.reasoning_data import problems
from sftlab.artifacts import write_text_atomic

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared"
# The chats: ../shared's files where present (the committed results used them), else the samples that ship
# with the tests (the same oasst file; 60 of FastChat's records).
DATA_ROOT = SHARED if (SHARED / "data").is_dir() else HERE.parents[1] / "tests/data/files"
SOURCES = ("oasst", "fastchat", "reasoning", "tools")


@dataclass(frozen=True)
class Sizes:
    """Records per source: for training, held out for scoring, and of those for the validation curves."""

    train: int
    heldout: int
    curve: int
    heldout_reasoning: int  # the reasoning source is cheap to score and also gives answer accuracy


SIZES = {
    "smoke": Sizes(train=12, heldout=3, curve=2, heldout_reasoning=4),
    "real": Sizes(train=75, heldout=10, curve=3, heldout_reasoning=32),
}
REASONING_TRAIN = 3  # reasoning problems are short: three per training slot of the other sources


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sharegpt_to_messages(record: dict[str, Any]) -> dict[str, Any]:
    """A Glaive ShareGPT record in the `messages` form (one format for the whole mixed file)."""
    roles = {"human": "user", "gpt": "assistant", "observation": "tool"}
    messages = []
    for turn in record["conversations"]:
        if turn["from"] == "function_call":
            call = json.loads(turn["value"])
            messages.append({"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": call}]})
        else:
            messages.append({"role": roles[turn["from"]], "content": turn["value"]})
    return {"messages": messages, "tools": record.get("tools", "")}


def load_source(name: str, count: int, shared: Path = DATA_ROOT) -> list[dict[str, Any]]:
    """The records of a source in its file's order (`count` generated ones for `reasoning`)."""
    if name == "reasoning":
        return problems(count)
    if name == "tools":
        return [sharegpt_to_messages(r) for r in json.loads((HERE / "data/glaive_toolcall_sample.json").read_text())]
    files = {
        "oasst": "oasst_en100/en_100_top_thread.messages.jsonl",
        "fastchat": "fastchat_sharegpt/dummy_conversation_with_system.messages.jsonl",
    }
    return _jsonl(shared / "data" / files[name])


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def prepare_data(setting: str, folder: Path, shared: Path = DATA_ROOT) -> dict[str, Path]:
    """Write (once) and return the paths: `train`, `curve` and `heldout/<source>` per source."""
    sizes = SIZES[setting]
    paths = {"train": folder / "train.jsonl", "curve": folder / "curve.jsonl"}
    paths |= {f"heldout/{name}": folder / f"heldout/{name}.jsonl" for name in SOURCES}
    if all(path.is_file() for path in paths.values()):
        return paths
    rng = random.Random(0)
    train, curve = [], []
    for name in SOURCES:
        heldout = sizes.heldout_reasoning if name == "reasoning" else sizes.heldout
        wanted = sizes.train * (REASONING_TRAIN if name == "reasoning" else 1)
        records = load_source(name, heldout + wanted, shared)
        rng.shuffle(records)
        _write_jsonl(paths[f"heldout/{name}"], records[:heldout])
        curve += records[: sizes.curve]
        train += records[heldout : heldout + wanted]
    rng.shuffle(train)
    _write_jsonl(paths["curve"], curve)
    _write_jsonl(paths["train"], train)
    return paths
