"""How turns end and what reaches the template, on the cases that once broke: Phi-4-mini's `<|end|>` then eos,
Nemotron-3's newline between tool calls and `<|im_end|>`, GLM-4.5's role tags, DeepSeek-V3's text arguments,
contents as parts, and reasoning rendered exactly as the template renders the record. Real templates come from
TRL's folder (tests/data/rendering/trl_templates.py); Phi-4-mini's behaviour from one written for these tests."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from sftlab.data.formats.messages import Messages
from sftlab.data.labels.masking import make_strategy
from sftlab.data.rendering.templates import ChatTemplate
from tests.data.rendering.test_templates import trained_runs
from tests.data.rendering.trl_templates import template_text, tokenizer_for

OWN_TEMPLATES = Path(__file__).parents[1] / "chat_templates"
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
]
CALL = {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
TOOL_RECORD = {
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21"},
        {"role": "assistant", "content": "It is 21 degrees."},
    ],
    "tools": TOOLS,
}
MULTI_TURN = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Hello again."},
    ]
}


def _render(renderer: ChatTemplate, record: dict):
    return renderer.render(Messages().read(record, "test").validate())


def _trl(name: str) -> ChatTemplate:
    return ChatTemplate(tokenizer_for(name), template_text(name), name=name)


@pytest.mark.parametrize("masking", ["assistant", "expand"])
def test_every_turn_trains_its_end_marker_and_not_the_eos_after_the_conversation(smollm2_tokenizer, masking):
    """Phi-4-mini ends every message with `<|end|>` and writes eos after the last one only: each answer is
    trained with its `<|end|>`, the eos is the template's padding (it once trained `<|end|><|endoftext|>`
    after the last answer and nothing after the first). Its tokenizer: SmolLM2's with Phi's markers."""
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.add_special_tokens(
        {"eos_token": "<|endoftext|>", "additional_special_tokens": ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]}
    )
    renderer = ChatTemplate(tokenizer, (OWN_TEMPLATES / "end-then-eos.jinja").read_text(), name="phi-4-mini-like")
    strategy = make_strategy(masking)
    expected = ["Hello.<|end|>", "Hello again.<|end|>"]
    for example in strategy.examples(Messages().read(MULTI_TURN, "test").validate()):
        rendered = renderer.render(example)
        assert rendered.text.endswith("<|end|><|endoftext|>")
        runs, _ = trained_runs(tokenizer, rendered.text, strategy.trained_spans(rendered))
        turns = len(example.assistant_indices())
        assert runs == (expected if masking == "assistant" else expected[turns - 1 : turns])
    assert renderer.stop_text == "<|end|>"


def test_the_marker_after_tool_calls_is_trained_with_the_whitespace_before_it():
    """Nemotron-3 writes `</tool_call>\\n<|im_end|>`: the newline and marker end the tool-call turn."""
    rendered = _render(_trl("nemotron_3_nano"), TOOL_RECORD)
    calls, answer = rendered.turns
    assert [(name, rendered.text[a:b]) for name, (a, b) in calls.parts][-1] == ("end_of_turn", "\n<|im_end|>")
    assert rendered.text[slice(*calls.stop)] == "\n<|im_end|>" and rendered.text[slice(*answer.stop)] == "<|im_end|>"
    runs, _ = trained_runs(tokenizer_for("nemotron_3_nano"), rendered.text, rendered.assistant_spans)
    assert runs[0].endswith("</tool_call>\n<|im_end|>")


def test_role_tags_end_glm_turns_and_the_last_turn_gets_its_tag(caplog):
    """GLM-4.5 writes nothing after a turn; the model stops by writing the next role tag (`<|user|>`,
    `<|observation|>` after tool calls), trained with the turn it ends, added after the last one."""
    renderer = _trl("glm4moe")
    with caplog.at_level(logging.WARNING):
        rendered = _render(renderer, TOOL_RECORD)
    own = tokenizer_for("glm4moe").apply_chat_template(
        TOOL_RECORD["messages"], tools=TOOLS, chat_template=template_text("glm4moe"), tokenize=False
    )
    assert rendered.text == own + "<|user|>"
    assert [rendered.text[slice(*turn.stop)] for turn in rendered.turns] == ["<|observation|>", "<|user|>"]
    runs, _ = trained_runs(tokenizer_for("glm4moe"), rendered.text, rendered.assistant_spans)
    assert runs[0].endswith("</tool_call><|observation|>") and runs[1].endswith("It is 21 degrees.<|user|>")
    assert "the model stops by writing the next message's role tag" in caplog.text and renderer.stop_text == "<|user|>"


def test_tool_call_arguments_reach_deepseek_v3_as_the_text_it_concatenates():
    """DeepSeek-V3 concatenates arguments to its text (a dict fails to render): they reach it as JSON text."""
    renderer = _trl("deepseekv3")
    rendered = _render(renderer, TOOL_RECORD)
    assert renderer.forms.arguments_as_text and '```json\n{"city": "Paris"}\n```' in rendered.text
    as_text = [dict(m) for m in TOOL_RECORD["messages"]]
    as_text[1] = {
        **as_text[1],
        "content": "",
        "tool_calls": [{**CALL, "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}],
    }
    own = tokenizer_for("deepseekv3").apply_chat_template(as_text, tools=TOOLS, chat_template=template_text("deepseekv3"), tokenize=False)
    assert rendered.text == own
    assert rendered.text[slice(*rendered.turns[0].stop)] == "<｜end▁of▁sentence｜>"
    assert not _trl("qwen3").forms.arguments_as_text  # templates that read a dict get a dict


def test_contents_reach_templates_that_read_parts_as_parts():
    """Idefics3 iterates over a content's parts and renders nothing of a string."""
    renderer = _trl("idefics3")
    rendered = _render(renderer, MULTI_TURN)
    assert renderer.forms.content_as_parts and "Assistant: Hello again.<end_of_utterance>" in rendered.text
    assert [rendered.text[slice(*turn.stop)] for turn in rendered.turns] == ["<end_of_utterance>"] * 2


THINK_IN_CONTENT = {
    "messages": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>Add two and two.</think>\n4"},
    ]
}
REASONING_FIELD = {
    "messages": [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2", "reasoning_content": "Add one and one."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "Add two and two."},
    ]
}


def _own(name: str, record: dict) -> str:
    return tokenizer_for(name).apply_chat_template(record["messages"], chat_template=template_text(name), tokenize=False)


def test_a_think_block_in_the_content_reaches_a_template_as_given(caplog):
    """Gemma-4 reads reasoning from a field and writes a content as given: a `<think>` block at the start
    of the content is rendered as the template renders that record (it was once dropped), trained as the
    reasoning it is, and sftlab says how Gemma-4 would render it as reasoning."""
    renderer = _trl("gemma4")
    with caplog.at_level(logging.WARNING):
        rendered = _render(renderer, THINK_IN_CONTENT)
    assert rendered.text == _own("gemma4", THINK_IN_CONTENT) and "<think>Add two and two.</think>\n4<turn|>" in rendered.text
    parts = [(name, rendered.text[a:b]) for name, (a, b) in rendered.turns[0].parts]
    assert parts == [("reasoning", "<think>Add two and two.</think>\n"), ("answer", "4"), ("end_of_turn", "<turn|>")]
    assert "give the reasoning in the field" in caplog.text
    # A template that reads no field gets the data's own block, byte for byte (once rewritten as `<think>\n…\n</think>\n\n`).
    assert _render(_trl("qwen2_5"), THINK_IN_CONTENT).text == _own("qwen2_5", THINK_IN_CONTENT)


def test_reasoning_a_template_drops_leaves_no_trace_and_is_reported(caplog):
    """DeepSeek-R1 reads no reasoning field and cuts every `<think>` block: reasoning given in a field
    is left out (written in as a block, it once left the block's `\\n\\n` behind) and reported."""
    renderer = _trl("deepseek_r1_distill")
    with caplog.at_level(logging.INFO):
        rendered = _render(renderer, REASONING_FIELD)
    without = {"messages": [{key: value for key, value in m.items() if key != "reasoning_content"} for m in REASONING_FIELD["messages"]]}
    assert rendered.text == _own("deepseek_r1_distill", without)
    assert [turn.missing for turn in rendered.turns] == [("reasoning",), ("reasoning",)]
    assert "does not render the reasoning" in caplog.text


def test_reasoning_is_written_into_the_content_only_where_the_template_reads_no_field(caplog):
    """Qwen2.5 reads no reasoning field: reasoning given in one is written into the content as a
    `<think>` block, said once at the start; templates with a field get it there (covered for every
    template TRL ships in test_trl_templates.py)."""
    renderer = _trl("qwen2_5")
    with caplog.at_level(logging.INFO):
        rendered = _render(renderer, REASONING_FIELD)
        _render(renderer, REASONING_FIELD)
    assert "<think>\nAdd two and two.\n</think>\n\n4<|im_end|>" in rendered.text
    assert caplog.text.count("reads no reasoning field") == 1
