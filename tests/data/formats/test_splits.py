"""Which files and rows a source reads: splits of folders (by file names, by README configs, `save_to_disk`
folders of a DatasetDict), subsets, slices; and a Hub data set read from the Hugging Face cache offline
(as `huggingface-cli download --repo-type dataset` leaves it), the same way as the local folder."""

from __future__ import annotations

import json

import datasets
import pytest
from huggingface_hub import constants

from sftlab.data.formats.splits import data_files
from sftlab.errors import DataError, SftlabError
from tests.hub_cache import cached_repo

README = """---
configs:
- config_name: default
  data_files:
  - split: train_sft
    path: data/train_sft-*.parquet
  - split: test_sft
    path: data/test_sft-*.parquet
- config_name: short
  data_files: short/*.jsonl
---
# A chat data set
"""


def chat_set(folder):
    """A data set laid out as SFT sets are published: Parquet shards per split, a subset, a README."""
    (folder / "data").mkdir(parents=True)
    (folder / "short").mkdir()
    (folder / "README.md").write_text(README)
    record = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    for shard in range(2):
        datasets.Dataset.from_list([record] * 5).to_parquet(str(folder / f"data/train_sft-0000{shard}-of-00002.parquet"))
    datasets.Dataset.from_list([record] * 3).to_parquet(str(folder / "data/test_sft-00000-of-00001.parquet"))
    (folder / "short/part.jsonl").write_text(json.dumps(record) + "\n")


def test_a_folder_has_the_splits_and_subsets_its_readme_names_and_slices_of_them(tmp_path):
    chat_set(tmp_path / "set")
    train = data_files(str(tmp_path / "set"), "train_sft")
    assert [p.name for p in train.files] == ["train_sft-00000-of-00002.parquet", "train_sft-00001-of-00002.parquet"]
    half = data_files(str(tmp_path / "set"), "train_sft[:50%]").rows()
    assert [(p.name[:15], start, stop) for p, start, stop in half] == [("train_sft-00000", 0, 5), ("train_sft-00001", 0, 0)]
    window = data_files(str(tmp_path / "set"), "train_sft[4:7]").rows()
    assert [(start, stop) for _, start, stop in window] == [(4, 5), (0, 2)]
    assert [p.name for p in data_files(str(tmp_path / "set"), subset="short").files] == ["part.jsonl"]
    with pytest.raises(DataError, match=r"no split 'train' \(splits: train_sft, test_sft\)"):
        data_files(str(tmp_path / "set"))
    with pytest.raises(DataError, match="data.subset: BuilderConfig 'long' not found"):
        data_files(str(tmp_path / "set"), "train", subset="long")
    with pytest.raises(SftlabError, match="data.train_path: the split 'train\\[:x\\]'"):
        data_files(str(tmp_path / "set"), "train[:x]")


def test_split_names_in_file_names_a_save_to_disk_dataset_dict_and_single_files(tmp_path):
    (tmp_path / "plain").mkdir()
    for name in ("train.jsonl", "validation.jsonl"):
        (tmp_path / "plain" / name).write_text('{"text": "x"}\n')
    assert [p.name for p in data_files(str(tmp_path / "plain"), "validation").files] == ["validation.jsonl"]
    saved = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list([{"text": "a"}] * 4), "test": datasets.Dataset.from_list([{"text": "b"}])}
    )
    saved.save_to_disk(str(tmp_path / "saved"))
    assert [p.suffix for p in data_files(str(tmp_path / "saved"), "test").files] == [".arrow"]
    assert data_files(str(tmp_path / "saved"), "train[-1:]").rows()[0][1:] == (3, 4)
    with pytest.raises(DataError, match="a file or a glob is one split: there is no split 'test'"):
        data_files(str(tmp_path / "plain/train.jsonl"), "test")


def test_a_hub_data_set_is_read_from_the_cache_offline_like_the_same_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    snapshot = cached_repo(tmp_path / "hf", "org/chat", chat_set, kind="dataset")
    chat_set(tmp_path / "local")
    by_id, local = data_files("org/chat", "train_sft[:50%]"), data_files(str(tmp_path / "local"), "train_sft[:50%]")
    assert [p.relative_to(snapshot) for p in by_id.files] == [p.relative_to(tmp_path / "local") for p in local.files]
    assert by_id.slice == local.slice == "[:50%]"
    older = cached_repo(tmp_path / "hf", "org/chat", chat_set, kind="dataset", branch="v1")
    assert data_files("org/chat", "test_sft", revision="v1").files[0].is_relative_to(older)
    with pytest.raises(SftlabError) as error:
        data_files("org/absent", key="data.sources[1].path")
    assert str(error.value).startswith("data.sources[1].path: data set 'org/absent' is not in the Hugging Face cache")
    assert "huggingface-cli download --repo-type dataset org/absent" in str(error.value)
