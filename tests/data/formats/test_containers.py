"""The same records in every container `datasets` reads and writes (JSON Lines, Parquet, an Arrow file, a
`save_to_disk` folder) give the very same `input_ids` and `labels`, for every format; the format is found
from the columns, whatever the file's suffix; TRL's prompt-completion records train what the equivalent
`messages` records train; `data.fields` maps other field names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest

from sftlab.data.datamodule import SFTDataModule
from sftlab.data.formats import containers
from sftlab.errors import DataError

WEATHER_CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
RECORDS = {
    "messages": [
        {
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"temperature": 21}'},
                {"role": "assistant", "content": "21 degrees.", "reasoning_content": "The tool said 21."},
            ],
            "tools": json.dumps([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]),
            "weight": 2.0,
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
            ]
        },
    ],
    "sharegpt": [
        {
            "conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Blue."}],
            "system": "Answer in one word.",
        },
        {
            "conversations": [
                {"from": "human", "value": "Weather?"},
                {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
                {"from": "observation", "value": "21"},
                {"from": "gpt", "value": "21 degrees."},
            ],
            "tools": '[{"name": "get_weather", "parameters": {"type": "object"}}]',
        },
    ],
    "alpaca": [
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hi.", "output": "Hi!", "history": [["Who are you?", "A model."]]},
    ],
    "prompt_completion": [
        {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]},
        {
            "prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
            "completion": [{"role": "assistant", "content": "Goodbye."}],
        },
    ],
    "text": [{"text": "The first document of the corpus."}, {"text": "A second, somewhat longer document of the corpus."}],
}


def write(records: list[dict], container: str, folder: Path) -> Path:
    """`records` as a JSON Lines file, a Parquet file, an Arrow file or a `save_to_disk` folder."""
    folder.mkdir(parents=True)
    if container == "jsonl":
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
        return path
    keys = list(dict.fromkeys(key for record in records for key in record))  # Arrow unifies the records' keys: missing ones are null
    dataset = datasets.Dataset.from_list([{key: record.get(key) for key in keys} for record in records])
    if container == "parquet":
        dataset.to_parquet(str(folder / "data.parquet"))
        return folder / "data.parquet"
    dataset.save_to_disk(str(folder / "saved"))
    if container == "arrow":
        shutil.copy(next((folder / "saved").glob("*.arrow")), folder / "data.arrow")
        return folder / "data.arrow"
    return folder / "saved"


def rows(testdata: Path, path: Path, cache: Path, **settings) -> list[tuple[list[int], list[int]]]:
    """The training rows of `path`, rendered with Qwen2.5's template (it writes tool calls and results)."""
    settings = {"template": str(testdata / "chat_templates/qwen2.5-instruct.jinja"), "max_seq_length": 64, **settings}
    module = SFTDataModule(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"), train_path=str(path), cache_dir=str(cache), **settings
    )
    module.setup("fit")
    return [(row["input_ids"], row["labels"]) for row in module.datasets["train"]]


@pytest.mark.parametrize("fmt", list(RECORDS))
def test_every_container_gives_the_same_tokens_and_labels(testdata, tmp_path, fmt):
    found = {}
    for container in ("jsonl", "parquet", "arrow", "saved"):
        path = write(RECORDS[fmt], container, tmp_path / container)
        found[container] = rows(testdata, path, tmp_path / "cache", **({"max_seq_length": 8} if fmt == "text" else {}))
    assert found["jsonl"] and any(-100 in labels for _, labels in found["jsonl"]) == (fmt != "text")
    assert found["parquet"] == found["jsonl"] and found["arrow"] == found["jsonl"] and found["saved"] == found["jsonl"]


def test_the_format_comes_from_the_columns_and_a_missing_column_is_named(testdata, tmp_path):
    path = write(RECORDS["messages"], "parquet", tmp_path / "chat")
    module = SFTDataModule(
        tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"), train_path=str(path), cache_dir=str(tmp_path / "c")
    )
    assert module.open("train")[0].format.name == "messages"  # not "text" because of the suffix
    renamed = write([{"conversation": r["messages"]} for r in RECORDS["messages"]], "parquet", tmp_path / "renamed")
    module = SFTDataModule(tokenizer=str(testdata / "tokenizers/smollm2-135m-instruct"), train_path=str(renamed), format="messages")
    with pytest.raises(DataError, match=r"data.parquet: no column 'messages' for format messages \(its columns: conversation\)"):
        module.open("train")


def test_prompt_completion_trains_what_the_equivalent_messages_train(testdata, tmp_path):
    text = [{"prompt": "2+2?", "completion": "4"}, {"prompt": "Name a colour.", "completion": "Blue."}]
    lists = [
        {"prompt": [{"role": "user", "content": r["prompt"]}], "completion": [{"role": "assistant", "content": r["completion"]}]}
        for r in text
    ]
    messages = [{"messages": r["prompt"] + r["completion"]} for r in lists]
    found = [
        rows(testdata, write(records, "jsonl", tmp_path / str(i)), tmp_path / "cache") for i, records in enumerate((text, lists, messages))
    ]
    assert found[0] == found[1] == found[2]
    # A prompt with an earlier answer: only the completion trains (as `last_assistant` trains the messages' last answer).
    multi = [RECORDS["prompt_completion"][1]]
    equivalent = [{"messages": multi[0]["prompt"] + multi[0]["completion"]}]
    completion = rows(testdata, write(multi, "jsonl", tmp_path / "multi"), tmp_path / "cache")
    assert completion == rows(testdata, write(equivalent, "jsonl", tmp_path / "eq"), tmp_path / "cache", masking="last_assistant")
    assert completion != rows(testdata, tmp_path / "eq/data.jsonl", tmp_path / "cache", masking="assistant")


def test_fields_map_other_names_and_roles(testdata, tmp_path):
    theirs = [
        {
            "conversation": [
                {"speaker": "user", "text": m["content"]} if m["role"] == "user" else {"speaker": m["role"], "text": m["content"]}
                for m in r["messages"]
            ]
        }
        for r in RECORDS["messages"][1:]
    ]
    fields = {"messages": "conversation", "role": "speaker", "content": "text"}
    mapped = rows(testdata, write(theirs, "parquet", tmp_path / "theirs"), tmp_path / "cache", fields=fields)
    assert mapped == rows(testdata, write(RECORDS["messages"][1:], "jsonl", tmp_path / "ours"), tmp_path / "cache")
    bots = [
        {
            "conversations": [{"from": "human", "value": "Name a colour."}, {"from": "bot", "value": "Blue."}],
            "system": "Answer in one word.",
        }
    ]
    sharegpt = {"class_path": "sftlab.data.formats.sharegpt.ShareGPT", "init_args": {"roles": {"bot": "assistant"}}}
    from sftlab.data.formats.sharegpt import ShareGPT

    assert rows(testdata, write(bots, "jsonl", tmp_path / "bots"), tmp_path / "cache", format=ShareGPT(roles={"bot": "assistant"})) == rows(
        testdata, write(RECORDS["sharegpt"][:1], "jsonl", tmp_path / "gpt"), tmp_path / "cache"
    )
    assert sharegpt["init_args"]["roles"]["bot"] == "assistant"


def test_large_parquet_files_are_read_a_batch_at_a_time(tmp_path, monkeypatch):
    path = write([{"text": f"document {i}"} for i in range(2500)], "parquet", tmp_path / "big")
    monkeypatch.setattr(containers, "RECORDS_PER_BATCH", 1000)
    read = list(containers.records(path, 1500, 1510))
    assert [where for where, _ in read][:2] == [f"{path} row 1500", f"{path} row 1501"] and read[-1][1] == {"text": "document 1509"}
    assert containers.count(path) == 2500


def test_a_streamed_parquet_source_gives_the_rows_of_the_map_style_one(testdata, tmp_path):
    path = write(RECORDS["messages"], "parquet", tmp_path / "chat")
    settings = {"tokenizer": str(testdata / "tokenizers/smollm2-135m-instruct"), "train_path": str(path), "max_seq_length": 64}
    settings |= {"template": str(testdata / "chat_templates/qwen2.5-instruct.jinja"), "cache_dir": str(tmp_path / "c")}
    streamed = SFTDataModule(streaming=True, **settings)
    streamed.setup("fit")
    assert [(row["input_ids"], row["labels"]) for row in streamed.datasets["train"]] == rows(testdata, path, tmp_path / "c")
