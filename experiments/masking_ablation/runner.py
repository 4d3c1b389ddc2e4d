"""The masking ablation: one `sftlab fit` per strategy, seed and budget from one base config, each trained
model scored on the same held-out data; summarised by report.py.

Fairness: every run of a seed has the same base model, LoRA initialisation, data order, dropout draws,
optimizer and schedule (`seed_everything` and `data.seed` are the seed; strategies that keep the same
examples pack them into the very same rows). What differs is which tokens are labels and how much each
counts. A budget is equal in optimizer steps (`steps:N`) or in trainable tokens (`tokens:N`: the fit
stops at N labels with `sftlab.training.budget.TokenBudget`, and its schedule is planned to end about
there). Validation during training uses one masking for all runs (`val_masking: assistant`), so curves
are comparable.

Resumable: a run whose `result.json` exists is not repeated (a half-done run starts over); `--fresh`
deletes everything first. Layout: `<root>/data/`, `<root>/base/result.json` (the untrained model),
`<root>/<budget>/<strategy>/seed<k>/{config.yaml, result.json, tb/, hf/}`.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments.masking_ablation.sources import SOURCES, prepare_data
from sftlab.artifacts import write_text_atomic

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STRATEGIES = tuple(sorted(path.stem for path in (HERE / "configs/strategies").glob("*.yaml")))
HEADROOM = 1.1  # token budgets: the schedule is planned 10% longer than the expected steps, so N is reached


@dataclass(frozen=True)
class Budget:
    kind: str  # "steps" or "tokens"
    amount: int

    @classmethod
    def parse(cls, text: str) -> Budget:
        kind, _, amount = text.partition(":")
        if kind not in ("steps", "tokens") or not amount.isdigit() or int(amount) <= 0:
            raise ValueError(f"--budget: expected steps:N or tokens:N with N > 0, got {text!r}")
        return cls(kind, int(amount))

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.amount}"


@dataclass(frozen=True)
class Study:
    """What every run of one invocation shares."""

    setting: str  # smoke | real: configs/<setting>.yaml and the data sizes
    root: Path
    model: str | None = None  # model.causal_lm.source (real setting)
    judge: Any = None  # a sftlab.evaluation.judge.Judge for the MT-bench column
    mtbench_limit: int = 10
    max_new_tokens: int = 80  # for the reasoning answers

    def base_config(self) -> dict[str, Any]:
        config = yaml.safe_load((HERE / f"configs/{self.setting}.yaml").read_text())
        data = config["data"]
        data["template"] = str(REPO / data["template"])
        if data.get("tokenizer"):
            data["tokenizer"] = str((REPO / data["tokenizer"]).resolve())
        if self.model:
            config = deep_merge(config, {"model": {"causal_lm": {"source": self.model}}})
        return config


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def strategy_config(study: Study, strategy: str) -> dict[str, Any]:
    return deep_merge(study.base_config(), yaml.safe_load((HERE / f"configs/strategies/{strategy}.yaml").read_text()))


def trainable_tokens_per_step(config: dict[str, Any], train: Path, cache: Path) -> float:
    """The mean trainable tokens of an optimizer step under `config`'s data settings (from the data report)."""
    from jsonargparse import ArgumentParser

    from sftlab.data.datamodule import SFTDataModule

    parser = ArgumentParser()
    parser.add_class_arguments(SFTDataModule, "data")
    settings = {**config["data"], "train_path": str(train), "val_path": None, "cache_dir": str(cache)}
    settings["tokenizer"] = settings.get("tokenizer") or config["model"]["causal_lm"]["source"]
    data = parser.instantiate(parser.parse_object({"data": settings})).data
    _, report = data.build("train")
    rows_per_step = data.batching.batch_size * config["trainer"].get("accumulate_grad_batches", 1)
    return report.trainable_tokens / (report.rows or report.kept) * rows_per_step


def run_config(study: Study, strategy: str, seed: int, budget: Budget, paths: dict[str, Path]) -> dict[str, Any]:
    """The whole `sftlab fit` config of one run."""
    config = strategy_config(study, strategy)
    run = study.root / budget.name / strategy / f"seed{seed}"
    callbacks: list[dict[str, Any]] = [{"class_path": "sftlab.training.export.HFExport", "init_args": {"dirpath": str(run / "hf")}}]
    steps = budget.amount
    if budget.kind == "tokens":
        per_step = trainable_tokens_per_step(config, paths["train"], study.root / "cache")
        steps = math.ceil(HEADROOM * budget.amount / per_step)
        callbacks.append({"class_path": "sftlab.training.budget.TokenBudget", "init_args": {"max_trainable_tokens": budget.amount}})
    logger = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": str(run), "name": "tb", "version": ""}}
    run_settings = {
        "seed_everything": seed,
        "data": {"seed": seed, "train_path": str(paths["train"]), "val_path": str(paths["curve"]), "cache_dir": str(study.root / "cache")},
        "trainer": {
            "max_steps": steps,
            "val_check_interval": max(1, steps // 3),
            "default_root_dir": str(run),
            "logger": logger,
            "callbacks": callbacks,
        },
    }
    return deep_merge(config, run_settings)


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def training_record(log_dir: Path) -> dict[str, Any]:
    """Steps, trainable tokens and the validation curve `[optimizer steps, trainable tokens so far, loss]`
    of a finished fit (a validation logged at step s follows optimizer step s + 1)."""
    per_step = scalars(log_dir, "train/trainable_tokens")
    so_far = {step: sum(value for logged, value in per_step if logged <= step) for step, _ in per_step}
    curve = [[step + 1, int(so_far.get(step, 0)), round(loss, 5)] for step, loss in scalars(log_dir, "val/loss")]
    return {"steps": len(per_step), "trainable_tokens": int(sum(value for _, value in per_step)), "curve": curve}


def fit(run: Path, config: dict[str, Any]) -> float:
    """Run `sftlab fit` on `config` in a fresh folder; its wall time in seconds."""
    shutil.rmtree(run, ignore_errors=True)  # a run without result.json is a half-done one: start it over
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(run / "config.yaml")]
    print(f"[{run.relative_to(run.parents[2])}] {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"{run}: sftlab fit failed:\n{finished.stderr[-3000:]}")
    (run / "fit.log").write_text(finished.stderr)
    return time.perf_counter() - started


def evaluate(study: Study, model: str, paths: dict[str, Path], max_seq_length: int, curve: bool) -> dict[str, Any]:
    """Held-out losses per source (with `curve`, also on the validation split), reasoning accuracy and
    (with a judge) the MT-bench rating of a model."""
    from experiments.masking_ablation.heldout import SOURCE_METRICS, mtbench_rating, reasoning_accuracy, score_source
    from sftlab.inference.loading import load_for_inference

    template = study.base_config()["data"]["template"]
    loaded = load_for_inference(model, template=template)
    cache = study.root / "cache"
    heldout = {name: score_source(loaded, paths[f"heldout/{name}"], SOURCE_METRICS[name], max_seq_length, cache) for name in SOURCES}
    if curve:
        heldout["curve"] = score_source(loaded, paths["curve"], ("assistant",), max_seq_length, cache)
    metrics = {"heldout": heldout, "reasoning": reasoning_accuracy(loaded, paths["heldout/reasoning"], study.max_new_tokens)}
    if study.judge is not None:
        metrics["mtbench"] = mtbench_rating(loaded, study.judge, study.mtbench_limit, max_new_tokens=256)
    return metrics


def run_one(study: Study, strategy: str, seed: int, budget: Budget, paths: dict[str, Path]) -> dict[str, Any]:
    run = study.root / budget.name / strategy / f"seed{seed}"
    done = run / "result.json"
    if done.is_file():
        print(f"[{budget.name}/{strategy}/seed{seed}] done before", file=sys.stderr)
        return json.loads(done.read_text())
    config = run_config(study, strategy, seed, budget, paths)
    wall = fit(run, config)
    result = {"strategy": strategy, "seed": seed, "budget": budget.name, "wall_s": round(wall, 1), **training_record(run / "tb")}
    ended_between_validations = not result["curve"] or result["curve"][-1][0] != result["steps"]  # a token budget's end
    result |= evaluate(study, str(run / "hf"), paths, config["data"]["max_seq_length"], curve=ended_between_validations)
    if ended_between_validations:
        result["curve"].append([result["steps"], result["trainable_tokens"], result["heldout"]["curve"]["assistant"]["loss"]])
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    shutil.rmtree(run / "hf")  # the adapter is not needed again, and a study has many of them
    return result


def base_result(study: Study, paths: dict[str, Path]) -> dict[str, Any]:
    """The untrained model on the same held-out data (and the curves' starting point): the reference."""
    done = study.root / "base/result.json"
    if done.is_file():
        return json.loads(done.read_text())
    config = study.base_config()
    source = study.model or config["model"]["causal_lm"].get("source")
    if source is None:  # the smoke model is random: there is no untrained model to load
        return {}
    max_seq_length = config["data"]["max_seq_length"]
    result = {
        "strategy": "base (untrained)",
        "steps": 0,
        "trainable_tokens": 0,
        **evaluate(study, source, paths, max_seq_length, curve=True),
    }
    result["curve"] = [[0, 0, result["heldout"]["curve"]["assistant"]["loss"]]]
    write_text_atomic(done, json.dumps(result, indent=1) + "\n")
    return result


def run_ablation(study: Study, strategies: tuple[str, ...], seeds: tuple[int, ...], budget: Budget) -> list[dict[str, Any]]:
    """Run (or reuse) every strategy x seed under `budget`, seed by seed (so an interrupted study has
    whole seeds); the results of this budget's runs."""
    paths = prepare_data(study.setting, study.root / "data")
    base_result(study, paths)
    return [run_one(study, strategy, seed, budget, paths) for seed in seeds for strategy in strategies]
