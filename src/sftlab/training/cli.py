"""`sftlab fit|validate|test|predict`: Lightning's CLI over `CausalLMModule` and `SFTDataModule`.

Subclass mode: a config may name its own module or datamodule by `class_path` (with `init_args`), or give
the built-in ones' arguments directly. Lightning's public hooks do the rest:
- `parse_arguments`: moved config keys are one-line errors; an explicit `--ckpt_path` file must be a
  readable training checkpoint before Lightning reads its hyperparameters.
- `before_instantiate_classes`: `data.tokenizer` defaults to `model.causal_lm.source` (the tokenizer follows
  the model; jsonargparse links do not reach `init_args` of subclass-mode sections), an unset
  `trainer.precision` becomes the one a probe of the model's shapes finds fastest here (precision.py), a
  strategy name Lightning does not know is a one-line error (importing training/strategies.py registers `fsdp2`), and a top-level `--optimizer` /
  `--lr_scheduler` (Lightning's usual flags) becomes the module's injected factory, so the parameter groups and the
  run-length of the schedule are kept (Lightning's automatic optimizer would replace them silently).
- `instantiate_trainer`: sftlab's default callbacks (non-finite guard, throughput, data report, progress
  bar) and atomic checkpoint files, unless the config already has its own of each kind.
- `before_fit`: the run folder is locked (one run per `default_root_dir`, see lock.py), packed rows are checked
  against the model (`check_packing`), and `--ckpt_path last` resolved (a corrupt last checkpoint falls back to
  the newest good one).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, LRSchedulerTypeTuple, SaveConfigCallback
from lightning.pytorch.plugins.io import CheckpointIO
from torch.optim import Optimizer

from sftlab.artifacts import write_text_atomic
from sftlab.data.datamodule import SFTDataModule
from sftlab.hub import is_hub_id
from sftlab.model.module import CausalLMModule
from sftlab.model.optim import DEFAULT_LR_SCHEDULER, DEFAULT_OPTIMIZER
from sftlab.training.checkpoints import AtomicCheckpointIO, Checkpoints
from sftlab.training.guard import NonFiniteGuard
from sftlab.training.lock import lock_run_folder
from sftlab.training.moved_keys import check_moved_keys
from sftlab.training.precision import pick_precision
from sftlab.training.preemption import Preemption
from sftlab.training.progress import StepProgressBar
from sftlab.training.reports import DataReportLogger
from sftlab.training.resume import check_explicit_checkpoint, usable_checkpoint
from sftlab.training.settings_check import check_optimization, check_trainer
from sftlab.training.strategies import check_strategy_name
from sftlab.training.throughput import Throughput

DEFAULT_CALLBACKS = (NonFiniteGuard, Throughput, DataReportLogger, Preemption)


def _arguments(section: Any) -> Any:
    """The init arguments of a config section (a subclass-mode namespace or plain arguments)."""
    return section.get("init_args", section) if hasattr(section, "get") else section


def check_packing(module: LightningModule, datamodule: Any) -> None:
    """Packed rows for a model that cannot keep their examples apart (packing.py): a one-line error before any
    data is read. The measurement needs the model, so it is built here; Lightning then finds it built."""
    if not isinstance(module, CausalLMModule) or not isinstance(datamodule, SFTDataModule):
        return
    if datamodule.hparams.packing or datamodule.hparams.reset_position_ids:
        module.configure_model()
        module.forward_pass.packing().checked()


def tokenizer_follows_model(data: Any, model: Any) -> None:
    """Set `data.tokenizer` (a config namespace or dict) to the model builder's `source` when it is not given
    (a Hub id with the model's `revision`: `org/name@revision`)."""
    data_args, model_args = _arguments(data), _arguments(model)
    if data_args is None or data_args.get("tokenizer") is not None or not model_args:
        return
    builder = _arguments(model_args.get("causal_lm"))
    if builder:
        source, revision = builder.get("source"), builder.get("revision")
        data_args["tokenizer"] = f"{source}@{revision}" if source and revision and is_hub_id(source) else source


class AtomicConfigSave(SaveConfigCallback):
    """The run's `config.yaml`, written whole or not at all (Lightning's own save writes in place); Lightning's
    documented way: `save_to_log_dir=False` and `save_config`, which runs on rank zero only."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        log_dir = trainer.logger.log_dir if trainer.logger is not None and trainer.logger.log_dir else trainer.default_root_dir
        write_text_atomic(Path(log_dir) / self.config_filename, self.parser.dump(self.config, skip_none=False))


class SftlabCLI(LightningCLI):
    def __init__(self, args: list[str] | None) -> None:
        super().__init__(
            CausalLMModule,
            SFTDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            auto_configure_optimizers=False,
            save_config_callback=AtomicConfigSave,
            save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
            parser_kwargs={"exit_on_error": False},
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Lightning's own flags, linked into the module's injected factories (the module builds the
        # optimizer over its parameter groups and gives the schedule the run's length).
        parser.add_optimizer_args((Optimizer,), link_to="model.init_args.optimizer")
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple, link_to="model.init_args.lr_scheduler")
        parser.set_defaults({"optimizer": DEFAULT_OPTIMIZER, "lr_scheduler": DEFAULT_LR_SCHEDULER})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        check_moved_keys(list(sys.argv[1:] if args is None else args))
        super().parse_arguments(parser, args)
        if subcommand := self.config.get("subcommand"):
            check_explicit_checkpoint(self.config[subcommand].get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        tokenizer_follows_model(config.data, config.model)
        pick_precision(config.trainer, _arguments(config.model).get("causal_lm") if config.model else None)
        check_trainer(config.trainer)
        if self.subcommand == "fit":
            check_optimization(config.optimizer, config.lr_scheduler)
        check_strategy_name(config.trainer.get("strategy"))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = self.config_init[self.subcommand]["trainer"]
        callbacks = list(trainer.get("callbacks") or [])
        callbacks += [kind() for kind in DEFAULT_CALLBACKS if not any(isinstance(c, kind) for c in callbacks)]
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(StepProgressBar())
        trainer["callbacks"] = callbacks
        plugins = trainer.get("plugins")
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins] if plugins is not None else []
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            trainer["plugins"] = [*plugins, AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        if self.trainer.global_rank == 0:  # before any data is read; held until the process ends
            self.run_lock = lock_run_folder(Path(self.trainer.default_root_dir))
        check_packing(self.model, self.datamodule)
        folders = [Path(c.resolve_dirpath(self.trainer)) for c in self.trainer.checkpoint_callbacks if isinstance(c, Checkpoints)]
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path"):
            config["ckpt_path"] = usable_checkpoint(config["ckpt_path"], folders)
