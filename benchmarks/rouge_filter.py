"""The self-instruct ROUGE-L novelty filter: sftlab's pruned filter vs. the original method.

The original (Stanford Alpaca's `generate_instruction.py`) tokenizes each candidate and scores it
against every kept instruction with `rouge_scorer._score_lcs`, in a new `multiprocessing.Pool` per
candidate, keeping it when the highest F1 is at most 0.7. Also measured: the same comparison without
the pool (one process), a fairer baseline. All three must keep the same instructions.

Candidates: the 175 seed instructions start the kept set; the stream is alpaca_en_demo's 999
instructions, then deterministic variants of them (near-duplicates with a word dropped or added,
and recombinations of two instructions' halves) up to the size asked.

    python benchmarks/rouge_filter.py [--sizes 1000 2000 5000] [--workers 2]

Writes benchmarks/results/rouge_filter.json and rewrites benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import report
from rouge_score import rouge_scorer

from sftlab.selfinstruct.similarity import NoveltyFilter

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
THRESHOLD = 0.7


def candidates(size: int, seed: int = 0) -> tuple[list[str], list[str]]:
    seeds = [json.loads(line)["instruction"] for line in (SHARED / "data/seed_tasks.jsonl").read_text().splitlines()]
    real = [record["instruction"] for record in json.loads((SHARED / "data/alpaca_en_demo.json").read_text())]
    rng = random.Random(seed)
    stream = list(real)
    while len(stream) < size:
        words = rng.choice(real).split()
        kind = rng.random()
        if kind < 0.3 and len(words) > 4:  # near-duplicate: a word dropped
            del words[rng.randrange(len(words))]
        elif kind < 0.5:  # near-duplicate: a word added
            words.insert(rng.randrange(len(words) + 1), rng.choice(rng.choice(real).split()))
        else:  # recombination of two instructions
            other = rng.choice(real).split()
            words = words[: len(words) // 2] + other[len(other) // 2 :]
        stream.append(" ".join(words))
    return seeds, stream[:size]


def original(seeds: list[str], stream: list[str], workers: int, use_pool: bool) -> list[str]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept_tokens = [scorer._tokenizer.tokenize(text) for text in seeds]
    kept = []
    for text in stream:
        tokens = scorer._tokenizer.tokenize(text)
        if use_pool:
            with Pool(workers) as pool:
                scores = pool.map(partial(rouge_scorer._score_lcs, tokens), kept_tokens)
        else:
            scores = [rouge_scorer._score_lcs(tokens, other) for other in kept_tokens]
        if max(score.fmeasure for score in scores) > THRESHOLD:
            continue
        kept.append(text)
        kept_tokens.append(tokens)
    return kept


def pruned(seeds: list[str], stream: list[str]) -> list[str]:
    novelty = NoveltyFilter(THRESHOLD)
    for text in seeds:
        novelty.add(text)
    kept = []
    for text in stream:
        if novelty.check(text).novel:
            novelty.add(text)
            kept.append(text)
    return kept


def timed(function, *args) -> tuple[list[str], float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--results-dir", type=Path, default=report.RESULTS)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        seeds, stream = candidates(size)
        fast, fast_seconds = timed(pruned, seeds, stream)
        serial, serial_seconds = timed(original, seeds, stream, args.workers, False)
        pooled, pooled_seconds = timed(original, seeds, stream, args.workers, True)
        assert fast == serial == pooled, f"kept sets differ at {size}"
        rows.append(
            {
                "candidates": size,
                "kept": len(fast),
                "sftlab_s": round(fast_seconds, 3),
                "original_pool_s": round(pooled_seconds, 2),
                "original_serial_s": round(serial_seconds, 2),
                "speedup_vs_original": round(pooled_seconds / fast_seconds, 1),
                "speedup_vs_serial": round(serial_seconds / fast_seconds, 1),
                "same_kept_set": True,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        "## Self-instruct ROUGE-L filter: sftlab's NoveltyFilter vs. the original per-candidate pool\n",
        f"Threshold {THRESHOLD}; the original method with {args.workers} pool workers, and serially; all three keep "
        "exactly the same instructions (asserted).\n",
        "| candidates | kept | sftlab s | original (pool) s | original serial s | vs original | vs serial |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['candidates']:,} | {r['kept']:,} | {r['sftlab_s']} | {r['original_pool_s']} | {r['original_serial_s']} | "
        f"{r['speedup_vs_original']}x | {r['speedup_vs_serial']}x |"
        for r in rows
    ]
    section = "\n".join(lines)
    target = report.save("rouge_filter", {"workers": args.workers, "threshold": THRESHOLD, "rows": rows}, section, args.results_dir)
    print(section)
    print(f"written: {target}")


if __name__ == "__main__":
    main()
