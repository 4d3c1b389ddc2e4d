"""Scaling: how sftlab's step time grows with sequence length and batch size, packed vs. padded.

Same model, data and timing as sft_throughput.py (each point is a subprocess run of it): the maximum
length varies at micro-batch 8, then the micro-batch at max length 512. Packed rows fill each row to
the maximum length, so their work per step grows with it; padded batches stop at the longest
example of the batch. The cost per 1,000 computed tokens shows whether attention's quadratic term
matters at these lengths.

    python benchmarks/scaling.py [--model tiny|smollm2|FOLDER] [--steps 4] [--lengths 256 512 1024]
        [--batch-sizes 4 8 16]

Writes benchmarks/results/scaling.json and rewrites benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import report
from sft_throughput import add_common_arguments, model_folder, picked_precision, run_in_subprocess


def markdown(model: str, steps: int, rows: list[dict]) -> str:
    lines = [
        f"## Scaling: sftlab step time vs. max length and micro-batch, {model}\n",
        f"alpaca_en_demo, {steps} optimizer steps per point (s/step over steps 2-{steps}).\n",
        "| max length | micro-batch | batches | computed tokens/step | padding | s/step | ms per 1k computed tokens | trainable tokens/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['max_length']} | {row['batch_size']} | {row['layout']} | {row['computed_per_step']:,.0f} | "
            f"{row['padding']:.1%} | {row['s_per_step']:.2f} | {1000 * row['s_per_step'] / row['computed_per_step'] * 1000:,.0f} | "
            f"{row['trainable_tokens_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, steps=4)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    args = parser.parse_args()
    points = [(length, 8) for length in args.lengths] + [(512, size) for size in args.batch_sizes if size != 8]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        folder, model = model_folder(args, Path(workdir))
        precision = picked_precision(folder)[0]
        for max_length, batch_size in points:
            for layout in ("padded", "packed"):
                row = run_in_subprocess(
                    f"sftlab_{layout}",
                    folder,
                    Path(workdir),
                    data=args.data,
                    steps=args.steps,
                    batch_size=batch_size,
                    max_length=max_length,
                    precision=precision,
                )
                rows.append({"max_length": max_length, "batch_size": batch_size, "layout": layout} | row)
                print(
                    f"length {max_length:>5} batch {batch_size:>3} {layout:<7} {row['s_per_step']:6.2f} s/step "
                    f"{row['computed_per_step']:8,.0f} tokens/step",
                    flush=True,
                )
    section = markdown(model, args.steps, rows)
    target = report.save("scaling", {"model": model, "rows": rows}, section, Path(args.results_dir))
    print(section)
    print(f"written: {target}")


if __name__ == "__main__":
    main()
