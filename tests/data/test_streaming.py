"""Streaming resumes exactly: the position of every source (shard, offset, mixing generator) of every
worker and rank is in the checkpoint, so `--ckpt_path last` continues with the next document.

The corpora mark every document with its id (`<000123>`, repeated so every block of one shows it): a
run's trained batches, read back as document ids, are compared with an uninterrupted run's."""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from sftlab.data.datamodule import SFTDataModule
from sftlab.data.sources.loaders import Batching
from sftlab.errors import SftlabError
from tests.data.batch_recorder import MARKER, trained_batches
from tests.test_cli import REPO

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
]


def write_corpus(folder: Path, text_shards: int = 8, alpaca_shards: int = 4) -> Path:
    """Text documents 0.. in `text_shards` JSON Lines files and Alpaca records 500000.. in `alpaca_shards`
    JSON files, each marked with its id: a document at its start, every 8 words and at its end (where a
    block boundary cuts one marker, the other side of the cut has another)."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    doc = 0
    for shard in range(text_shards):
        lines = []
        for _ in range(40):
            words = [f"<{doc:06d}>" if i % 8 == 0 else rng.choice(WORDS) for i in range(rng.randint(6, 90))]
            lines.append(json.dumps({"text": " ".join([*words, f"<{doc:06d}>"])}))
            doc += 1
        (folder / f"text-{shard}.jsonl").write_text("\n".join(lines) + "\n")
    record = 500000
    for shard in range(alpaca_shards):
        records = []
        for _ in range(25):
            output = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 20)))
            records.append({"instruction": f"<{record:06d}> repeat", "input": "", "output": output})
            record += 1
        (folder / f"alpaca-{shard}.json").write_text(json.dumps(records))
    return folder


def sources(corpus: Path) -> list[dict]:
    return [
        {"name": "text", "path": str(corpus / "text-*.jsonl"), "format": "text", "weight": 0.7},
        {"name": "alpaca", "path": str(corpus / "alpaca-*.json"), "format": "alpaca", "weight": 0.3},
    ]


def _datamodule(testdata: Path, corpus: Path, **overrides) -> SFTDataModule:
    settings = dict(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"),
        sources=sources(corpus),
        streaming=True,
        max_seq_length=64,
        packing=True,
    )
    workers = overrides.pop("num_workers", 0)
    data = SFTDataModule(**{**settings, **overrides}, batching=Batching(batch_size=3, num_workers=workers))
    data.setup("fit")
    return data


def _ids(tokenizer, batch: dict) -> list[list[int]]:
    return [[int(i) for i in MARKER.findall(tokenizer.decode(ids[:n]))] for ids, n in zip(batch["input_ids"], batch["lengths"])]


def _train(data: SFTDataModule, position=None, limit: int | None = None) -> list[tuple[list, object]]:
    """(document ids, position after it) of each batch of one epoch, each marked trained as it is taken."""
    loader = data.train_dataloader()
    if position is not None:
        loader.resume(position)
    batches = []
    for batch in loader:
        loader.trained.trained()
        batches.append((_ids(data.tokenizer, batch), loader.trained.position))
        if limit and len(batches) == limit:
            break
    return batches


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_resumed_anywhere_continues_with_the_next_batch(testdata, tmp_path, workers):
    corpus = write_corpus(tmp_path / "corpus")
    full = _train(_datamodule(testdata, corpus, num_workers=workers))
    assert len(full) > 40
    for cut in sorted(random.Random(workers).sample(range(len(full) - 1), 3)):
        saved = io.BytesIO()
        torch.save(full[cut][1], saved)  # what a checkpoint holds, read back as `sftlab` reads checkpoints
        position = torch.load(io.BytesIO(saved.getvalue()), weights_only=True)
        rest = _train(_datamodule(testdata, corpus, num_workers=workers), position)
        assert [ids for ids, _ in rest] == [ids for ids, _ in full[cut + 1 :]]
        again = _train(_datamodule(testdata, corpus, num_workers=workers), rest[2][1], limit=5)  # resumed twice
        assert [ids for ids, _ in again] == [ids for ids, _ in full[cut + 4 : cut + 9]]


def test_one_epoch_of_a_stream_trains_every_document_once_in_order(testdata, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    data = _datamodule(testdata, corpus, sources=sources(corpus)[:1], packing=False)
    documents = [i for ids, _ in _train(data) for row in ids for i in row]
    distinct = list(dict.fromkeys(documents))  # a document spanning blocks shows in each of them
    assert distinct == list(range(320))


def test_a_streamed_txt_corpus_trains_the_documents_of_the_map_style_one(testdata, tmp_path):
    """A .txt file streams too (datasets' text builder names no columns before it reads: it once failed
    with "missing field 'text'")."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"<{i:06d}> {' '.join(WORDS[: 3 + i % 9])} <{i:06d}>\n" for i in range(60)))
    text = [{"name": "text", "path": str(corpus), "format": "text"}]
    streamed = [i for ids, _ in _train(_datamodule(testdata, corpus, sources=text, packing=False)) for row in ids for i in row]
    mapped = _datamodule(testdata, corpus, sources=text, packing=False, streaming=False)
    in_blocks = [int(i) for row in mapped.datasets["train"]["input_ids"] for i in MARKER.findall(mapped.tokenizer.decode(row))]
    assert list(dict.fromkeys(streamed)) == list(range(60))
    assert sorted(set(in_blocks)) == list(range(60))


def test_each_rank_streams_its_own_shards(testdata, tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    seen = []
    for rank in range(2):
        monkeypatch.setattr("sftlab.data.sources.loaders.world", lambda rank=rank: (2, rank))
        data = _datamodule(testdata, corpus, sources=sources(corpus)[:1], packing=False)
        seen.append({i for ids, _ in _train(data) for row in ids for i in row})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(320))
    assert {i // 40 for i in seen[0]} == {0, 2, 4, 6}  # whole shards: 8 files over 2 ranks


def test_a_stream_resumes_only_as_it_ran(testdata, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", text_shards=2, alpaca_shards=2)
    data = _datamodule(testdata, corpus)
    (_, position), *_ = _train(data, limit=1)
    with pytest.raises(SftlabError, match="with data.batching.num_workers 0; resume it with as many"):
        _datamodule(testdata, corpus, num_workers=2).train_dataloader().resume(position)
    state = {"position": position, "tally": data.tally.sums}
    with pytest.raises(SftlabError, match="streamed its data on 2 ranks; resume it on as many, not 1"):
        data.load_state_dict({"train": [state, state]})
        data.train_dataloader()


def _config(tmp_path: Path, testdata: Path, corpus: Path, devices: int, workers: int) -> Path:
    """tiny.yaml on the streamed mixture, a checkpoint after every step (all kept), every batch recorded."""
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    data = {key: value for key, value in config["data"].items() if key not in ("train_path", "val_path")}
    data.update(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"),
        sources=sources(corpus),
        streaming=True,
        max_seq_length=64,
        batching={"batch_size": 2, "num_workers": workers},
        cache_dir=str(tmp_path / "cache"),
    )
    config["data"] = data
    config["trainer"].update(max_steps=10, enable_progress_bar=False, devices=devices, strategy="ddp" if devices > 1 else "auto")
    config["trainer"]["precision"] = "32-true"  # runs compared bit for bit: one given precision, not each run's probe
    config["trainer"]["callbacks"] = [
        {"class_path": "sftlab.training.checkpoints.Checkpoints", "init_args": {"every_n_train_steps": 1, "keep": -1}},
        {"class_path": "tests.data.batch_recorder.BatchRecorder"},
    ]
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, root: Path, record: Path, *extra: str) -> subprocess.Popen:
    record.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sftlab.cli", "fit", "--config", str(config), "--trainer.default_root_dir", str(root), *extra]
    env = {**os.environ, "SFTLAB_BATCH_RECORD": str(record), "HF_HUB_OFFLINE": "1"}
    # A session of its own: a kill reaches the DDP rank Lightning starts as well.
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _newest_step(folder: Path) -> int:
    steps = [int(m.group(1)) for p in folder.glob("step-*.ckpt") if (m := re.match(r"step-(\d+)", p.name))]
    return max(steps, default=0)


def _finished(process: subprocess.Popen) -> None:
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr[-3000:]


def _in_order_without_gaps(batches: dict) -> None:
    """Text documents of one rank's single stream come shard by shard, each document once, none left out."""
    documents = list(dict.fromkeys(i for key in sorted(batches) for row in batches[key]["ids"] for i in row if i < 500000))
    assert documents == sorted(documents)
    assert all(b == a + 1 or b % 40 == 0 for a, b in itertools.pairwise(documents)), documents


@pytest.mark.parametrize(
    ("devices", "workers"),
    [
        pytest.param(1, 0, marks=pytest.mark.slow),
        pytest.param(1, 2, marks=pytest.mark.slow),
        pytest.param(2, 0, marks=pytest.mark.slow),
        pytest.param(2, 2, marks=pytest.mark.slow),
    ],
)
def test_a_stream_killed_at_random_steps_resumes_with_the_next_document(testdata, tmp_path, devices, workers):
    corpus = write_corpus(tmp_path / "corpus")
    config = _config(tmp_path, testdata, corpus, devices, workers)
    _finished(_fit(config, tmp_path / "straight", tmp_path / "straight_record"))
    root, record = tmp_path / "killed", tmp_path / "killed_record"
    for step in sorted(random.Random(devices * 10 + workers).sample(range(2, 9), 2)):
        process = _fit(config, root, record, "--ckpt_path", "last")
        deadline = time.time() + 600
        while _newest_step(root / "checkpoints") < step and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    _finished(_fit(config, root, record, "--ckpt_path", "last"))
    for rank in range(devices):
        expected, trained = trained_batches(tmp_path / "straight_record", rank), trained_batches(record, rank)
        assert len(expected) == 10 * 2  # 10 steps of 2 micro-batches
        assert [(key, e["ids"], e["hash"]) for key, e in sorted(trained.items())] == [
            (key, e["ids"], e["hash"]) for key, e in sorted(expected.items())
        ]
        if workers == 0:
            _in_order_without_gaps(expected)
    if devices == 2:
        ranks = [{i for e in trained_batches(record, r).values() for row in e["ids"] for i in row} for r in range(2)]
        assert not ranks[0] & ranks[1]  # each rank its own shards
    final = {
        name: torch.load(path / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        for name, path in [("straight", tmp_path / "straight"), ("killed", root)]
    }
    assert all(torch.equal(final["killed"][name], tensor) for name, tensor in final["straight"].items())
