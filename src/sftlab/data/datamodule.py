"""The LightningDataModule: wires sources -> tokenized rows (build.py) -> a mixture (mixture.py) ->
batches, and keeps in checkpoints where the data trained so far ends (loaders.py).

Its constructor arguments are the `data.*` config keys.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from sftlab.artifacts import load_tokenizer
from sftlab.data.formats import readers
from sftlab.data.formats.readers import Format
from sftlab.data.labels.collate import Collator
from sftlab.data.labels.masking import MaskingName, MaskingStrategy, make_strategy
from sftlab.data.labels.tally import Tally, TallyingCollator
from sftlab.data.rendering.templates import Renderer, make_renderer
from sftlab.data.sources.build import Rows, Shape, row_lengths, source_rows
from sftlab.data.sources.identity import check_same_data, data_identity
from sftlab.data.sources.loaders import ResumableDataLoader, StreamLoader, every_rank, own_shards, resume
from sftlab.data.sources.mixture import Mixture, combine
from sftlab.data.sources.report import DataReport
from sftlab.data.sources.sampler import EpochSampler
from sftlab.data.sources.specs import Source, SourceSpec, StoppingStrategy, split_sources
from sftlab.errors import SftlabError

log = logging.getLogger(__name__)


class SFTDataModule(LightningDataModule):
    def __init__(
        self,
        train_path: str | None = None,
        tokenizer: str | None = None,
        val_path: str | None = None,
        format: Format = "auto",
        template: str = "chat",
        masking: MaskingName | MaskingStrategy = "assistant",
        val_masking: MaskingName | MaskingStrategy | None = None,
        prompt_loss_weight: float = 0.0,
        max_seq_length: int = 2048,
        packing: bool = False,
        batch_size: int = 8,
        group_by_length: bool = False,
        num_workers: int = 0,
        pad_to_multiple_of: int = 8,
        text_field: str = "text",
        max_files: int | None = None,
        streaming: bool = False,
        reset_position_ids: bool = False,
        fold_system_prompt: bool | None = None,
        num_proc: int | None = None,
        seed: int = 42,
        cache_dir: str | None = None,
        bad_records: Literal["error", "skip"] = "error",
        sources: list[SourceSpec] | None = None,
        stopping_strategy: StoppingStrategy = "first_exhausted",
        accept_changed_data: bool = False,
    ) -> None:
        """
        Args:
            train_path: Training data: a file, a folder or a glob (needed by fit; `validate` needs only val_path).
            tokenizer: A local tokenizer folder or a `.gguf` file; `sftlab fit` and `inspect` default it
                to `model.source`, so the tokenizer follows the model.
            val_path: Validation data, same forms; none means no validation.
            format: auto | alpaca | sharegpt | messages | text (text = pretraining: concatenate and chunk).
            template: alpaca | chat (the tokenizer's own chat template) | path to a .jinja file.
            masking: none | assistant | last_assistant | expand | prompt | answer_only | reasoning_and_answer |
                tool_calls_only | later_turns, or a MaskingStrategy class_path.
            val_masking: The strategy for the validation split (default: `masking`); one fixed
                strategy makes validation losses of runs trained with different strategies comparable.
            prompt_loss_weight: The loss weight of every token the masking does not train (0: none; README).
            max_seq_length: Tokens per example (SFT) or per block (pretraining); longer examples are
                truncated, and dropped when no trainable token remains.
            packing: SFT: pack several examples per row, with position ids restarting per example.
            batch_size: Rows per micro-batch.
            group_by_length: Draw batches of similar lengths (less padding).
            num_workers: DataLoader worker processes (streaming: they read and tokenize in parallel).
            pad_to_multiple_of: Pad each batch to a multiple of this many tokens.
            text_field: Field holding the text in json/jsonl/parquet pretraining data.
            max_files: Use at most this many files of a folder or glob.
            streaming: Read the data as it trains instead of tokenizing it all first (corpora larger
                than memory or disk); the position in every source is in the checkpoints.
            reset_position_ids: Pretraining: position ids restart at every document start.
            fold_system_prompt: Fold the system prompt into the first user turn: None = only where the
                template has no system role, True = always, False = never.
            num_proc: Processes for tokenization.
            seed: Seed for shuffling and mixing.
            cache_dir: Where `datasets` caches data (default: its own cache).
            bad_records: `error` (default): a bad record stops with a message naming it; `skip`: it is
                left out, logged, and counted in the data report (reason "bad record (skipped)").
            sources: A mixture: `{path, weight, format, template, masking, prompt_loss_weight, ...}`
                per source (keys left out take the `data.*` value), instead of train_path / val_path.
            stopping_strategy: When a mixture's epoch ends: `first_exhausted` (when the first source
                has given all of its rows) or `all_exhausted` (the last; others repeat).
            accept_changed_data: Resume although the training data (files, sizes, data settings, rows) changed
                since the checkpoint; by default an error, since the saved position would point elsewhere.
        """
        super().__init__()
        for name, value, least in (("batch_size", batch_size, 1), ("max_seq_length", max_seq_length, 2), ("pad_to_multiple_of", pad_to_multiple_of, 1),
                                   ("num_workers", num_workers, 0), ("num_proc", num_proc or 1, 1)):  # fmt: skip
            if value < least:
                raise SftlabError(f"data.{name} must be at least {least}, got {value}")
        self.save_hyperparameters()
        self.strategies = {s: make_strategy(m, prompt_loss_weight) for s, m in (("train", masking), ("val", val_masking or masking))}
        defaults = dict(format=format, template=template, masking=masking, text_field=text_field, prompt_loss_weight=prompt_loss_weight)
        self.sources = split_sources(sources, train_path, val_path, defaults, val_masking)
        self.tally = Tally({source.name: source.weight for source in self.sources["train"]})
        self.datasets: dict[str, Any] = {}  # train: rows; val: rows of each source by name
        self.reports: dict[str, DataReport] = {}
        self.mixture: Mixture | None = None
        self.train_loader: ResumableDataLoader | StreamLoader | None = None
        self.resume_state: dict[str, Any] | None = None
        self.fingerprints: dict[str, dict[str, object]] = {}

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self.hparams.tokenizer is None:
            raise SftlabError("data.tokenizer: not set, and there is no model.source to take it from")
        return load_tokenizer(self.hparams.tokenizer)

    @cached_property
    def renderer(self) -> Renderer:
        return make_renderer(self.hparams.template, self.tokenizer, self.hparams.fold_system_prompt)

    @cached_property
    def shape(self) -> Shape:
        names = ("max_seq_length", "packing", "reset_position_ids", "fold_system_prompt", "num_proc", "cache_dir", "streaming")
        settings = {name: self.hparams[name] for name in names}
        return Shape(self.tokenizer, skip_bad=self.hparams.bad_records == "skip", **settings)

    def prepare_data(self) -> None:
        """Build (and cache) the datasets on the main process; other processes load them in `setup`."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Build each split once per process, with its report."""
        for split, sources in self.sources.items():
            if split in self.datasets or not sources:
                continue
            self.datasets[split], report = self.build(split)
            if report is None:
                continue
            self.reports[split] = report
            log.info("%s", report.table())
            report.check_trainable(f"data.{split}_path" if len(sources) == 1 else "data.sources")

    def build(self, split: str) -> tuple[Any, DataReport | None]:
        """The rows batches of a split draw from (validation: by source) and its report (none when streaming)."""
        built = {source.name: self.rows(split, source) for source in self.sources[split]}
        settings = (len(self.tokenizer), *(self.hparams[name] for name in ("max_seq_length", "packing", "stopping_strategy", "seed")))
        files = [self.files(source)[0] for source in self.sources[split]]
        self.fingerprints[split] = data_identity(self.sources[split], files, list(built.values()), settings)
        rows, report, self.mixture = combine(split, built, self.tally.requested, self.hparams.seed, self.hparams.stopping_strategy)
        return rows, report

    def files(self, source: Source) -> tuple[list[Path], str]:
        return readers.resolve(source.path, source.format, source.text_field, self.hparams.max_files)

    def rows(self, split: str, source: Source, pack: bool = True) -> Rows:
        """One source's rows (before SFT packing without `pack`)."""
        files, fmt = self.files(source)
        renderer = None if fmt == "text" else self.renderer_for(source.template)
        desc = split if len(self.sources[split]) == 1 else f"{split}/{source.name}"
        return source_rows(files, fmt, self.shape, source.text_field, renderer, source.strategy, pack, desc)

    def renderer_for(self, template: str) -> Renderer:
        return (
            self.renderer if template == self.hparams.template else make_renderer(template, self.tokenizer, self.hparams.fold_system_prompt)
        )

    def examples(self, split: str) -> tuple[Any, DataReport | None]:
        """A split's rows before SFT packing (pretraining: its blocks; a mixture: as trained, in the first epoch's order)."""
        if len(self.sources[split]) == 1:
            return self.rows(split, self.sources[split][0], pack=False)[:2]
        rows, report = self.build(split)
        return (rows.select(self.mixture.order(torch.Generator().manual_seed(self.hparams.seed))) if self.mixture else rows), report

    def conversations(self, split: str) -> datasets.Dataset:
        """The validated conversation records of a one-source SFT split (what `sftlab inspect` analyses)."""
        (source,) = self.sources[split]
        files, fmt = self.files(source)
        return readers.load_conversations(files, fmt, self.hparams.cache_dir, self.hparams.bad_records == "skip")

    def collator(self) -> Collator:
        return Collator(self.tokenizer.pad_token_id, self.hparams.pad_to_multiple_of)

    def train_dataloader(self) -> ResumableDataLoader | StreamLoader:
        if "train" not in self.datasets:
            raise SftlabError("data.train_path: not set; training needs data (validation alone needs only data.val_path)")
        dataset, hp, collate = self.datasets["train"], self.hparams, TallyingCollator(self.collator(), len(self.tally.requested))
        settings = {"batch_size": hp.batch_size, "num_workers": hp.num_workers, "collate_fn": collate}
        if isinstance(dataset, datasets.IterableDataset):
            self.train_loader = StreamLoader(own_shards(dataset), self.tally, hp.seed, **settings)
        else:
            sampler = EpochSampler(row_lengths(dataset), hp.batch_size, hp.seed, hp.group_by_length, mixture=self.mixture)
            generator = torch.Generator().manual_seed(hp.seed)  # a DataLoader's base seed would come from the global RNG
            self.train_loader = ResumableDataLoader(dataset, sampler=sampler, generator=generator, tally=self.tally, **settings)
        if self.resume_state is not None:
            resume(self.train_loader, self.resume_state["train"], self.tally)
        return self.train_loader

    def val_dataloader(self) -> DataLoader | dict[str, DataLoader] | list:
        settings = {"batch_size": self.hparams.batch_size, "collate_fn": self.collator(), "num_workers": self.hparams.num_workers}
        loaders = {name: DataLoader(own_shards(rows), **settings) for name, rows in self.datasets.get("val", {}).items()}
        return loaders if len(loaders) > 1 else next(iter(loaders.values()), [])

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The loop takes a training batch: it is trained (what a checkpoint saves and the tally counts)."""
        if self.trainer is not None and self.trainer.training and self.train_loader is not None:
            self.train_loader.trained.trained()
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The position after the last trained batch and the tally, of every rank (a collective)."""
        if self.train_loader is None:
            return {}
        own = {"position": self.train_loader.trained.position, "tally": self.tally.sums.clone()}
        return {"train": every_rank(own), "data": self.fingerprints.get("train")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where the checkpoint's data ended; a resume on changed data is an error (the saved
        position would point elsewhere) unless `data.accept_changed_data`."""
        check_same_data(state.get("data"), self.fingerprints.get("train"), self.hparams.accept_changed_data)
        self.resume_state = state if "train" in state else None  # applied by train_dataloader
