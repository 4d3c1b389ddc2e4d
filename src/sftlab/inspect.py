"""`sftlab inspect`: show exactly what will be trained, before spending compute on it.

Takes the same `data.*` arguments as `fit` (from `--config FILE` and/or flags). Prints each example
with its trained tokens highlighted: coloured by part (reasoning, answer, tool calls, end-of-turn),
brighter for a heavier loss weight, untrained text dim (with `--json`: one JSON object per example with
`input_ids`, `labels`, `weights` and the kind of each token). Then the data report, statistics per kind
of token and per assistant turn (what ends each kind of turn, an answer or tool calls, and whether that
stop is trained, with a warning where a turn trains text but not its stop; turns that train nothing;
parts the template does not render), and a length histogram.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import groupby
from typing import Any

import datasets
from rich.console import Console
from rich.text import Text

from sftlab.data.datamodule import SFTDataModule
from sftlab.data.labels.anatomy import AnatomyStats, ExampleAnatomy, examples_anatomy
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.data.sources.build import source_conversations
from sftlab.errors import SftlabError

TRAINED_STYLE = "bold black on green"
PROMPT_STYLE = "dim"
PART_COLORS = {"reasoning": (200, 120, 255), "answer": (80, 220, 80), "tool_calls": (80, 200, 255), "end_of_turn": (255, 210, 60)}
OTHER_COLOR = (150, 170, 255)  # trained text that is no assistant part (masking none / prompt)


def token_style(kind: str, weight: float, heaviest: float) -> str:
    """Trained: the part's colour, paler for a lighter weight; untrained: dim."""
    if weight <= 0:
        return PROMPT_STYLE
    red, green, blue = PART_COLORS.get(kind.removeprefix("assistant:"), OTHER_COLOR)
    strength = 0.35 + 0.65 * weight / heaviest
    red, green, blue = (round(255 - (255 - channel) * strength) for channel in (red, green, blue))
    return f"bold black on rgb({red},{green},{blue})"


def colored_example(tokenizer: Any, example: ExampleAnatomy) -> Text:
    """Runs of tokens of one kind and weight, decoded together (so multi-byte characters survive)."""
    text = Text()
    heaviest = max(example.weights, default=1.0) or 1.0
    triples = zip(example.input_ids, example.kinds, example.weights)
    for (kind, weight), run in groupby(triples, key=lambda triple: (triple[1], triple[2])):
        text.append(tokenizer.decode([token for token, _, _ in run]), style=token_style(kind, weight, heaviest))
    return text


def colored_block(tokenizer: Any, input_ids: list[int], labels: list[int]) -> Text:
    """Pretraining blocks: trained / untrained runs."""
    text = Text()
    for trained, run in groupby(zip(input_ids, labels), key=lambda pair: pair[1] != IGNORE_INDEX):
        text.append(tokenizer.decode([token for token, _ in run]), style=TRAINED_STYLE if trained else PROMPT_STYLE)
    return text


def _anatomies(data: SFTDataModule, split: str) -> Iterator[ExampleAnatomy]:
    """Every example of a SFT split, token by token, each source read as training reads it (its format,
    template and masking); records left out as bad are in the report."""
    for opened in data.open(split):
        settings = {"renderer": opened.renderer, "strategy": opened.source.masking, "tokenizer": data.tokenizer}
        for row in source_conversations(opened, data.shape):
            if row["error"]:
                continue
            try:
                yield from examples_anatomy(row, max_seq_length=data.shape.max_seq_length, **settings)
            except SftlabError:  # a record the template refuses: with bad_records skip, counted in the report
                continue


def run_inspect(data: SFTDataModule, split: str = "train", limit: int = 3, as_json: bool = False) -> None:
    """Print `limit` examples of `split`, the data report and the statistics."""
    datasets.disable_progress_bars()
    dataset, report = data.examples(split)  # before packing, which only regroups examples into rows
    if "source" not in (dataset.column_names or []):  # pretraining text: blocks
        _show_blocks(data, dataset, report, limit, as_json)
        return
    stats, shown = AnatomyStats(), []
    for example in _anatomies(data, split):
        stats.add(example)
        if len(shown) < limit:
            shown.append(example)
    if as_json:
        for example in shown:
            keys = ("source", "input_ids", "labels", "weights", "kinds")
            print(json.dumps({key: getattr(example, key) for key in keys}))
        return
    console = Console(highlight=False, soft_wrap=True)
    for index, example in enumerate(shown):
        dropped = "" if example.trainable else " (dropped: no trainable token)"
        console.rule(f"example {index}: {len(example.input_ids)} tokens, {example.trainable} trained{dropped} — {example.source}")
        console.print(colored_example(data.tokenizer, example))
    _print_report(console, report, stats)


def _print_report(console: Console, report: Any, stats: AnatomyStats | None) -> None:
    console.rule("statistics")
    console.print(report.table())
    for line in stats.lines() if stats is not None else []:
        console.print(line, style="bold yellow" if line.lstrip().startswith("WARNING") else None, markup=False)
    console.print("length histogram (tokens before truncation):")
    console.print(report.histogram())
    parts = " ".join(f"[{token_style(part, 1.0, 1.0)}]{part}[/]" for part in PART_COLORS)
    console.print(
        f"legend: {parts} [{token_style('user', 1.0, 1.0)}]other trained text[/] (paler = lighter weight) [{PROMPT_STYLE}]not trained[/]"
    )


def _show_blocks(data: SFTDataModule, dataset: Any, report: Any, limit: int, as_json: bool) -> None:
    shown = dataset.select(range(min(limit, len(dataset)))) if isinstance(dataset, datasets.Dataset) else dataset.take(limit)
    if as_json:
        for row in shown:
            print(json.dumps({key: row[key] for key in ("input_ids", "labels", "position_ids") if key in row}))
        return
    console = Console(highlight=False, soft_wrap=True)
    for index, row in enumerate(shown):
        trained = sum(label != IGNORE_INDEX for label in row["labels"])
        console.rule(f"example {index}: {len(row['input_ids'])} tokens, {trained} trained")
        console.print(colored_block(data.tokenizer, row["input_ids"], row["labels"]))
    if report is None:
        console.print("streaming: statistics are not computed")
        return
    _print_report(console, report, None)
