"""`sftlab fit|validate|test|predict`: Lightning's CLI over `CausalLMModule` and `SFTDataModule`.

Subclass mode: a config may name its own module or datamodule by `class_path` (with `init_args`),
or give the built-in ones' arguments directly. Two things jsonargparse links cannot express here
(its links do not reach `init_args` of subclass-mode sections) are done before instantiation:
`data.tokenizer` defaults to `model.source` (the tokenizer follows the model), and `Checkpoints`
callbacks get their folder before Lightning resolves `--ckpt_path last`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningCLI

from sftlab.data.datamodule import SFTDataModule
from sftlab.errors import SftlabError
from sftlab.model.checkpoints import Checkpoints
from sftlab.model.module import CausalLMModule
from sftlab.model.restore import read_checkpoint

log = logging.getLogger(__name__)


def tokenizer_follows_model(data: Any, model: Any) -> None:
    """Set `data.tokenizer` (a config namespace or dict) to `model.source` when it is not given."""
    data_args = data.get("init_args", data) if hasattr(data, "get") else data
    model_args = model.get("init_args", model) if hasattr(model, "get") else model
    if data_args is not None and data_args.get("tokenizer") is None and model_args:
        data_args["tokenizer"] = model_args.get("source")


def cpu_computes_bf16() -> bool:
    """True on CPUs with AMX-BF16 tiles (Intel Sapphire Rapids and later). On such a CPU (2 cores) a
    (4096x768)@(768x768) product took 2 ms in bf16 vs. 15 ms in float32, and sftlab's packed training
    step 1.34 s in bf16-mixed vs. 1.77 s in float32 (benchmarks/RESULTS.md). Without AMX, bf16 is
    emulated: on an AVX2 machine TRL's bf16 default ran 5x slower than float32 (issue 10)."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def native_precision(accelerator: str | None) -> tuple[str, str]:
    """The precision this machine computes fastest natively, and why: bf16-mixed (float32 weights,
    bf16 products) on CUDA GPUs with bf16 and on CPUs with AMX-BF16; float32 elsewhere."""
    gpu = accelerator in ("auto", "gpu", "cuda", None) and torch.cuda.is_available()
    if gpu:
        return ("bf16-mixed", "this GPU computes bf16") if torch.cuda.is_bf16_supported() else ("32-true", "this GPU has no bf16")
    if accelerator in ("auto", "cpu", None) and cpu_computes_bf16():
        return "bf16-mixed", "this CPU computes bf16 natively (AMX)"
    return "32-true", "no native bf16 here (bf16 would be emulated, several times slower)"


def pick_precision(trainer: Any) -> None:
    """Unset `trainer.precision` becomes `native_precision`, and the log says which and why."""
    if trainer.get("precision") is None:
        trainer["precision"], why = native_precision(trainer.get("accelerator"))
        log.info("trainer.precision: %s (%s; set trainer.precision to choose)", trainer["precision"], why)


class SftlabCLI(LightningCLI):
    def __init__(self, args: list[str]) -> None:
        super().__init__(
            CausalLMModule,
            SFTDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
        )

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the hyperparameters of an explicit --ckpt_path file here, before any hook:
        # a missing or corrupt file must be a clear error, not an unpickling traceback. (`last` and
        # Lightning's other names are resolved in before_fit.)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES and (problem := readable_checkpoint(Path(ckpt_path))):
            raise SftlabError(f"ckpt_path: cannot resume from {ckpt_path}: {problem}")
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        tokenizer_follows_model(config.data, config.model)
        pick_precision(config.trainer)

    def before_fit(self) -> None:
        folders = [
            Path(callback.resolve_dirpath(self.trainer))
            for callback in self.trainer.checkpoint_callbacks
            if isinstance(callback, Checkpoints)
        ]
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path"):
            config["ckpt_path"] = usable_checkpoint(config["ckpt_path"], folders)


LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def readable_checkpoint(path: Path) -> str | None:
    """None when `path` loads as a Lightning training checkpoint, else why not."""
    try:
        saved = read_checkpoint(path)
    except SftlabError as err:
        return str(err)
    if "state_dict" not in saved or "loops" not in saved:
        return "not a Lightning training checkpoint"
    return None


def usable_checkpoint(ckpt_path: str, folders: list[Path]) -> str | None:
    """The checkpoint to resume from. `last`: `last.ckpt`, or when it is corrupt or partial, the newest
    readable `step-*.ckpt` (said in the log); no checkpoint at all starts from scratch (so a requeued
    job can always pass `--ckpt_path last`); only unreadable ones are an error. Explicit paths were
    checked when parsed (`_parse_ckpt_path`)."""
    if ckpt_path != "last" or not folders:
        return ckpt_path
    candidates = [folder / "last.ckpt" for folder in folders]
    candidates += sorted((p for folder in folders for p in folder.glob("step-*.ckpt")), key=lambda p: p.stat().st_mtime, reverse=True)
    candidates = [p for p in candidates if p.is_file()]
    if not candidates:
        log.info("ckpt_path last: no checkpoint in %s yet: starting from scratch", ", ".join(map(str, folders)))
        return None
    for candidate in candidates:
        problem = readable_checkpoint(candidate)
        if problem is None:
            log.info("resuming from %s", candidate)
            return str(candidate)
        log.warning("checkpoint %s is corrupt or partial (%s): trying the previous one", candidate, problem)
    raise SftlabError(
        f"ckpt_path last: no readable checkpoint in {', '.join(map(str, folders))} ({len(candidates)} found, all corrupt or partial)"
    )
