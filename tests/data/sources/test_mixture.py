"""Mixtures of sources: each epoch draws every source's share exactly, reproducibly from the seed; each
source keeps its own format, template and masking; rows of all sources meet in one batch; the report
and the tally show each source, requested against planned and realised."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from sftlab.data.datamodule import SFTDataModule
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.data.sources.loaders import Batching
from sftlab.data.sources.mixture import Mixture, align_columns
from sftlab.data.sources.specs import default_name, split_sources
from sftlab.errors import SftlabError

DEFAULTS = {"split": "train", "val_split": None, "subset": None, "revision": None, "format": "auto", "fields": None}
DEFAULTS |= {"template": "chat", "masking": "assistant"}


def _by_source(mixture: Mixture, order: list[int]) -> list[int]:
    offsets = torch.tensor(mixture.sizes).cumsum(0)
    return torch.bucketize(torch.tensor(order), offsets, right=True).tolist()


@pytest.mark.parametrize("stopping", ["first_exhausted", "all_exhausted"])
def test_every_epoch_takes_each_source_share_exactly(stopping):
    mixture = Mixture((300, 1000, 40), (0.5, 0.3, 0.2), stopping)
    counts = mixture.counts()
    assert sum(counts) == mixture.epoch_size
    assert [round(c / mixture.epoch_size, 2) for c in counts] == [0.5, 0.3, 0.2]
    order = mixture.order(torch.Generator().manual_seed(0))
    sources = _by_source(mixture, order)
    assert [sources.count(s) for s in range(3)] == counts
    # rows per epoch: the first source to run out (40 / 0.2 = 200) or the last (1000 / 0.3 = 3333.3)
    limiting = 2 if stopping == "first_exhausted" else 1
    assert mixture.epoch_size == (200 if stopping == "first_exhausted" else 3334)
    rows = [i for i, s in zip(order, sources) if s == limiting]
    assert sorted(rows) == list(range(sum(mixture.sizes[:limiting]), sum(mixture.sizes[: limiting + 1])))  # all of it, once
    small = [i for i, s in zip(order, sources) if s == 2]
    if stopping == "all_exhausted":  # the smallest source repeats, whole passes in new orders: 667 = 16 x 40 + 27
        assert sorted({small.count(i) for i in set(small)}) == [16, 17] and len(set(small)) == 40


def test_the_order_depends_only_on_the_seed_and_the_epoch():
    mixture = Mixture((300, 1000, 40), (0.5, 0.3, 0.2))
    first, again = (mixture.order(torch.Generator().manual_seed(7)) for _ in range(2))
    assert first == again
    assert mixture.order(torch.Generator().manual_seed(8)) != first


def _three_sources(testdata, datasets_cache, seed: int = 42, **overrides) -> SFTDataModule:
    data = testdata / "data"
    settings = dict(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"),
        sources=[
            {"name": "wiki", "path": str(data / "wiki_demo.txt"), "weight": 0.5},
            {"name": "alpaca", "path": str(data / "alpaca_en_demo.json"), "weight": 0.3},
            {"name": "sharegpt", "path": str(data / "fastchat_sharegpt/dummy_conversation_with_system.json"), "weight": 0.2},
        ],
        max_seq_length=128,
        batching=Batching(batch_size=8),
        seed=seed,
        cache_dir=datasets_cache,
    )
    module = SFTDataModule(**{**settings, **overrides})
    module.setup("fit")
    return module


def _rows(module: SFTDataModule, count: int) -> tuple[list[str], torch.Tensor]:
    """Hashes of the first `count` rows the training loader gives (over epochs), and the tally of them."""
    loader, hashes, epoch = module.train_dataloader(), [], 0
    while len(hashes) < count:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            loader.trained.trained()
            hashes += [hashlib.sha256(json.dumps(row.tolist()).encode()).hexdigest() for row in batch["input_ids"]]
        epoch += 1
    return hashes[:count], module.tally.sums


def test_a_three_source_mixture_realises_its_weights_and_repeats_with_its_seed(testdata, datasets_cache):
    module = _three_sources(testdata, datasets_cache)
    report = module.reports["train"]
    assert list(report.sources) == ["wiki", "alpaca", "sharegpt"]
    assert report.sources["wiki"].trainable_fraction == 1.0 and report.sources["alpaca"].trainable_fraction < 0.8
    sampler, order, epoch = module.train_dataloader().sampler, [], 0
    while len(order) < 2000:  # epochs of 300 rows: the 60 ShareGPT rows end each (first_exhausted)
        sampler.set_epoch(epoch)
        order += sampler.order()
        epoch += 1
    order = order[:2000]
    sources = _by_source(module.mixture, order)
    for index, weight in enumerate((0.5, 0.3, 0.2)):
        error = math.sqrt(weight * (1 - weight) / 2000)
        assert abs(sources.count(index) / 2000 - weight) < 4 * error
    hashes, tally = _rows(module, 2000)
    assert tally[:, 0].sum() >= 2000 and (tally[:, 0] / tally[:, 0].sum() - torch.tensor([0.5, 0.3, 0.2])).abs().max() < 0.01
    again, _ = _rows(_three_sources(testdata, datasets_cache), 2000)
    assert again == hashes
    other, _ = _rows(_three_sources(testdata, datasets_cache, seed=43), 2000)
    assert other != hashes


def test_rows_of_all_sources_share_their_columns(testdata, datasets_cache):
    module = _three_sources(testdata, datasets_cache, packing=True)
    rows = module.datasets["train"]
    assert sorted(rows.column_names) == ["input_ids", "labels", "position_ids", "source_index"]
    wiki = rows.filter(lambda index: index == 0, input_columns="source_index")[0]
    assert wiki["position_ids"] == list(range(len(wiki["input_ids"])))
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"input_ids", "labels", "position_ids", "lengths", "weights"}


def test_missing_weights_are_those_of_the_labels(tmp_path):
    import datasets

    text = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3]], "labels": [[1, 2, 3]]})
    weighted = datasets.Dataset.from_dict(
        {"input_ids": [[4, 5, 6]], "labels": [[IGNORE_INDEX, 5, 6]], "weights": [[0.0, 0.5, 2.0]], "source": ["x"]}
    )
    aligned = align_columns([text, weighted], [text.column_names, weighted.column_names])
    assert [row["weights"] for row in aligned[0]] == [[1.0, 1.0, 1.0]]
    assert [row["weights"] for row in aligned[1]] == [[0.0, 0.5, 2.0]]
    assert [row["source_index"] for data in aligned for row in data] == [0, 1]
    assert "source" not in aligned[1].column_names


def test_each_source_keeps_its_own_masking_and_template(testdata, datasets_cache):
    alpaca = str(testdata / "data/alpaca_en_demo.json")
    module = SFTDataModule(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"),
        sources=[
            {"name": "prompted", "path": alpaca, "template": "alpaca"},
            {"name": "everything", "path": alpaca, "masking": "none"},
        ],
        max_seq_length=256,
        cache_dir=datasets_cache,
    )
    module.setup("fit")
    reports = module.reports["train"].sources
    assert reports["everything"].trainable_fraction > 0.99 and reports["prompted"].trainable_fraction < 0.7  # every label but the first
    first = module.datasets["train"].filter(lambda index: index == 0, input_columns="source_index")[0]
    assert module.tokenizer.decode(first["input_ids"]).startswith("Below is an instruction")  # the Alpaca prompt


def test_the_report_shows_each_source_requested_and_planned(testdata, datasets_cache):
    report = _three_sources(testdata, datasets_cache).reports["train"]
    table = report.table()
    assert "requested" in table and "sharegpt" in table and " 20.0%" in table
    metrics = report.as_metrics()
    assert metrics["data/train/alpaca/requested"] == pytest.approx(0.3)
    assert metrics["data/train/alpaca/planned"] == pytest.approx(0.3, abs=1e-3)
    assert metrics["data/train/wiki/trainable_tokens"] == report.sources["wiki"].tokens


def test_source_settings_default_to_the_data_keys_and_bad_ones_are_one_line_errors():
    split = split_sources(
        [{"path": "a/web.jsonl", "format": "text"}, {"path": "b/chat.json", "masking": "none", "val_path": "b/v.json"}],
        None,
        None,
        DEFAULTS,
        "assistant",
    )
    assert [(s.name, s.format, type(s.masking).__name__, s.weight, s.split) for s in split["train"]] == [
        ("web", "text", "TrainAssistant", 1.0, "train"),
        ("chat", "auto", "TrainAll", 1.0, "train"),
    ]
    assert [(s.name, s.path, type(s.masking).__name__) for s in split["val"]] == [("chat", "b/v.json", "TrainAssistant")]
    from_split = split_sources([{"path": "org/chat", "val_split": "test[:10]"}], None, None, DEFAULTS)
    assert [(s.path, s.split, s.key) for s in from_split["val"]] == [("org/chat", "test[:10]", "data.sources[0].val_path")]
    assert default_name("/data/c4/en/*.jsonl") == "en" and default_name("x/train.json") == "train"
    shorthand = split_sources(None, "t.json", "v.json", DEFAULTS)
    assert [s.path for s in shorthand["train"]] == ["t.json"] and [s.path for s in shorthand["val"]] == ["v.json"]
    for sources, message in [
        ([{"path": "a.json", "weight": 0}], r"data.sources\[0\]: weight must be a number > 0"),
        ([{"weight": 1}], r"data.sources\[0\]: give the source's path"),
        ([{"path": "a/x.json"}, {"path": "b/x.json"}], "names must differ"),
        ([{"path": "a.json", "name": "a b"}], "may hold only letters"),
    ]:
        with pytest.raises(SftlabError, match=message):
            split_sources(sources, None, None, DEFAULTS)
    with pytest.raises(SftlabError, match="give one or the other"):
        split_sources([{"path": "a.json"}], "t.json", None, DEFAULTS)
