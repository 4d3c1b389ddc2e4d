"""Readers on samples of real data sets (tests/data/files), format detection, and bad input with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlab.data.formats import readers
from sftlab.data.formats.files import read_json_records
from sftlab.data.formats.messages import Messages
from sftlab.data.formats.records import Conversation
from sftlab.data.formats.splits import DataFiles, data_files
from sftlab.errors import DataError


def _conversations(path: Path, fmt: str = "auto") -> list[Conversation]:
    files = data_files(str(path))
    detected = readers.resolve_format(list(files.files), fmt)
    return [Conversation.from_row(row) for row in readers.iter_conversations(readers.file_stamps(files), detected)]


@pytest.mark.parametrize(
    ("relative", "fmt", "count"),
    [
        ("data/alpaca_en_demo.json", "alpaca", 325),
        ("data/fastchat_sharegpt/dummy_conversation_with_system.json", "sharegpt", 60),
        ("data/glaive_toolcall_en_demo.json", "sharegpt", 20),
        ("data/fastchat_sharegpt/dummy_conversation_with_system.messages.jsonl", "messages", 60),
        ("data/oasst_en100/en_100_top_thread.messages.jsonl", "messages", 100),
        ("data/c4_demo.jsonl", "text", None),
        ("data/wiki_demo.txt", "text", None),
    ],
)
def test_format_is_detected_and_every_record_is_read(testdata, relative, fmt, count):
    detected = readers.resolve_format(list(data_files(str(testdata / relative)).files), "auto")
    assert detected.name == fmt
    if count is not None:
        assert len(_conversations(testdata / relative)) == count


def test_alpaca_record_becomes_user_and_assistant(testdata):
    first = _conversations(testdata / "data/alpaca_en_demo.json")[0]
    assert [m.role for m in first.messages] == ["user", "assistant"]
    assert first.messages[0].content == "Describe a process of making crepes."
    assert first.messages[1].content.startswith("Making crepes is an easy")
    assert first.source.endswith("alpaca_en_demo.json record 0")


def test_sharegpt_system_prompt_and_roles(testdata):
    first = _conversations(testdata / "data/fastchat_sharegpt/dummy_conversation_with_system.json")[0]
    assert [m.role for m in first.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert first.messages[0].content.startswith("A chat between a curious user")


def test_sharegpt_and_messages_forms_of_the_same_data_agree(testdata):
    sharegpt = _conversations(testdata / "data/fastchat_sharegpt/dummy_conversation_with_system.json")
    messages = _conversations(testdata / "data/fastchat_sharegpt/dummy_conversation_with_system.messages.jsonl")
    assert [c.messages for c in sharegpt] == [c.messages for c in messages]


def test_glaive_function_calls_become_tool_calls_and_tools(testdata):
    conversations = _conversations(testdata / "data/glaive_toolcall_en_demo.json")
    first = conversations[0]
    assert [m.role for m in first.messages][:6] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    call = first.messages[3].tool_calls[0]
    assert call.name == "search_recipes" and json.loads(call.arguments) == {"ingredients": ["chicken", "bell peppers", "rice"]}
    assert first.tools[0]["type"] == "function" and first.tools[0]["function"]["name"] == "search_recipes"
    assert sum(len(m.tool_calls) for c in conversations for m in c.messages) == 12


def test_text_corpora_load_with_datasets(testdata, tmp_path):
    c4 = readers.load_text(DataFiles((testdata / "data/c4_demo.jsonl",)), cache_dir=str(tmp_path))
    wiki = readers.load_text(DataFiles((testdata / "data/wiki_demo.txt",)), cache_dir=str(tmp_path))
    assert len(c4) == 30 and c4[0]["text"].startswith("Don’t think you need")
    assert len(wiki) == 4 and wiki[0]["text"].startswith("Anarchism is a political philosophy")
    streamed = readers.load_text(DataFiles((testdata / "data/c4_demo.jsonl",)), streaming=True, cache_dir=str(tmp_path))
    assert next(iter(streamed))["text"] == c4[0]["text"]


def test_the_text_field_is_mapped_and_checked(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"content": "one"}\n{"content": "two"}\n')
    assert readers.load_text(DataFiles((path,)), fields={"text": "content"}, cache_dir=str(tmp_path / "c"))["text"] == ["one", "two"]
    with pytest.raises(DataError, match="corpus.jsonl: missing field 'text'"):
        readers.load_text(DataFiles((path,)), cache_dir=str(tmp_path / "c"))


def test_folder_glob_and_file_cap(tmp_path):
    for name in ("b.jsonl", "a.jsonl", "sub/c.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('{"text": "x"}\n')
    assert [p.name for p in data_files(str(tmp_path)).files] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert [p.name for p in data_files(str(tmp_path / "*.jsonl")).files] == ["a.jsonl", "b.jsonl"]
    assert len(data_files(str(tmp_path), max_files=2).files) == 2


BAD_INPUT = [
    # (file name, content, expected message)
    ("broken.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": \n', r"broken.jsonl line 2 column \d+: invalid JSON"),
    ("broken.json", '[{"instruction": "a", "output": "b"},\n {"instruction": ]', r"broken.json line 2 column \d+: invalid JSON"),
    ("missing.json", '[{"instruction": "a", "input": ""}]', r"missing.json record 0: missing field 'output'"),
    ("mistyped.json", '[{"instruction": "a", "output": 3}]', r"mistyped.json record 0: field 'output' must be str, got int"),
    (
        "role.json",
        '[{"conversations": [{"from": "robot", "value": "hi"}]}]',
        r"role.json record 0: field 'conversations\[0\].from': unknown role 'robot'",
    ),
    ("empty_conv.jsonl", '{"messages": []}\n', r"empty_conv.jsonl line 1: field 'messages': the conversation is empty"),
    ("starts.jsonl", '{"messages": [{"role": "assistant", "content": "hi"}]}\n', r"starts.jsonl line 1: .*must start with a user turn"),
    (
        "empty_answer.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}\n',
        r"empty_answer.jsonl line 1: field 'messages\[1\]': assistant message has empty content",
    ),
    (
        "unknown_role.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}\n',
        r"unknown_role.jsonl line 1: field 'messages\[1\]': unknown role 'bot'",
    ),
    ("no_answer.jsonl", '{"messages": [{"role": "user", "content": "q"}]}\n', r"no_answer.jsonl line 1: .*no assistant message"),
    ("not_object.jsonl", '["a", "b"]\n', r"not_object.jsonl line 1: .*JSON object"),
    ("empty.json", "", r"empty.json: the file is empty"),
    ("empty_list.json", "[]", r"empty_list.json: the file holds no records \(an empty JSON list\)"),
    (
        "null_user.jsonl",
        '{"messages": [{"role": "user", "content": null}, {"role": "assistant", "content": "a"}]}\n',
        r"null_user.jsonl line 1 field 'messages\[0\]': field 'content' is null: a user message needs text",
    ),
    (
        "null_tool.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f"}}]},'
        ' {"role": "tool", "content": null}]}\n',
        r"null_tool.jsonl line 1 field 'messages\[2\]': field 'content' is null: a tool message",
    ),
    (
        "weight.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "weight": "heavy"}\n',
        r"weight.jsonl line 1: field 'weight' must be a number, got str",
    ),
    (
        "negative.json",
        '[{"instruction": "q", "output": "a", "weight": -0.5}]',
        r"negative.json record 0: field 'weight' must be a finite number >= 0",
    ),
    (
        "reasoning.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": 3}]}\n',
        r"reasoning.jsonl line 1 field 'messages\[1\]': field 'reasoning_content' must be a string, got int",
    ),
    (
        "user_reasoning.jsonl",
        '{"messages": [{"role": "user", "content": "q", "thinking": "hm"}, {"role": "assistant", "content": "a"}]}\n',
        r"user_reasoning.jsonl line 1: field 'messages\[0\]': only assistant messages carry reasoning",
    ),
    (
        "tools.json",
        '[{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "tools": "[oops"}]',
        r"tools.json record 0: field 'tools' is not valid JSON",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_names_file_record_and_field(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        _conversations(path, "auto" if content else "alpaca")


def test_bom_is_accepted_and_other_encodings_are_named(tmp_path):
    good = tmp_path / "bom.jsonl"
    good.write_bytes(b"\xef\xbb\xbf" + b'{"instruction": "a", "output": "b"}\n')
    assert len(_conversations(good)) == 1
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "caf\xe9", "output": "b"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl line 2: not valid UTF-8"):
        list(read_json_records(bad))


def test_nothing_to_read_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder holds no data files"):
        data_files(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="the glob matches no file"):
        data_files(str(tmp_path / "*.jsonl"))
    with pytest.raises(DataError, match="no such file or folder"):
        data_files(str(tmp_path / "absent.json"))


def test_parquet_text_corpus(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"content": ["first doc", "second doc"]}).to_parquet(str(tmp_path / "corpus.parquet"))
    files = data_files(str(tmp_path / "*.parquet"))
    fields = {"text": "content"}
    assert readers.resolve_format(list(files.files), "auto", fields).name == "text"  # from its columns, mapped
    assert readers.load_text(files, fields=fields, cache_dir=str(tmp_path / "c"))["text"] == ["first doc", "second doc"]


def test_reasoning_ids_names_and_weight_are_read(tmp_path):
    record = {
        "weight": 2,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "thinking": "Look it up.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "21"},
            {"role": "assistant", "content": "21 degrees.", "reasoning_content": "The tool said 21.", "thinking": "The tool said 21."},
        ],
    }
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (conversation,) = _conversations(path)
    assert conversation.weight == 2.0
    call_turn, result, answer = conversation.messages[1:]
    assert (call_turn.content, call_turn.reasoning, call_turn.tool_calls[0].id) == ("", "Look it up.", "call_1")
    assert (result.tool_call_id, result.name) == ("call_1", "get_weather")
    assert answer.reasoning == "The tool said 21."
    assert Conversation.from_row(conversation.to_row()) == conversation  # through datasets' rows and back


def test_a_leading_think_block_is_the_reasoning():
    from sftlab.data.formats.records import Message, reasoning_apart

    apart = reasoning_apart(Message("assistant", "<think>\nAdd them.\n</think>\n\n4"))
    assert (apart.reasoning, apart.content) == ("Add them.", "4")
    kept = Message("assistant", "I <think> so.")
    assert reasoning_apart(kept) is kept and reasoning_apart(Message("user", "<think>x</think>y")).reasoning == ""


def test_records_cached_by_other_sftlab_code_are_never_reused(tmp_path, monkeypatch):
    """Upgrading sftlab once reused a records cache made before a column existed ('weight'): the
    cache key of the records now includes the data code's hash."""
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    cache = str(tmp_path / "cache")
    first = readers.load_conversations(DataFiles((data,)), Messages(), cache_dir=cache)
    assert readers.load_conversations(DataFiles((data,)), Messages(), cache_dir=cache).cache_files == first.cache_files  # same code: reused
    monkeypatch.setattr(readers, "code_fingerprint", lambda: "other sftlab code")
    assert readers.load_conversations(DataFiles((data,)), Messages(), cache_dir=cache).cache_files != first.cache_files


def test_the_code_fingerprint_covers_every_stage_of_the_data_package(monkeypatch):
    """Caches are keyed by the data code: a change to labels/ or rendering/ must change the key too."""
    data = Path(readers.__file__).parents[1]
    before = readers.code_fingerprint()
    for stage_file in (data / "labels" / "tokenize.py", data / "rendering" / "chat_template.py", data / "datamodule.py"):
        original = Path.read_bytes

        def read_bytes(path, original=original, changed=stage_file):
            return original(path) + (b"# changed" if path == changed else b"")

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
        assert readers.code_fingerprint() != before, stage_file
        monkeypatch.undo()
