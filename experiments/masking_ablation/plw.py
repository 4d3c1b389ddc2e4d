"""The prompt-loss-weight study (`--setting plw`): does a small loss on the prompt help, as Huerta-Enochian
& Ko (2024) and Shi et al. (2024) report for short completions?

Two training sets, each with its own held-out split, trained with `data.prompt_loss_weight` w for several
epochs under the `assistant` masking (w = 0 is plain prompt-masked SFT, w = 1 trains every token alike):

- `short`: sftlab's own classification and extraction tasks, ~115-token prompts and one-word answers
  (`short_answers.py`; held-out questions ask about words no training record has);
- `long`: the Alpaca records of `tests/data/files/data/alpaca_en_demo.json` (it ships; CC BY-NC 4.0,
  research only) whose output has 80 to 200 words: ~45-token prompts, ~180-token answers.

Every run of a seed trains on the very same packed rows in the same order from the same LoRA
initialisation; only the prompt tokens' weight differs. After every epoch `epochs.HeldoutEachEpoch`
scores the held-out split and a sample of the training set (answer loss, prompt loss, exact match of
greedy answers), so a run is a curve over epochs. Layout: `<root>/data/<set>/{train,heldout,train_sample}.jsonl`,
`<root>/base/result.json` (the untrained model), `<root>/<budget>/<set>/w<w>/seed<k>/{config.yaml,
epochs.jsonl, result.json, tb/}`; a run with a `result.json` is not repeated.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.masking_ablation.runner import REPO, Budget, Study, deep_merge, fit, scalars
from experiments.masking_ablation.short_answers import short_answer_records
from sftlab.artifacts import write_text_atomic

SETS = ("short", "long")
WEIGHTS = (0.0, 0.01, 0.1, 0.5, 1.0)
ALPACA = REPO / "tests/data/files/data/alpaca_en_demo.json"
LONG_WORDS = (80, 200)  # an Alpaca record is "long" when its output has this many words


@dataclass(frozen=True)
class PlwSizes:
    """Records per set: trained on, held out (scored after every epoch), and the training records scored
    beside them (the first few: how well the model fits what it trains on)."""

    train: dict[str, int]
    heldout: dict[str, int]
    train_sample: int


PLW_SIZES = {
    "plw_smoke": PlwSizes(train={"short": 10, "long": 6}, heldout={"short": 5, "long": 3}, train_sample=3),
    "plw": PlwSizes(train={"short": 32, "long": 16}, heldout={"short": 30, "long": 10}, train_sample=5),
}


def weight_name(weight: float) -> str:
    return f"w{weight:g}"


def alpaca_messages(record: dict[str, str]) -> dict[str, Any]:
    user = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]}


def long_records() -> list[dict[str, Any]]:
    """The shipped Alpaca records whose outputs have LONG_WORDS words, in file order, as `messages` records."""
    low, high = LONG_WORDS
    return [alpaca_messages(r) for r in json.loads(ALPACA.read_text()) if low <= len(r["output"].split()) <= high]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def prepare_plw_data(setting: str, folder: Path) -> dict[str, Path]:
    """Write (once) and return `<set>/train`, `<set>/heldout` and `<set>/train_sample` for both sets."""
    sizes = PLW_SIZES[setting]
    paths = {f"{name}/{part}": folder / name / f"{part}.jsonl" for name in SETS for part in ("train", "heldout", "train_sample")}
    if all(path.is_file() for path in paths.values()):
        return paths
    splits = {"short": (short_answer_records(sizes.train["short"], "train"), short_answer_records(sizes.heldout["short"], "heldout"))}
    long = long_records()
    random.Random(0).shuffle(long)
    held = sizes.heldout["long"]
    if held + sizes.train["long"] > len(long):
        raise ValueError(f"{ALPACA} has {len(long)} long records, fewer than {held + sizes.train['long']}")
    splits["long"] = (long[held : held + sizes.train["long"]], long[:held])
    for name, (train, heldout) in splits.items():
        _write_jsonl(paths[f"{name}/train"], train)
        _write_jsonl(paths[f"{name}/heldout"], heldout)
        _write_jsonl(paths[f"{name}/train_sample"], train[: sizes.train_sample])
    return paths


def scored_sets(paths: dict[str, Path], name: str) -> dict[str, str]:
    return {"heldout": str(paths[f"{name}/heldout"]), "train_sample": str(paths[f"{name}/train_sample"])}


def plw_config(study: Study, name: str, weight: float, seed: int, budget: Budget, paths: dict[str, Path]) -> dict[str, Any]:
    """The whole `sftlab fit` config of one run: the setting's, the set, the weight, the seed, the budget."""
    run = study.root / budget.name / name / weight_name(weight) / f"seed{seed}"
    config = study.base_config()
    cache = str(study.root / "cache")
    scorer = {
        "class_path": "experiments.masking_ablation.epochs.HeldoutEachEpoch",
        "init_args": {
            "sets": scored_sets(paths, name),
            "output": str(run / "epochs.jsonl"),
            "max_seq_length": config["data"]["max_seq_length"],
            "cache_dir": cache,
        },
    }
    if budget.kind == "tokens":  # every weight trains the same answer tokens per step: steps are as fair
        raise ValueError("--setting plw: give --budget epochs:N or steps:N (every weight trains the same answer tokens per step)")
    length = {"max_epochs": budget.amount, "max_steps": -1} if budget.kind == "epochs" else {"max_epochs": None, "max_steps": budget.amount}
    logger = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": str(run), "name": "tb", "version": ""}}
    settings = {
        "seed_everything": seed,
        "data": {"seed": seed, "train_path": str(paths[f"{name}/train"]), "prompt_loss_weight": weight, "cache_dir": cache},
        "trainer": {**length, "default_root_dir": str(run), "logger": logger, "callbacks": [scorer]},
    }
    return deep_merge(config, settings)


def run_plw_one(study: Study, name: str, weight: float, seed: int, budget: Budget, paths: dict[str, Path]) -> dict[str, Any]:
    run = study.root / budget.name / name / weight_name(weight) / f"seed{seed}"
    done = run / "result.json"
    if done.is_file():
        print(f"[{budget.name}/{name}/{weight_name(weight)}/seed{seed}] done before", file=sys.stderr)
        return json.loads(done.read_text())
    wall = fit(run, plw_config(study, name, weight, seed, budget, paths))
    epochs = [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]
    per_step = scalars(run / "tb", "train/trainable_tokens")
    result = {"set": name, "weight": weight, "seed": seed, "budget": budget.name, "wall_s": round(wall, 1), "steps": len(per_step)}
    result |= {"trainable_tokens": int(sum(value for _, value in per_step)), "epochs": epochs}
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    return result


def plw_base_result(study: Study, paths: dict[str, Path]) -> dict[str, Any]:
    """The untrained model (epoch 0 of every run: LoRA starts as the identity) on each set's scored files."""
    done = study.root / "base/result.json"
    if done.is_file():
        return json.loads(done.read_text())
    source = study.model or study.base_config()["model"]["causal_lm"].get("source")
    if source is None:  # the smoke model is random: there is no untrained model to load
        return {}
    from experiments.masking_ablation.epochs import labelled_sets, score_labelled
    from sftlab.model.loading import load_causal_lm

    data = study.base_config()["data"]
    model = load_causal_lm(source).eval()
    result: dict[str, Any] = {"epoch": 0, "step": 0}
    for name in SETS:
        sets = labelled_sets(
            scored_sets(paths, name), data["tokenizer"] or source, data["template"], data["max_seq_length"], str(study.root / "cache")
        )
        result[name] = {part: score_labelled(model, answers, prompts) for part, (answers, prompts) in sets.items()}
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    return result


def run_plw(
    study: Study, sets: tuple[str, ...], weights: tuple[float, ...], seeds: tuple[int, ...], budget: Budget
) -> list[dict[str, Any]]:
    """Run (or reuse) every set x weight x seed under `budget`, seed by seed (an interrupted study has
    whole seeds); the results of this budget's runs."""
    paths = prepare_plw_data(study.setting, study.root / "data")
    plw_base_result(study, paths)
    return [run_plw_one(study, name, weight, seed, budget, paths) for seed in seeds for name in sets for weight in weights]
