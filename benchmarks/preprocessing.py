"""Preprocessing throughput: sftlab vs. the Stanford Alpaca recipe's per-example double tokenization.

The recipe (tatsu-lab/stanford_alpaca train.py, `preprocess`) tokenizes every example twice, one
call per string with `return_tensors="pt"`: once the prompt + output + eos, once the prompt alone to
count how many labels to mask. sftlab renders once, tokenizes the batch once with offset mappings,
and derives labels from character spans. Both run here in one process, on the same records and
tokenizer; the labels are compared token for token.

    python benchmarks/preprocessing.py [--data ../shared/data/alpaca_en_demo.json] [--repeats 3]

Writes benchmarks/results/preprocessing.json and prints a table. Speed is a ratio measured in the
same run, never an absolute assertion.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sftlab.data.datamodule import SFTDataModule, load_tokenizer  # noqa: E402
from sftlab.data.masking import make_strategy  # noqa: E402
from sftlab.data.readers import alpaca_record  # noqa: E402
from sftlab.data.templates import ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT, make_renderer  # noqa: E402
from sftlab.data.tokenize import IGNORE_INDEX, tokenize_conversations  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def alpaca_recipe_examples(records: list[dict], tokenizer) -> list[dict[str, list[int]]]:
    """The recipe's `preprocess`, as written there (torch tensors, one call per string): input ids
    and labels per example."""
    sources = [(ALPACA_PROMPT_INPUT if r.get("input") else ALPACA_PROMPT_NO_INPUT).format_map(r) for r in records]
    targets = [f"{r['output']}{tokenizer.eos_token}" for r in records]

    def tokenize_fn(strings):
        tokenized = [tokenizer(text, return_tensors="pt", padding="longest", max_length=tokenizer.model_max_length,
                               truncation=True) for text in strings]
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


def sftlab_function(records: list[dict], tokenizer, max_len: int) -> list[list[int]]:
    """sftlab's batch function on all records (what each `datasets.map` batch runs)."""
    rows = [alpaca_record(r, f"record {i}").validate().to_row() for i, r in enumerate(records)]
    batch = {key: [row[key] for row in rows] for key in rows[0]}
    out = tokenize_conversations(batch, renderer=make_renderer("alpaca", tokenizer), strategy=make_strategy("assistant"),
                                 tokenizer=tokenizer, max_seq_length=max_len)
    return out["labels"]


def sftlab_pipeline(data: Path, tokenizer_path: str, max_len: int) -> float:
    """The whole datamodule build (read, validate, render, tokenize, write Arrow cache) with a cold cache."""
    with tempfile.TemporaryDirectory() as cache:
        module = SFTDataModule(tokenizer=tokenizer_path, train_path=str(data), template="alpaca", format="alpaca",
                               max_seq_length=max_len, cache_dir=cache)
        module.tokenizer  # loaded outside the timing, as for the others
        start = time.perf_counter()
        module.build("train")
        return time.perf_counter() - start


def boundary_difference(recipe: list[int], ours: list[int]) -> bool:
    """True when the labels differ at exactly one position, the recipe's last masked token, which sftlab
    trains because its characters include the response's first character."""
    diff = [i for i, (a, b) in enumerate(zip(recipe, ours)) if a != b]
    return len(recipe) == len(ours) and len(diff) == 1 and recipe[diff[0]] == IGNORE_INDEX and recipe[diff[0] + 1] != IGNORE_INDEX


def best_of(repeats: int, fn, *args):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "data/alpaca_en_demo.json"))
    parser.add_argument("--tokenizer", default=str(SHARED / "tokenizers/smollm2-135m-instruct"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/preprocessing.json"))
    args = parser.parse_args()
    import datasets
    datasets.disable_progress_bars()

    records = json.loads(Path(args.data).read_text())
    tokenizer = load_tokenizer(args.tokenizer)
    max_len = tokenizer.model_max_length
    recipe_s, recipe_labels = best_of(args.repeats, alpaca_recipe, records, tokenizer)
    function_s, sftlab_labels = best_of(args.repeats, sftlab_function, records, tokenizer, max_len)
    pipeline_s = min(sftlab_pipeline(Path(args.data), args.tokenizer, max_len) for _ in range(args.repeats))
    same = sum(a == b for a, b in zip(recipe_labels, sftlab_labels))
    boundary_only = sum(boundary_difference(a, b) for a, b in zip(recipe_labels, sftlab_labels))
    n = len(records)
    results = {
        "data": Path(args.data).name, "examples": n, "tokenizer": Path(args.tokenizer).name,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "alpaca_recipe_examples_per_s": n / recipe_s,
        "sftlab_function_examples_per_s": n / function_s,
        "sftlab_pipeline_examples_per_s": n / pipeline_s,
        "speedup_function": recipe_s / function_s,
        "speedup_pipeline": recipe_s / pipeline_s,
        "identical_labels": same,
        "differ_only_at_the_straddling_boundary_token": boundary_only,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'run':<44}{'examples/s':>12}{'vs recipe':>11}")
    print(f"{'Alpaca recipe (per-example, tokenized twice)':<44}{n / recipe_s:>12,.0f}{1:>10.1f}x")
    print(f"{'sftlab batch function':<44}{n / function_s:>12,.0f}{recipe_s / function_s:>10.1f}x")
    print(f"{'sftlab datamodule build (cold cache)':<44}{n / pipeline_s:>12,.0f}{recipe_s / pipeline_s:>10.1f}x")
    print(f"identical labels: {same}/{n}; the other {n - same}: {boundary_only} differ only at the one token that "
          "straddles prompt and response (e.g. ':\"' when the output starts with a quote), which the recipe masks and sftlab trains")


if __name__ == "__main__":
    main()
