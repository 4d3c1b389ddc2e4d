"""The LightningDataModule: wires files -> records -> rendered text -> tokens + labels -> batches.

Its constructor arguments are the `data.*` config keys. Tokenized datasets are cached by `datasets`
under a fingerprint of everything that shapes them (input files, tokenizer, template, strategy,
length, packing, the code of this package's data modules), so a second run does not tokenize again.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cached_property, partial
from pathlib import Path
from typing import Literal

import datasets
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from sftlab.artifacts import load_tokenizer
from sftlab.data import readers
from sftlab.data.collate import Collator
from sftlab.data.masking import MaskingName, MaskingStrategy, make_strategy
from sftlab.data.packing import chunk_documents, pack_examples
from sftlab.data.readers import Format
from sftlab.data.report import DataReport
from sftlab.data.sampler import EpochSampler, ResumableDataLoader
from sftlab.data.templates import Renderer, make_renderer
from sftlab.data.tokenize import DROP_BLANK_DOCUMENT, tokenize_conversations, tokenize_documents
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
            max_seq_length: Tokens per example (SFT) or per block (pretraining); longer examples are
                truncated, and dropped when no trainable token remains.
            packing: SFT: pack several examples per row, with position ids restarting per example.
            batch_size: Rows per micro-batch.
            group_by_length: Draw batches of similar lengths (less padding).
            num_workers: DataLoader worker processes.
            pad_to_multiple_of: Pad each batch to a multiple of this many tokens.
            text_field: Field holding the text in json/jsonl/parquet pretraining data.
            max_files: Use at most this many files of a folder or glob.
            streaming: Pretraining: stream the corpus instead of loading it (for corpora larger than memory).
            reset_position_ids: Pretraining: position ids restart at every document start.
            fold_system_prompt: Fold the system prompt into the first user turn: None = only where the
                template has no system role, True = always, False = never.
            num_proc: Processes for tokenization.
            seed: Seed for shuffling.
            cache_dir: Where `datasets` caches data (default: its own cache).
            bad_records: `error` (default): a bad record stops with a message naming it; `skip`: it is
                left out, logged, and counted in the data report (reason "bad record (skipped)").
            accept_changed_data: Resume from a checkpoint although the training data (files, their sizes,
                the data settings or the number of rows) changed since it was written; by default that
                is an error, since the saved position in the epoch would point elsewhere.
        """
        super().__init__()
        for name, value, least in (("batch_size", batch_size, 1), ("max_seq_length", max_seq_length, 2), ("pad_to_multiple_of", pad_to_multiple_of, 1),
                                   ("num_workers", num_workers, 0), ("num_proc", num_proc or 1, 1)):  # fmt: skip
            if value < least:
                raise SftlabError(f"data.{name} must be at least {least}, got {value}")
        self.save_hyperparameters()
        self.strategies = {"train": make_strategy(masking), "val": make_strategy(val_masking or masking)}
        self.datasets: dict[str, datasets.Dataset | datasets.IterableDataset] = {}
        self.reports: dict[str, DataReport] = {}
        self.fingerprints: dict[str, dict[str, object]] = {}

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self.hparams.tokenizer is None:
            raise SftlabError("data.tokenizer: not set, and there is no model.source to take it from")
        return load_tokenizer(self.hparams.tokenizer)

    @cached_property
    def renderer(self) -> Renderer:
        return make_renderer(self.hparams.template, self.tokenizer, self.hparams.fold_system_prompt)

    def prepare_data(self) -> None:
        """Build (and cache) the datasets on the main process; other processes load them in `setup`."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Build each split once per process, with its report."""
        for split in self._paths():
            if split in self.datasets:
                continue
            self.datasets[split], report = self.build(split)
            if report is None:
                continue
            self.reports[split] = report
            log.info("%s", report.table())
            if report.kept == 0:
                reasons = ", ".join(f"{count} {reason}" for reason, count in report.dropped.items()) or "none read"
                raise SftlabError(
                    f"data.{split}_path: no example left to train on: all {report.examples} were "
                    f"dropped ({reasons}); see `sftlab inspect`, or raise data.max_seq_length"
                )

    def _paths(self) -> dict[str, str]:
        paths = {"train": self.hparams.train_path, "val": self.hparams.val_path}
        return {split: path for split, path in paths.items() if path}

    def build(self, split: str) -> tuple[datasets.Dataset | datasets.IterableDataset, DataReport | None]:
        """The dataset of a split as batches will draw from (packed rows when packing SFT data),
        and its report (none when streaming)."""
        files, fmt = self._resolve(split)
        dataset, report = self._examples(split, files, fmt)
        if self.hparams.packing and fmt != "text":
            dataset = dataset.map(
                partial(pack_examples, max_seq_length=self.hparams.max_seq_length),
                batched=True,
                batch_size=1000,
                remove_columns=dataset.column_names,
                desc=f"packing {split}",
            )
            report.rows = len(dataset)
        rows = len(dataset) if isinstance(dataset, datasets.Dataset) else None
        identity = (readers.file_names_and_sizes(files), fmt, self.hparams.template, repr(self.strategies[split]), len(self.tokenizer))
        settings = (self.hparams.max_seq_length, self.hparams.packing, self.hparams.text_field)
        self.fingerprints[split] = {"data": hashlib.sha256(repr((identity, settings)).encode()).hexdigest()[:16], "rows": rows}
        return dataset, report

    def state_dict(self) -> dict[str, object]:
        """Saved in checkpoints: what the training data was, so a resume can tell it changed."""
        return {"train": self.fingerprints.get("train")}

    def load_state_dict(self, state: dict[str, object]) -> None:
        saved, now = state.get("train"), self.fingerprints.get("train")
        if saved and now and saved != now and not self.hparams.accept_changed_data:
            raise SftlabError(
                f"ckpt_path: the training data changed since the checkpoint was written ({now['rows']} rows now, "
                f"{saved['rows']} then; or other files, sizes or data settings): resume with the same data, or set "
                "data.accept_changed_data true to go on from the saved position with the new data"
            )

    def examples(self, split: str) -> tuple[datasets.Dataset | datasets.IterableDataset, DataReport | None]:
        """Tokenized examples of a split before SFT packing (pretraining: its blocks)."""
        return self._examples(split, *self._resolve(split))

    def _resolve(self, split: str) -> tuple[list[Path], str]:
        return readers.resolve(self._paths()[split], self.hparams.format, self.hparams.text_field, self.hparams.max_files)

    def _examples(self, split: str, files: list[Path], fmt: str) -> tuple[datasets.Dataset | datasets.IterableDataset, DataReport | None]:
        if fmt == "text":
            return self._build_pretraining(split, files)
        if self.hparams.streaming:
            raise SftlabError(f"data.streaming is for pretraining text, but {files[0]} holds {fmt} conversations")
        return self._build_sft(split, files, fmt)

    def _fingerprint(self, *parts: object) -> str:
        """The tokenized dataset's cache key: the input files, the tokenizer, sftlab's data code and `parts`."""
        digest = hashlib.sha256()
        for part in (
            readers.code_fingerprint(),
            self.tokenizer.backend_tokenizer.to_str(),
            str(self.tokenizer.special_tokens_map),
            *parts,
        ):
            digest.update(str(part).encode())
        return digest.hexdigest()[:32]

    def conversations(self, split: str) -> datasets.Dataset:
        """The validated conversation records of a SFT split (what `sftlab inspect` analyses)."""
        files, fmt = self._resolve(split)
        return readers.load_conversations(files, fmt, self.hparams.cache_dir, self.hparams.bad_records == "skip")

    def _build_sft(self, split: str, files: list[Path], fmt: str) -> tuple[datasets.Dataset, DataReport]:
        skip_bad = self.hparams.bad_records == "skip"
        records = readers.load_conversations(files, fmt, self.hparams.cache_dir, skip_bad)
        strategy = self.strategies[split]
        # A float `weights` column only where weights can differ from the labels' 0/1 (memory).
        weighted = strategy.weighted or any(weight != 1.0 for weight in records["weight"])
        tokenized = records.map(
            partial(
                tokenize_conversations,
                renderer=self.renderer,
                strategy=strategy,
                tokenizer=self.tokenizer,
                max_seq_length=self.hparams.max_seq_length,
                skip_bad=skip_bad,
                weighted=weighted,
            ),
            batched=True,
            remove_columns=records.column_names,
            num_proc=self.hparams.num_proc,
            new_fingerprint=self._fingerprint(
                readers.file_stamps(files),
                fmt,
                self.renderer.template,
                repr(strategy),
                self.hparams.max_seq_length,
                self.hparams.fold_system_prompt,
                skip_bad,
                weighted,
            ),
            desc=f"tokenizing {split}",
        )
        report = DataReport.from_tokenized(split, len(records), tokenized)
        kept = tokenized.filter(lambda reason: not reason, input_columns="drop_reason", desc=f"dropping untrainable {split} examples")
        return kept.select_columns(["input_ids", "labels", *(["weights"] if weighted else []), "source"]), report

    def _build_pretraining(self, split: str, files: list[Path]) -> tuple[datasets.Dataset | datasets.IterableDataset, DataReport | None]:
        documents = readers.load_text(files, self.hparams.text_field, self.hparams.streaming, self.hparams.cache_dir)
        streaming = isinstance(documents, datasets.IterableDataset)
        extra = {} if streaming else {"num_proc": self.hparams.num_proc, "desc": "tokenizing documents"}
        tokenized = documents.map(partial(tokenize_documents, tokenizer=self.tokenizer), batched=True, remove_columns=["text"], **extra)
        blocks = tokenized.map(
            partial(chunk_documents, block_size=self.hparams.max_seq_length, reset_position_ids=self.hparams.reset_position_ids),
            batched=True,
            batch_size=1000,
            remove_columns=["input_ids"],
            **extra,
        )
        if streaming:
            return blocks, None
        tokens = sum(len(ids) for ids in tokenized["input_ids"])
        blank = len(documents) - len(tokenized)
        report = DataReport(
            split,
            len(documents),
            len(documents),
            len(tokenized),
            0,
            dropped={DROP_BLANK_DOCUMENT: blank} if blank else {},
            tokens=tokens,
            trainable_tokens=tokens,
            lengths=[len(ids) for ids in tokenized["input_ids"]],
            rows=len(blocks),
        )
        return blocks, report

    def collator(self) -> Collator:
        return Collator(self.tokenizer.pad_token_id, self.hparams.pad_to_multiple_of)

    def train_dataloader(self) -> DataLoader:
        if "train" not in self.datasets:
            raise SftlabError("data.train_path: not set; training needs data (validation alone needs only data.val_path)")
        dataset = self.datasets["train"]
        if isinstance(dataset, datasets.IterableDataset):
            # A stream has no order to restore: Lightning warns when resuming one mid-epoch.
            return DataLoader(dataset, batch_size=self.hparams.batch_size, collate_fn=self.collator(), num_workers=self.hparams.num_workers)
        sampler = EpochSampler(
            [len(ids) for ids in dataset["input_ids"]], self.hparams.batch_size, self.hparams.seed, self.hparams.group_by_length
        )
        # Its own generator: a DataLoader draws a worker seed from the global RNG whenever an epoch's
        # iterator starts, which would shift dropout draws after a mid-epoch resume.
        return ResumableDataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            collate_fn=self.collator(),
            num_workers=self.hparams.num_workers,
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def val_dataloader(self) -> DataLoader | list:
        if "val" not in self.datasets:
            return []
        return DataLoader(
            self.datasets["val"], batch_size=self.hparams.batch_size, collate_fn=self.collator(), num_workers=self.hparams.num_workers
        )
