"""Config keys and class paths that moved when the model side became injectable (issue 15) and when the
data side was taken apart into typed parts (issue 24): a config written for the earlier layout is a
one-line error naming the new key, never a run that silently means something else. Checked on the command
line and in `--config` files before jsonargparse parses them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from sftlab.errors import SftlabError

BUILDER_KEYS = (
    "source",
    "revision",
    "config",
    "dtype",
    "attn_implementation",
    "init_seed",
    "lora",
    "gradient_checkpointing",
    "trust_remote_code",
)

MOVED_MODEL_KEYS = {
    **{key: f"model.causal_lm.{key}" for key in BUILDER_KEYS},
    "learning_rate": "optimizer.lr (--optimizer.lr 2e-5; or another optimizer: --optimizer torch.optim.SGD --optimizer.lr 0.1)",
    "weight_decay": "optimizer.weight_decay (--optimizer.weight_decay; biases and norms are never decayed)",
    "warmup_ratio": "lr_scheduler.warmup_ratio (--lr_scheduler.warmup_ratio)",
    "schedule": "lr_scheduler.decay (--lr_scheduler.decay cosine|linear|constant)",
    "optimizer": "optimizer, at the top level (--optimizer CLASS, --optimizer.lr ...)",
    "lr_scheduler": "lr_scheduler, at the top level (--lr_scheduler CLASS, --lr_scheduler.warmup_ratio ...)",
    "max_nonfinite_steps": "the callback sftlab.training.guard.NonFiniteGuard (init_args: max_in_a_row)",
    "peak_flops": "the callback sftlab.training.throughput.Throughput (init_args: peak_flops)",
}

MOVED_DATA_KEYS = {
    **{key: f"data.batching.{key}" for key in ("batch_size", "group_by_length", "num_workers", "pad_to_multiple_of")},
    "text_field": "data.fields (e.g. --data.fields '{text: content}': sftlab's field name mapped to the data's)",
}

MOVED_CLASSES = {
    "sftlab.model.checkpoints.Checkpoints": "sftlab.training.checkpoints.Checkpoints",
    "sftlab.model.export.HFExport": "sftlab.training.export.HFExport",
    "sftlab.model.samples.SampleAnswers": "sftlab.training.samples.SampleAnswers",
    "sftlab.model.strategies.DecoderLayerFSDP": "sftlab.training.strategies.FSDP2 (--trainer.strategy fsdp2)",
    "sftlab.training.strategies.DecoderLayerFSDP": "sftlab.training.strategies.FSDP2 (--trainer.strategy fsdp2)",
}


# The data package grouped by stage (issue 24): a class path into an old module names its new home.
MOVED_DATA_MODULES = {
    **{f"sftlab.data.{old}.": f"sftlab.data.formats.{old}." for old in ("files", "records", "readers")},
    **{f"sftlab.data.{old}.": f"sftlab.data.rendering.{old}." for old in ("templates", "chat_template", "template_probes", "spans")},
    **{f"sftlab.data.{old}.": f"sftlab.data.labels.{old}." for old in ("masking", "tokenize", "packing", "collate", "tally", "anatomy")},
    **{f"sftlab.data.{old}.": f"sftlab.data.sources.{old}." for old in ("build", "mixture", "loaders", "sampler", "identity", "report")},
}
# sources.py became the package sources/; its names went to sources/specs.py.
MOVED_SOURCE_NAMES = ("Source", "SourceSpec", "StoppingStrategy", "split_sources")


def moved_class(text: str) -> str | None:
    """The new class path of a class path that moved, else None."""
    if text in MOVED_CLASSES:
        return MOVED_CLASSES[text]
    for old, new in MOVED_DATA_MODULES.items():
        rest = text.removeprefix(old)
        if rest != text and rest.isidentifier():
            return new + rest
    if text.removeprefix("sftlab.data.sources.") in MOVED_SOURCE_NAMES:
        return text.replace("sftlab.data.sources.", "sftlab.data.sources.specs.")
    return None


def _moved(key: str) -> str:
    return f"model.{key} moved to {MOVED_MODEL_KEYS[key]}"


def _moved_data(key: str, where: str = "data") -> str:
    return f"{where}.{key} moved to {MOVED_DATA_KEYS[key]}"


def _check_data_section(data: Any, path: Path) -> None:
    arguments = data.get("init_args") if isinstance(data.get("init_args"), dict) else data
    for key in arguments:
        if key in MOVED_DATA_KEYS:
            raise SftlabError(f"{path}: {_moved_data(key)}")
    for index, source in enumerate(arguments.get("sources") or []):
        if isinstance(source, dict) and "text_field" in source:
            raise SftlabError(f"{path}: data.sources[{index}].text_field moved to data.sources[{index}].fields ({{text: NAME}})")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def check_config_file(path: Path) -> None:
    """Raise a SftlabError for a moved key or class path in a YAML config (a missing or unparsable file is
    left to jsonargparse, which names it)."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return
    if not isinstance(config, dict):
        return
    model = config.get("model")
    if isinstance(model, dict):
        arguments = model.get("init_args") if isinstance(model.get("init_args"), dict) else model
        for key in arguments:
            if key in MOVED_MODEL_KEYS:
                raise SftlabError(f"{path}: {_moved(key)}")
    if isinstance(config.get("data"), dict):
        _check_data_section(config["data"], path)
    for text in _strings(config):
        if new := moved_class(text):
            raise SftlabError(f"{path}: {text} moved to {new}")


def check_moved_keys(argv: list[str]) -> None:
    """Raise a SftlabError naming the new key for any moved key among `argv`'s flags and config files."""
    for index, argument in enumerate(argv):
        flag = argument.split("=", 1)[0]
        if flag.startswith("--model."):
            key = flag.removeprefix("--model.").removeprefix("init_args.").split(".", 1)[0]
            if key in MOVED_MODEL_KEYS:
                raise SftlabError(_moved(key))
        if flag.startswith("--data."):
            key = flag.removeprefix("--data.").removeprefix("init_args.").split(".", 1)[0]
            if key in MOVED_DATA_KEYS:
                raise SftlabError(_moved_data(key))
        if flag == "--config":
            path = argument.split("=", 1)[1] if "=" in argument else (argv[index + 1] if index + 1 < len(argv) else "")
            check_config_file(Path(path))
        elif new := moved_class(argument.split("=", 1)[-1]):
            raise SftlabError(f"{argument} moved to {new}")
