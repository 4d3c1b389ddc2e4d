"""`sftlab inspect`: show exactly what will be trained, before spending compute on it.

Takes the same `data.*` arguments as `fit` (from `--config FILE` and/or flags). Prints each example
with its trained tokens highlighted (or, with `--json`, one JSON object per example with `input_ids`
and `labels`), then the data report and a length histogram.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

import datasets
from rich.console import Console
from rich.text import Text

from sftlab.data.datamodule import SFTDataModule
from sftlab.data.tokenize import IGNORE_INDEX

TRAINED_STYLE = "bold black on green"
PROMPT_STYLE = "dim"


def colored_example(tokenizer: Any, input_ids: list[int], labels: list[int]) -> Text:
    """Runs of trained / untrained tokens, decoded together (so multi-byte characters survive)."""
    text = Text()
    pairs = list(zip(input_ids, labels))
    for trained, run in groupby(pairs, key=lambda pair: pair[1] != IGNORE_INDEX):
        text.append(tokenizer.decode([token for token, _ in run]), style=TRAINED_STYLE if trained else PROMPT_STYLE)
    return text


def run_inspect(data: SFTDataModule, split: str = "train", limit: int = 3, as_json: bool = False) -> None:
    """Print `limit` examples of `split` and the data report."""
    datasets.disable_progress_bars()
    dataset, report = data.examples(split)  # before packing, which only regroups examples into rows
    shown = dataset.select(range(min(limit, len(dataset)))) if isinstance(dataset, datasets.Dataset) else dataset.take(limit)
    if as_json:
        for row in shown:
            print(json.dumps({key: row[key] for key in ("source", "input_ids", "labels", "position_ids") if key in row}))
        return
    console = Console(highlight=False, soft_wrap=True)
    for index, row in enumerate(shown):
        trained = sum(label != IGNORE_INDEX for label in row["labels"])
        console.rule(f"example {index}: {len(row['input_ids'])} tokens, {trained} trained")
        console.print(colored_example(data.tokenizer, row["input_ids"], row["labels"]))
    if report is None:
        console.print("streaming: statistics are not computed")
        return
    console.rule("statistics")
    console.print(report.table())
    console.print("length histogram (tokens before truncation):")
    console.print(report.histogram())
    console.print(f"legend: [{TRAINED_STYLE}]trained[/] [{PROMPT_STYLE}]not trained (label -100)[/]")
