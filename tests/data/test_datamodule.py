"""The datamodule end to end on real files (tests/data/files): batches, truncation and drops counted, caching."""

from __future__ import annotations

import json

import pytest

import sftlab.data.sources.build as build_module
from sftlab.data.datamodule import SFTDataModule
from sftlab.data.labels.collate import Collator
from sftlab.data.labels.tokenize import DROP_NO_TRAINABLE, IGNORE_INDEX
from sftlab.data.sources.loaders import Batching


def _module(testdata, datasets_cache, **overrides) -> SFTDataModule:
    settings = dict(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"),
        train_path=str(testdata / "data/oasst_en100/en_100_top_thread.messages.jsonl"),
        max_seq_length=256,
        batching=Batching(batch_size=4, group_by_length=overrides.pop("group_by_length", False)),
        cache_dir=datasets_cache,
    )
    settings.update(overrides)
    module = SFTDataModule(**settings)
    module.setup("fit")
    return module


def test_batches_are_padded_to_a_multiple_of_8_with_ignored_labels(testdata, datasets_cache):
    module = _module(testdata, datasets_cache)
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"input_ids", "labels", "attention_mask", "lengths", "weights"}
    assert batch["input_ids"].shape[1] % 8 == 0
    padding = batch["attention_mask"] == 0
    assert (batch["labels"][padding] == IGNORE_INDEX).all()
    assert (batch["input_ids"][padding] == module.tokenizer.pad_token_id).all()


def test_truncation_and_drops_are_counted_never_trained(testdata, datasets_cache):
    module = _module(testdata, datasets_cache, max_seq_length=64)
    report = module.reports["train"]
    assert report.records == 100 and report.examples == 100
    assert report.dropped.get(DROP_NO_TRAINABLE, 0) > 0  # prompts longer than 64 tokens leave nothing to train
    assert report.kept + sum(report.dropped.values()) == report.examples
    assert len(module.datasets["train"]) == report.kept
    for row in module.datasets["train"]:
        assert len(row["input_ids"]) <= 64
        assert any(label != IGNORE_INDEX for label in row["labels"][1:])  # no example without a loss (no NaN)


def test_expand_makes_one_example_per_assistant_turn(testdata, datasets_cache):
    path = testdata / "data/fastchat_sharegpt/dummy_conversation_with_system.json"
    turns = sum(1 for record in json.loads(path.read_text()) for turn in record["conversations"] if turn["from"] == "gpt")
    module = _module(testdata, datasets_cache, train_path=str(path), masking="expand", max_seq_length=1024)
    assert module.reports["train"].examples == turns


def test_packed_batches_carry_position_ids_and_no_mask(testdata, datasets_cache):
    module = _module(testdata, datasets_cache, packing=True, max_seq_length=512)
    report = module.reports["train"]
    assert report.rows < report.kept
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"input_ids", "labels", "position_ids", "lengths", "weights"}
    starts = (batch["position_ids"] == 0).sum().item()
    assert starts > batch["input_ids"].shape[0]  # several examples per row


def test_pretraining_blocks(testdata, datasets_cache):
    module = _module(testdata, datasets_cache, train_path=str(testdata / "data/wiki_demo.txt"), max_seq_length=128, reset_position_ids=True)
    report = module.reports["train"]
    assert report.records == 4 and report.trainable_fraction == 1.0
    total = sum(len(row["input_ids"]) for row in module.datasets["train"])
    assert total == report.tokens  # nothing dropped: the last short block is kept
    row = module.datasets["train"][0]
    assert row["labels"] == row["input_ids"] and len(row["input_ids"]) == 128


def test_streaming_pretraining(testdata, datasets_cache):
    module = _module(testdata, datasets_cache, train_path=str(testdata / "data/c4_demo.jsonl"), streaming=True, max_seq_length=64)
    batch = next(iter(module.train_dataloader()))
    assert batch["input_ids"].shape == (4, 64)


def test_second_run_reads_the_tokenized_cache(testdata, datasets_cache, monkeypatch):
    first = _module(testdata, datasets_cache)

    def must_not_run(*args, **kwargs):
        raise AssertionError("tokenized again although the cache is valid")

    monkeypatch.setattr(build_module, "tokenize_conversations", must_not_run)
    second = _module(testdata, datasets_cache)
    assert second.datasets["train"]["input_ids"] == first.datasets["train"]["input_ids"]
    with pytest.raises(AssertionError, match="tokenized again"):
        _module(testdata, datasets_cache, max_seq_length=128)  # a different setting is a different cache entry


def test_errors_in_worker_processes_keep_their_message(testdata, datasets_cache, tmp_path):
    path = tmp_path / "mistral_bad.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]} for i in range(7)]
    rows.append({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from sftlab.errors import TemplateError

    with pytest.raises(TemplateError, match="mistral_bad.jsonl line 8.*alternate"):
        _module(
            testdata,
            datasets_cache,
            train_path=str(path),
            num_proc=2,
            template=str(testdata / "chat_templates/mistral-instruct-v0.1.jinja"),
        )


def test_collator_pads_packed_rows_as_a_separate_segment():
    batch = Collator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "position_ids": [0, 1, 0]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7] + [-100] * 5]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 0, 1, 2, 3, 4]]
    assert batch["lengths"].tolist() == [3]


def test_group_by_length_batches_have_less_padding(testdata, datasets_cache):
    def padding(module):
        batches = list(module.train_dataloader())
        return sum((b["attention_mask"] == 0).sum().item() for b in batches) / sum(b["attention_mask"].numel() for b in batches)

    grouped = _module(testdata, datasets_cache, group_by_length=True, max_seq_length=512)
    plain = _module(testdata, datasets_cache, max_seq_length=512)
    assert grouped.train_dataloader().sampler.group and not plain.train_dataloader().sampler.group
    assert padding(grouped) < padding(plain) / 2


def test_bad_records_skip_leaves_them_out_and_counts_them(testdata, datasets_cache, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "wizard", "content": "x"}]},  # bad field
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
        ["not an object"],  # bad record
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "user", "content": "q"},  # the template refuses
                {"role": "assistant", "content": "a"},
            ]
        },
        {"messages": [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye."}]},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    template = str(testdata / "chat_templates/mistral-instruct-v0.1.jinja")  # raises on non-alternating turns
    from sftlab.errors import SftlabError

    with pytest.raises(SftlabError, match="mixed.jsonl line 1: field 'messages\\[1\\]': unknown role 'wizard'"):
        _module(testdata, datasets_cache, train_path=str(path), template=template)
    module = _module(testdata, datasets_cache, train_path=str(path), template=template, bad_records="skip")
    report = module.reports["train"]
    assert (report.records, report.kept, report.dropped) == (5, 2, {"bad record (skipped)": 3})
    assert sorted(module.datasets["train"]["source"]) == [f"{path} line 2", f"{path} line 5"]


def test_weights_reach_the_batches_only_where_they_differ_from_the_labels(testdata, datasets_cache, tmp_path):
    path = tmp_path / "weighted.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}], "weight": 1 + i} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    weighted = _module(testdata, datasets_cache, train_path=str(path), packing=True)
    assert "weights" in weighted.datasets["train"].column_names
    batch = next(iter(weighted.train_dataloader()))
    assert set(batch["weights"].unique().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert ((batch["weights"] == 0) == (batch["labels"] == IGNORE_INDEX)).all()
    plain = _module(testdata, datasets_cache)
    assert "weights" not in plain.datasets["train"].column_names
    later = _module(
        testdata,
        datasets_cache,
        masking="later_turns",
        train_path=str(testdata / "data/fastchat_sharegpt/dummy_conversation_with_system.json"),
    )
    assert "weights" in later.datasets["train"].column_names


def test_blank_lines_of_a_text_corpus_are_no_documents(testdata, datasets_cache, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("First document.\n   \n\nSecond document.\n")
    module = _module(testdata, datasets_cache, train_path=str(corpus), max_seq_length=64)
    report = module.reports["train"]
    assert report.dropped == {"blank document": 2} and report.kept == 2
    ids = module.datasets["train"][0]["input_ids"]
    assert ids.count(module.tokenizer.eos_token_id) == 2  # one per real document, none for the blank lines
