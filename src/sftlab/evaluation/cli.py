"""`sftlab eval mtbench` and `sftlab eval ppl`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jsonargparse import ArgumentParser
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from sftlab.artifacts import write_jsonl_atomic, write_text_atomic
from sftlab.data.labels.masking import STRATEGIES
from sftlab.errors import SftlabError
from sftlab.evaluation.judge import Judge
from sftlab.inference.cli import add_loading_arguments, add_model_arguments, load_generator, load_model


def mtbench_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="sftlab eval mtbench", description="Answer the MT-bench questions; grade them with a judge endpoint.", exit_on_error=False
    )
    add_model_arguments(parser)
    parser.set_defaults(max_new_tokens=512)
    parser.add_argument("--questions", type=str | None, default=None, help="A question.jsonl (default: the 80 that ship with sftlab).")
    parser.add_argument("--limit", type=int | None, default=None, help="Only the first N questions.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output", type=str, default="runs/mtbench", help="Folder for answers.jsonl, judgments.jsonl, summary.json.")
    parser.add_argument(
        "--judge",
        type=Judge | None,
        default=None,
        help="Grade every answer with an LLM judge: --judge.base_url URL --judge.model NAME; all its options: --judge.help Judge.",
    )
    return parser


def summary_table(summary: dict) -> Table:
    table = Table(title="MT-bench (single-answer grading, 1-10)")
    for column in ("category", "turn 1", "turn 2", "mean", "rated", "failed"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for name, row in summary.items():
        cells = [row["turn_1"], row["turn_2"], row["mean"]]
        table.add_row(name, *("-" if v is None else f"{v:.2f}" for v in cells), str(row["rated"]), str(row["failed"]))
    return table


def mtbench_command(argv: list[str]) -> None:
    from sftlab.evaluation.mtbench import answer_questions, judge_answers, load_questions, summarize, summary_json

    parser = mtbench_parser()
    config = parser.instantiate(parser.parse_args(argv))
    questions = load_questions(Path(config.questions) if config.questions else None)[: config.limit]
    output = Path(config.output)
    generator = load_generator(config, config.batch_size)
    with tqdm(total=sum(len(q.turns) for q in questions), desc="answering", unit="answer", file=sys.stderr) as bar:
        rows = answer_questions(generator, questions, config.model, config.system, progress=bar.update)
    write_jsonl_atomic(output / "answers.jsonl", rows)
    print(f"answers: {output / 'answers.jsonl'} ({len(rows)} questions)", file=sys.stderr)
    if config.judge is None:
        return
    with tqdm(total=sum(len(r["answers"]) for r in rows), desc="judging", unit="answer", file=sys.stderr) as bar:
        judgments = judge_answers(config.judge, rows, questions, progress=bar.update)
    write_jsonl_atomic(output / "judgments.jsonl", judgments)
    summary = summarize(judgments)
    write_text_atomic(output / "summary.json", summary_json(summary))
    Console().print(summary_table(summary))
    failed = summary["overall"]["failed"]
    if failed:
        print(f"{failed} answer(s) got no rating (see 'error' in {output / 'judgments.jsonl'})", file=sys.stderr)


def ppl_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="sftlab eval ppl", description="Loss and perplexity on held-out conversations, per masking strategy.")
    add_loading_arguments(parser)
    parser.add_argument("--data", type=str, required=True, help="Held-out data (any training format; file, folder or glob).")
    parser.add_argument("--format", type=str, default="auto")
    parser.add_argument(
        "--masking",
        type=str,
        nargs="+",
        default=["assistant"],
        help="One or more masking strategies (prompt: the non-assistant tokens).",
    )
    parser.add_argument("--max_seq_length", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--cache_dir", type=str | None, default=None)
    parser.add_argument("--output", type=str | None, default=None, help="A JSON file for the results.")
    return parser


def ppl_command(argv: list[str]) -> None:
    from sftlab.evaluation.perplexity import evaluate_strategy

    config = ppl_parser().parse_args(argv)
    unknown = [m for m in config.masking if m not in STRATEGIES]
    if unknown:
        raise SftlabError(f"--masking: unknown strategy {unknown[0]!r} ({', '.join(STRATEGIES)})")
    loaded = load_model(config)
    settings = (config.max_seq_length, config.batch_size, config.format, config.cache_dir, config.device)
    results = [evaluate_strategy(loaded, config.data, masking, *settings) for masking in config.masking]
    table = Table(title=f"held-out: {config.data}")
    for column in results[0]:
        table.add_column(column)
    for row in results:
        table.add_row(*(str(value) for value in row.values()))
    Console(stderr=True).print(table)
    text = json.dumps(results, indent=1) + "\n"
    if config.output:
        write_text_atomic(Path(config.output), text)
    sys.stdout.write(text)


EVAL_COMMANDS = {"mtbench": mtbench_command, "ppl": ppl_command}


def eval_command(argv: list[str]) -> None:
    if not argv or argv[0] not in EVAL_COMMANDS:
        raise SftlabError(f"eval: expected one of {', '.join(EVAL_COMMANDS)}: sftlab eval mtbench|ppl --help")
    EVAL_COMMANDS[argv[0]](argv[1:])
