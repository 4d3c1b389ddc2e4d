"""Streaming pretraining data: the pipeline alone (tokens/s and peak memory) against the tiny model's training.

Synthetic text corpora of 100 MB and 1 GB (16 JSON Lines shards each, Zipf-distributed pseudo-words,
generated into a temporary folder and deleted afterwards) are streamed through sftlab's own pipeline,
as `sftlab fit --data.streaming true` builds it: `datasets` streaming reads the shards, tokenizes
them, cuts 1,024-token blocks and collates batches of 8, and the resume position after every batch
is taken as in training. With 0, 1 and 2 DataLoader workers, each run its own subprocess, reading the
same number of tokens from each corpus: tokens/s after the first batch, seconds to the first batch,
peak resident memory of the process (RSS) and of the process and its workers together (PSS, which
counts the pages forked workers share with it once; sampled every 100 ms), over the whole run and in
its first and second half. Memory that does not grow from the first half to the second, nor from
100 MB to 1 GB (shards 10x larger), shows that nothing is read ahead or kept. Then the tiny model
of configs/tiny.yaml trains on the same batches (fp32, through Lightning): its tokens/s is what the
pipeline has to keep up with.

    python benchmarks/streaming.py [--sizes 100 1000] [--workers 0 1 2] [--tokens 8000000] [--train-steps 6]

Writes benchmarks/results/streaming.json and rewrites benchmarks/RESULTS.md; the load average of the
(shared) machine is recorded with the figures. Speeds are compared as ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import psutil
import report

REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO / "tests/data/files/tokenizers/smollm2-135m-instruct"
BLOCK, BATCH, SHARDS = 1024, 8, 16


def write_corpus(folder: Path, megabytes: int, seed: int = 0) -> Path:
    """`megabytes` of documents of 300 Zipf-distributed pseudo-words in SHARDS JSON Lines files."""
    rng = np.random.default_rng(seed)
    syllables = np.array(["ka", "to", "ri", "ne", "ma", "lo", "su", "vi", "de", "pa", "shi", "gu", "ran", "tel", "mor", "bin"])
    vocabulary = np.array(["".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(8000)])
    frequency = 1 / np.arange(1, len(vocabulary) + 1)
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(SHARDS):
        written = 0
        with open(folder / f"part-{shard:03d}.jsonl", "w") as file:
            while written < megabytes * 2**20 // SHARDS:
                words = rng.choice(vocabulary, size=(200, 300), p=frequency / frequency.sum())
                lines = "".join(json.dumps({"text": " ".join(row) + "."}) + "\n" for row in words)
                file.write(lines)
                written += len(lines)
    return folder


class PeakMemory:
    """Peak proportional set size of this process plus its children (DataLoader workers), sampled in a thread."""

    def __init__(self, every: float = 0.1) -> None:
        self.peak, self.every, self.running = 0, every, True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        me = psutil.Process()
        while self.running:
            with contextlib.suppress(psutil.Error):  # a worker ended between listing and reading
                self.peak = max(self.peak, sum(p.memory_full_info().pss for p in [me, *me.children(recursive=True)]))
            time.sleep(self.every)

    def restart(self) -> float:
        """The peak so far (GB), and a new peak from now on."""
        peak, self.peak = self.peak, 0
        return peak / 2**30

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return self.peak / 2**30


def datamodule(corpus: Path, workers: int):
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.data.sources.loaders import Batching

    data = SFTDataModule(
        train_path=str(corpus / "*.jsonl"),
        tokenizer=str(TOKENIZER),
        format="text",
        streaming=True,
        max_seq_length=BLOCK,
        batching=Batching(batch_size=BATCH, num_workers=workers),
    )
    data.setup("fit")
    return data


def measure_pipeline(corpus: Path, workers: int, tokens: int) -> dict:
    """Stream `tokens` tokens as training would take them (each batch marked trained)."""
    import datasets

    datasets.disable_progress_bars()
    memory, start = PeakMemory(), time.perf_counter()
    loader = datamodule(corpus, workers).train_dataloader()
    read, first, first_half = 0, None, None
    for batch in loader:
        loader.trained.trained()
        read += int(batch["lengths"].sum())
        if first is None:
            first, after_first = time.perf_counter(), read
        if first_half is None and read >= tokens // 2:
            first_half = memory.restart()
        if read >= tokens:
            break
    seconds = time.perf_counter() - first
    second_half = memory.stop()
    return {
        "tokens": read,
        "tokens_per_s": (read - after_first) / seconds,
        "first_batch_s": first - start,
        "peak_pss_gb": max(first_half, second_half),
        "peak_pss_first_half_gb": first_half,
        "peak_pss_second_half_gb": second_half,
        "peak_rss_gb": report.peak_rss_gb(),
    }


def measure_training(corpus: Path, steps: int) -> dict:
    """The tiny model (configs/tiny.yaml) training on the stream: tokens/s over steps 2..`steps`."""
    import lightning
    import yaml

    from sftlab.model.causal_lm import HFCausalLM
    from sftlab.model.module import CausalLMModule

    times: list[float] = []

    class StepTimes(lightning.Callback):
        def on_train_batch_end(self, *args: object) -> None:
            times.append(time.perf_counter())

    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())["model"]["causal_lm"]["config"]
    module = CausalLMModule(causal_lm=HFCausalLM(config=config))
    trainer = lightning.Trainer(
        accelerator="cpu",
        precision="32-true",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepTimes()],
    )
    trainer.fit(module, datamodule=datamodule(corpus, workers=1))
    seconds = (times[-1] - times[0]) / (len(times) - 1)
    return {"s_per_step": seconds, "tokens_per_s": BLOCK * BATCH / seconds, "steps": steps}


def run(*args: str) -> dict:
    """One measurement in its own subprocess (its own peak memory, nothing cached in this process)."""
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], training: dict, tokens: int, load: str) -> str:
    lines = [
        "## Streaming pretraining data: the pipeline alone vs. the tiny model\n",
        f"Synthetic text, {SHARDS} JSON Lines shards, SmolLM2 tokenizer, {BLOCK}-token blocks, batches of {BATCH}; "
        f"{tokens / 1e6:g}M tokens streamed per run (each its own process). Load average (`uptime`) before the runs: {load}.\n",
        "| corpus | workers | tokens/s | first batch (s) | peak RSS, process (GB) | peak PSS, process + workers (GB): first half / second half |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['megabytes']:,} MB | {row['workers']} | {row['tokens_per_s']:,.0f} | {row['first_batch_s']:.1f} | "
            f"{row['peak_rss_gb']:.2f} | {row['peak_pss_first_half_gb']:.2f} / {row['peak_pss_second_half_gb']:.2f} |"
        )
    slowest = min(row["tokens_per_s"] for row in rows)
    by_size = {size: max(r["peak_pss_gb"] for r in rows if r["megabytes"] == size) for size in sorted({r["megabytes"] for r in rows})}
    sizes = list(by_size)
    lines += [
        "",
        f"The tiny model trains at {training['tokens_per_s']:,.0f} tokens/s ({training['s_per_step']:.2f} s per step of "
        f"{BATCH} x {BLOCK} tokens, fp32, 1 worker): the slowest pipeline setting above is {slowest / training['tokens_per_s']:,.0f}x "
        "faster, so the model, not the data, is the bottleneck.",
        f"Highest peak memory (PSS) of any worker setting: {by_size[sizes[0]]:.2f} GB with the {sizes[0]:,} MB corpus, "
        f"{by_size[sizes[-1]]:.2f} GB with the {sizes[-1]:,} MB one (ratio {by_size[sizes[-1]] / by_size[sizes[0]]:.2f}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="corpus sizes in MB")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tokens", type=int, default=8_000_000, help="tokens streamed per run")
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--results-dir", type=Path, default=report.RESULTS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # a subprocess: the pipeline on this corpus
    parser.add_argument("--train", type=Path, help=argparse.SUPPRESS)  # a subprocess: the tiny model on this corpus
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_pipeline(args.measure, args.workers[0], args.tokens)))
        return
    if args.train:
        print(json.dumps(measure_training(args.train, args.train_steps)))
        return
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg()) + f" (1/5/15 min, {os.cpu_count()} cores)"
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for megabytes in args.sizes:
            corpus = write_corpus(Path(workdir) / f"corpus-{megabytes}", megabytes)
            for workers in args.workers:
                row = run("--measure", str(corpus), "--workers", str(workers), "--tokens", str(args.tokens))
                rows.append({"megabytes": megabytes, "workers": workers, **row})
                print(rows[-1], flush=True)
            if megabytes == args.sizes[0]:
                training = run("--train", str(corpus), "--train-steps", str(args.train_steps))
                print(training, flush=True)
            shutil.rmtree(corpus)  # one corpus on disk at a time
    load += "; after: " + " / ".join(f"{value:.1f}" for value in os.getloadavg())
    figures = {"rows": rows, "training": training, "tokens_per_run": args.tokens, "load_average": load}
    print(report.save("streaming", figures, markdown(rows, training, args.tokens, load), args.results_dir))


if __name__ == "__main__":
    main()
