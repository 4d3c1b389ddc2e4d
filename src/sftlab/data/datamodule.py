"""The LightningDataModule: wires typed parts together: sources (each with its data, reader, template and
masking: specs.py) -> rows (build.py, the one way fit and `sftlab inspect` read a source) -> a mixture
(mixture.py) -> batches (`Batching`, loaders.py), map-style or streamed, and keeps in checkpoints where
the data trained so far ends.

Its constructor arguments are the `data.*` config keys; they are read once, into those parts.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any, Literal

import datasets
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from sftlab.artifacts import load_tokenizer
from sftlab.data.formats.base import DataFormat
from sftlab.data.formats.readers import FormatName
from sftlab.data.labels.collate import Collator
from sftlab.data.labels.masking import MaskingName, MaskingStrategy
from sftlab.data.labels.tally import Tally, TallyingCollator
from sftlab.data.rendering.templates import Renderer, make_renderer
from sftlab.data.sources.build import OpenSource, Rows, Shape, open_source, row_lengths, source_rows
from sftlab.data.sources.identity import check_same_data, data_identity
from sftlab.data.sources.loaders import Batching, ResumableDataLoader, StreamLoader, every_rank, own_shards, resume
from sftlab.data.sources.mixture import Mixture, combine
from sftlab.data.sources.report import DataReport
from sftlab.data.sources.sampler import EpochSampler
from sftlab.data.sources.specs import SourceSpec, StoppingStrategy, split_sources
from sftlab.errors import SftlabError

log = logging.getLogger(__name__)
DEFAULT_BATCHING = Batching()


class SFTDataModule(LightningDataModule):
    def __init__(
        self,
        tokenizer: str | None = None,
        train_path: str | None = None,
        val_path: str | None = None,
        split: str = "train",
        val_split: str | None = None,
        subset: str | None = None,
        revision: str | None = None,
        format: FormatName | DataFormat = "auto",
        fields: dict[str, str] | None = None,
        template: str = "chat",
        masking: MaskingName | MaskingStrategy = "assistant",
        val_masking: MaskingName | MaskingStrategy | None = None,
        sources: list[SourceSpec] | None = None,
        stopping_strategy: StoppingStrategy = "first_exhausted",
        max_seq_length: int = 2048,
        packing: bool = False,
        reset_position_ids: bool = False,
        fold_system_prompt: bool | None = None,
        batching: Batching = DEFAULT_BATCHING,
        streaming: bool = False,
        max_files: int | None = None,
        num_proc: int | None = None,
        seed: int = 42,
        cache_dir: str | None = None,
        bad_records: Literal["error", "skip"] = "error",
        accept_changed_data: bool = False,
    ) -> None:
        """
        Args:
            tokenizer: A local tokenizer folder, a `.gguf` file or a Hub id (`org/name`, `org/name@revision`);
                `sftlab fit` and `inspect` default it to `model.causal_lm.source`, so the tokenizer follows the model.
            train_path: Training data: a file, a folder, a glob or a Hub data set id (`org/name`).
            val_path: Validation data, same forms; none means no validation (unless `val_split` is given).
            split: The split of a folder or Hub data set to train on, optionally sliced: `train`, `train[:5%]`, `train[100:200]`.
            val_split: The split to validate on: of `val_path`, else of `train_path`'s data (default `train`).
            subset: A Hub data set's subset (its config name).
            revision: A Hub data set's revision (branch, tag or commit; default main).
            format: auto | alpaca | sharegpt | messages | prompt_completion | text, or a DataFormat class_path.
            fields: sftlab's field names mapped to the data's, e.g. `{messages: conversation}`, `{role: speaker}`, `{text: content}`.
            template: alpaca | chat (the tokenizer's own chat template) | path to a .jinja file.
            masking: assistant | last_assistant | expand | answer_only | ... (README), or a MaskingStrategy class_path.
            val_masking: The validation split's strategy (default: `masking`): one for runs trained differently compares them.
            sources: A mixture: `{path, weight, name, val_path}` and any of split, val_split, subset, revision,
                format, fields, template, masking per source (keys left out take the `data.*` value).
            stopping_strategy: A mixture's epoch ends when the first source is exhausted, or all are (others repeat).
            max_seq_length: Tokens per example or block; longer ones are truncated, dropped when nothing trainable is left.
            packing: SFT: pack several examples per row, with position ids restarting per example.
            reset_position_ids: Pretraining: position ids restart at every document start.
            fold_system_prompt: System prompt into the first user turn: None = where the template has no system role.
            batching: Rows per batch, length grouping, padding multiple, loader workers (`Batching`).
            streaming: Read the data as it trains (corpora larger than memory or disk); resumes exactly.
            max_files: Use at most this many files of a source.
            num_proc: Processes for tokenization.
            seed: Seed for shuffling and mixing.
            cache_dir: Where `datasets` caches data (default: its own cache).
            bad_records: `error`: a bad record stops with a message naming it; `skip`: it is left out, logged and counted.
            accept_changed_data: Resume although the training data changed since the checkpoint (else an error).
        """
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer_name, self.template, self.masking = tokenizer, template, masking  # what exports record
        self.batching, self.seed, self.stopping, self.accept_changed_data = batching, seed, stopping_strategy, accept_changed_data
        defaults = {"split": split, "val_split": val_split, "subset": subset, "revision": revision, "format": format}
        defaults |= {"fields": fields, "template": template, "masking": masking}
        self.sources = split_sources(sources, train_path, val_path, defaults, val_masking)
        shape = (max_seq_length, packing, reset_position_ids, bad_records == "skip", fold_system_prompt, num_proc, cache_dir, streaming)
        self.rows_shape = Shape(*shape, max_files)
        self.tally = Tally({source.name: source.weight for source in self.sources["train"]})
        self.datasets: dict[str, Any] = {}  # train: rows; val: rows of each source by name
        self.reports: dict[str, DataReport] = {}
        self.mixture: Mixture | None = None
        self.train_loader: ResumableDataLoader | StreamLoader | None = None
        self.resume_state: dict[str, Any] | None = None
        self.fingerprints: dict[str, dict[str, object]] = {}
        self.renderers: dict[str, Renderer] = {}
        self.opened: dict[str, list[OpenSource]] = {}

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer_name is None:
            raise SftlabError("data.tokenizer: not set, and there is no model.causal_lm.source to take it from")
        return load_tokenizer(self.tokenizer_name)

    @cached_property
    def shape(self) -> Shape:
        return self.rows_shape.with_tokenizer(self.tokenizer)

    def renderer_for(self, template: str) -> Renderer:
        """The renderer of a template, made once (sources that share a template share it)."""
        if template not in self.renderers:
            self.renderers[template] = make_renderer(template, self.tokenizer, self.shape.fold_system_prompt)
        return self.renderers[template]

    @property
    def renderer(self) -> Renderer:
        """The renderer of `data.template`: how prompts of the trained model are rendered (exports, samples)."""
        return self.renderer_for(self.template)

    def open(self, split: str) -> list[OpenSource]:
        """The split's sources, ready to read (the one way fit and `sftlab inspect` read them), found once."""
        if split not in self.opened:
            self.opened[split] = [open_source(source, self.shape, self.renderer_for) for source in self.sources[split]]
        return self.opened[split]

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
            report.check_trainable(sources[0].key if len(sources) == 1 else "data.sources")

    def build(self, split: str) -> tuple[Any, DataReport | None]:
        """The rows batches of a split draw from (validation: by source) and its report (none when streaming)."""
        opened = self.open(split)
        built = {item.source.name: self.rows(split, item) for item in opened}
        settings = (len(self.tokenizer), self.rows_shape.max_seq_length, self.rows_shape.packing, self.stopping, self.seed)
        self.fingerprints[split] = data_identity(opened, list(built.values()), settings)
        rows, report, self.mixture = combine(split, built, self.tally.requested, self.seed, self.stopping)
        return rows, report

    def rows(self, split: str, opened: OpenSource, pack: bool = True) -> Rows:
        """One source's rows (before SFT packing without `pack`)."""
        return source_rows(opened, self.shape, pack, split if len(self.sources[split]) == 1 else f"{split}/{opened.source.name}")

    def examples(self, split: str) -> tuple[Any, DataReport | None]:
        """A split's rows before SFT packing (pretraining: its blocks; a mixture: as trained, in the first epoch's order)."""
        if len(self.sources[split]) == 1:
            return self.rows(split, self.open(split)[0], pack=False)[:2]
        rows, report = self.build(split)
        return (rows.select(self.mixture.order(torch.Generator().manual_seed(self.seed))) if self.mixture else rows), report

    def collator(self) -> Collator:
        return Collator(self.tokenizer.pad_token_id, self.batching.pad_to_multiple_of)

    def train_dataloader(self) -> ResumableDataLoader | StreamLoader:
        if "train" not in self.datasets:
            raise SftlabError("data.train_path: not set; training needs data (validation alone needs only data.val_path)")
        dataset, batching = self.datasets["train"], self.batching
        settings = {**batching.loader(), "collate_fn": TallyingCollator(self.collator(), len(self.tally.requested))}
        if isinstance(dataset, datasets.IterableDataset):
            self.train_loader = StreamLoader(own_shards(dataset), self.tally, self.seed, **settings)
        else:
            sampler = EpochSampler(row_lengths(dataset), batching.batch_size, self.seed, batching.group_by_length, mixture=self.mixture)
            generator = torch.Generator().manual_seed(self.seed)  # a DataLoader's base seed would come from the global RNG
            self.train_loader = ResumableDataLoader(dataset, sampler=sampler, generator=generator, tally=self.tally, **settings)
        if self.resume_state is not None:
            resume(self.train_loader, self.resume_state["train"], self.tally)
        return self.train_loader

    def val_dataloader(self) -> DataLoader | dict[str, DataLoader] | list:
        settings = {**self.batching.loader(), "collate_fn": self.collator()}
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
        check_same_data(state.get("data"), self.fingerprints.get("train"), self.accept_changed_data)
        self.resume_state = state if "train" in state else None  # applied by train_dataloader
