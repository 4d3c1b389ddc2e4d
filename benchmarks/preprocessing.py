"""Preprocessing throughput: sftlab vs. the usual hand-written label building, on Alpaca and ShareGPT data.

Alpaca: the recipe (tatsu-lab/stanford_alpaca train.py, `preprocess`) tokenizes every example
twice, one call per string with `return_tensors="pt"`: once the prompt + output + eos, once the
prompt alone to count how many labels to mask.
ShareGPT (multi-turn, system prompts; the tokenizer's chat template): the usual way to mask all
but the assistant turns is to render and tokenize every prefix of the conversation (up to each
assistant turn, with the generation prompt, and through it) and mask between the lengths; this is
that baseline.
sftlab renders once, tokenizes the batch once with offset mappings, and derives labels from
character spans. All run here in one process, on the same records and tokenizer; the labels are
compared token for token.

    python benchmarks/preprocessing.py [--data ALPACA.json] [--sharegpt SHAREGPT.json] [--repeats 3]

Writes benchmarks/results/preprocessing.json and rewrites benchmarks/RESULTS.md. Speed is a ratio
measured in the same run, never an absolute assertion.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import report

from sftlab.artifacts import load_tokenizer
from sftlab.data.datamodule import SFTDataModule
from sftlab.data.formats.alpaca import Alpaca
from sftlab.data.formats.sharegpt import ShareGPT
from sftlab.data.labels.masking import make_strategy
from sftlab.data.labels.tokenize import IGNORE_INDEX, tokenize_conversations
from sftlab.data.rendering.templates import ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT, make_renderer

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "tests/data/files"  # what ships with the repository: no ../shared needed


def alpaca_recipe_examples(records: list[dict], tokenizer) -> list[dict[str, list[int]]]:
    """The recipe's `preprocess`, as written there (torch tensors, one call per string): input ids
    and labels per example."""
    sources = [(ALPACA_PROMPT_INPUT if r.get("input") else ALPACA_PROMPT_NO_INPUT).format_map(r) for r in records]
    targets = [f"{r['output']}{tokenizer.eos_token}" for r in records]

    def tokenize_fn(strings):
        tokenized = [
            tokenizer(text, return_tensors="pt", padding="longest", max_length=tokenizer.model_max_length, truncation=True)
            for text in strings
        ]
        ids = [t.input_ids[0] for t in tokenized]
        return ids, [t.input_ids.ne(tokenizer.pad_token_id).sum().item() for t in tokenized]

    input_ids, _ = tokenize_fn([s + t for s, t in zip(sources, targets)])
    _, source_lens = tokenize_fn(sources)
    labels = copy.deepcopy(input_ids)
    for label, source_len in zip(labels, source_lens):
        label[:source_len] = IGNORE_INDEX
    return [{"input_ids": ids.tolist(), "labels": label.tolist()} for ids, label in zip(input_ids, labels)]


def alpaca_recipe(records: list[dict], tokenizer) -> list[list[int]]:
    return [example["labels"] for example in alpaca_recipe_examples(records, tokenizer)]


def sftlab_function(records: list[dict], tokenizer, max_len: int, fmt: str = "alpaca") -> list[list[int]]:
    """sftlab's batch function on all records (what each `datasets.map` batch runs)."""
    read = (Alpaca() if fmt == "alpaca" else ShareGPT()).read
    rows = [read(r, f"record {i}").validate().to_row() for i, r in enumerate(records)]
    batch = {key: [row[key] for row in rows] for key in rows[0]}
    out = tokenize_conversations(
        batch,
        renderer=make_renderer("alpaca" if fmt == "alpaca" else "chat", tokenizer),
        strategy=make_strategy("assistant"),
        tokenizer=tokenizer,
        max_seq_length=max_len,
    )
    return out["labels"]


def prefix_retokenization(records: list[dict], tokenizer) -> list[list[int]]:
    """The ShareGPT baseline: tokenize the chat-template rendering of every prefix; an assistant turn's
    labels lie between the prefix before it (with the generation prompt) and the prefix through it."""
    all_labels = []
    for i, record in enumerate(records):
        messages = [{"role": m["role"], "content": m["content"]} for m in ShareGPT().read(record, f"record {i}").to_row()["messages"]]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        labels = [IGNORE_INDEX] * len(ids)
        for turn, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(tokenizer.apply_chat_template(messages[:turn], tokenize=True, add_generation_prompt=True, return_dict=False))
            end = len(tokenizer.apply_chat_template(messages[: turn + 1], tokenize=True, return_dict=False))
            labels[start:end] = ids[start:end]
        all_labels.append(labels)
    return all_labels


def sftlab_pipeline(data: Path, tokenizer_path: str, max_len: int, fmt: str = "alpaca") -> float:
    """The whole datamodule build (read, validate, render, tokenize, write Arrow cache) with a cold cache."""
    with tempfile.TemporaryDirectory() as cache:
        module = SFTDataModule(
            tokenizer=tokenizer_path,
            train_path=str(data),
            template="alpaca" if fmt == "alpaca" else "chat",
            format=fmt,
            max_seq_length=max_len,
            cache_dir=cache,
        )
        _ = module.tokenizer  # loaded outside the timing, as for the others
        start = time.perf_counter()
        module.build("train")
        return time.perf_counter() - start


def boundary_difference(recipe: list[int], ours: list[int]) -> bool:
    """True when the labels differ at exactly one position, the recipe's last masked token, which sftlab
    trains because its characters include the response's first character."""
    diff = [i for i, (a, b) in enumerate(zip(recipe, ours)) if a != b]
    return len(recipe) == len(ours) and len(diff) == 1 and recipe[diff[0]] == IGNORE_INDEX and recipe[diff[0] + 1] != IGNORE_INDEX


def separator_difference(baseline: list[int], ours: list[int], tokenizer) -> bool:
    """True when the labels differ only where the baseline trains whitespace that sftlab leaves out:
    the newline a chat template writes after the end-of-turn token is the template's separator, not
    part of the answer (the prefix baseline counts it into the turn)."""
    diff = [i for i, (a, b) in enumerate(zip(baseline, ours)) if a != b]
    return (
        len(baseline) == len(ours)
        and bool(diff)
        and all(ours[i] == IGNORE_INDEX and not tokenizer.decode([baseline[i]]).strip() for i in diff)
    )


def best_of(repeats: int, fn, *args):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(name: str, fmt: str, data: Path, tokenizer, tokenizer_path: str, baseline, repeats: int) -> dict:
    records = json.loads(data.read_text())
    max_len = tokenizer.model_max_length
    baseline_s, baseline_labels = best_of(repeats, baseline, records, tokenizer)
    function_s, sftlab_labels = best_of(repeats, sftlab_function, records, tokenizer, max_len, fmt)
    pipeline_s = min(sftlab_pipeline(data, tokenizer_path, max_len, fmt) for _ in range(repeats))
    n = len(records)
    return {
        "name": name,
        "data": data.name,
        "examples": n,
        "baseline_examples_per_s": n / baseline_s,
        "sftlab_function_examples_per_s": n / function_s,
        "sftlab_pipeline_examples_per_s": n / pipeline_s,
        "speedup_function": baseline_s / function_s,
        "speedup_pipeline": baseline_s / pipeline_s,
        "identical_labels": sum(a == b for a, b in zip(baseline_labels, sftlab_labels)),
        "differ_only_at_the_straddling_boundary_token": sum(boundary_difference(a, b) for a, b in zip(baseline_labels, sftlab_labels)),
        "differ_only_in_whitespace_after_turns": sum(separator_difference(a, b, tokenizer) for a, b in zip(baseline_labels, sftlab_labels)),
    }


def markdown(tokenizer_name: str, rows: list[dict]) -> str:
    lines = [
        f"## Preprocessing: examples/s, {tokenizer_name} tokenizer\n",
        "| data | baseline | baseline ex/s | sftlab batch function ex/s | vs baseline | sftlab datamodule build, cold cache ex/s "
        "| vs baseline | identical labels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['data']} ({row['examples']}) | {row['name']} | {row['baseline_examples_per_s']:,.0f} | "
            f"{row['sftlab_function_examples_per_s']:,.0f} | {row['speedup_function']:.1f}x | "
            f"{row['sftlab_pipeline_examples_per_s']:,.0f} | {row['speedup_pipeline']:.1f}x | "
            f"{row['identical_labels']}/{row['examples']} |"
        )
    lines.append(
        "\nLabels that differ, per data set: "
        + "; ".join(
            f"{row['data']}: {row['examples'] - row['identical_labels']}, of which {row['differ_only_at_the_straddling_boundary_token']} "
            f"only at the one token straddling prompt and response and {row['differ_only_in_whitespace_after_turns']} only in the "
            "whitespace after end-of-turn tokens"
            for row in rows
        )
        + '. The straddling token (`:"` when an Alpaca output starts '
        "with a quote) holds the response's first character: the recipe masks it, sftlab trains it. The newline a chat template "
        "writes after `<|im_end|>` is the template's separator: the prefix baseline trains it as part of the turn, sftlab "
        "trains through the end-of-turn token and not the separator (see the masking notes)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHIPPED / "data/alpaca_en_demo.json"))
    parser.add_argument("--sharegpt", default=str(SHIPPED / "data/fastchat_sharegpt/dummy_conversation_with_system.json"))
    parser.add_argument("--tokenizer", default=str(SHIPPED / "tokenizers/smollm2-135m-instruct"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results-dir", default=str(report.RESULTS))
    args = parser.parse_args()
    import datasets

    datasets.disable_progress_bars()

    tokenizer = load_tokenizer(args.tokenizer)
    rows = [
        compare(
            "Alpaca recipe (per-example, tokenized twice)",
            "alpaca",
            Path(args.data),
            tokenizer,
            args.tokenizer,
            alpaca_recipe,
            args.repeats,
        ),
        compare(
            "prefix re-tokenization per assistant turn",
            "sharegpt",
            Path(args.sharegpt),
            tokenizer,
            args.tokenizer,
            prefix_retokenization,
            args.repeats,
        ),
    ]
    section = markdown(Path(args.tokenizer).name, rows)
    target = report.save("preprocessing", {"rows": rows}, section, Path(args.results_dir))
    print(section)
    print(f"written: {target}")


if __name__ == "__main__":
    main()
