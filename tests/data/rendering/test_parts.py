"""Parts of assistant messages (reasoning, answer, tool calls, end-of-turn) on the real chat templates
(tests/data/files/chat_templates) and on the three written for these tests (tests/data/chat_templates):
each part's characters are exactly what the template wrote for it, written out by hand below, and the
trained tokens of each part strategy decode to exactly the selected parts. The default tier renders
every template with SmolLM2's tokenizer (shipped; its ChatML markers are special tokens, as in Qwen3's);
the `shared` tier renders the templates whose own tokenizer is in ../shared (Qwen3's, Phi-3's) with it."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from sftlab.data.formats.records import Conversation, Message, ToolCall
from sftlab.data.labels.masking import make_strategy
from sftlab.data.labels.tokenize import IGNORE_INDEX, token_labels
from sftlab.data.rendering.templates import ChatTemplate
from tests.data.rendering.test_templates import END_OF_TURN, MATCHED, trained_runs

OWN_TEMPLATES = Path(__file__).parents[1] / "chat_templates"
THINK = "<think>\n{}\n</think>\n\n"
EOT = "{eot}"  # the template's end-of-turn marker, from END_OF_TURN in test_templates.py

REASONING = Conversation(
    (
        Message("user", "1+1?"),
        Message("assistant", "2", reasoning="Add one and one."),
        Message("user", "2+2?"),
        Message("assistant", "4", reasoning="Add two and two."),
    ),
    "test",
)
# Per template, per assistant turn: the text of each part, by hand from the .jinja files. Templates
# with no reasoning field get the reasoning inside the content as <think>…</think>; Qwen3 drops it
# before the last user turn, DeepSeek-R1 everywhere, the Gemma-4-like template beside answers.
EMBEDDED = [
    {"reasoning": THINK.format("Add one and one."), "answer": "2", "end_of_turn": EOT},
    {"reasoning": THINK.format("Add two and two."), "answer": "4", "end_of_turn": EOT},
]
REASONING_PARTS = {
    "qwen3": [{"answer": "2", "end_of_turn": EOT}, {"reasoning": THINK.format("Add two and two."), "answer": "4", "end_of_turn": EOT}],
    "deepseek-r1-distill": [{"answer": "2", "end_of_turn": EOT}, {"answer": "4", "end_of_turn": EOT}],
    "tool-results-in-model-turn": [{"answer": "2", "end_of_turn": "<turn|>"}, {"answer": "4", "end_of_turn": "<turn|>"}],
    "end-then-eos": [  # eos follows the last <|end|>: the template's padding, in no part
        {"reasoning": THINK.format("Add one and one."), "answer": "2", "end_of_turn": "<|end|>"},
        {"reasoning": THINK.format("Add two and two."), "answer": "4", "end_of_turn": "<|end|>"},
    ],
    "channels": [  # only the last answer ends with <|return|>; the <|end|> of earlier ones is no marker a model writes
        {"answer": "<|channel|>final<|message|>2"},
        {
            "reasoning": "<|channel|>analysis<|message|>Add two and two.<|end|><|start|>assistant<|channel|>final<|message|>",
            "answer": "4",
            "end_of_turn": "<|return|>",
        },
    ],
}
NOT_RENDERED = {
    "qwen3": [("reasoning",), ()],
    "channels": [("reasoning",), ()],
    "deepseek-r1-distill": [("reasoning",)] * 2,
    "tool-results-in-model-turn": [("reasoning",)] * 2,
}

TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
)
TOOL_RESULT = json.dumps({"temperature": 21})
TOOLS_CONVERSATION = Conversation(
    (
        Message("system", "You can call tools."),
        Message("user", "Weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", json.dumps({"city": "Paris"}), "call_1"),)),
        Message("tool", TOOL_RESULT, tool_call_id="call_1", name="get_weather"),
        Message("assistant", "It is 21 degrees in Paris."),
    ),
    "test",
    TOOLS,
)
QWEN_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TOOL_PARTS = {
    "qwen2.5-instruct": [{"tool_calls": QWEN_CALL, "end_of_turn": EOT}, {"answer": "It is 21 degrees in Paris.", "end_of_turn": EOT}],
    "qwen3": [
        {"tool_calls": QWEN_CALL, "end_of_turn": EOT},
        {"answer": "<think>\n\n</think>\n\nIt is 21 degrees in Paris.", "end_of_turn": EOT},
    ],
    # The call's turn ends with the marker that hands over to the tool; the result after it is the tool's.
    "tool-results-in-model-turn": [
        {"tool_calls": '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>'},
        {"answer": "It is 21 degrees in Paris.", "end_of_turn": "<turn|>"},
    ],
    "channels": [
        {"tool_calls": ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>'},
        {"answer": "<|channel|>final<|message|>It is 21 degrees in Paris.", "end_of_turn": "<|return|>"},
    ],
}
TOOL_RESULT_TEXT = {"tool-results-in-model-turn": 'response:get_weather{value:<|"|>{"temperature": 21}<|"|>}<tool_response|>'}
# An answer before the tool calls of the same message: the text that opens the calls (Qwen's
# `\n<tool_call>\n{"name": "`) is the calls', not the answer's (see spans.py). Gemma-4 writes that answer
# after the tool results, which stay in no part.
SAID_THEN_CALLED = Conversation(
    (*TOOLS_CONVERSATION.messages[:2], replace(TOOLS_CONVERSATION.messages[2], content="Let me check."), *TOOLS_CONVERSATION.messages[3:]),
    "test",
    TOOLS,
)
SAID_THEN_CALLED_PARTS = {
    "qwen2.5-instruct": [
        {"answer": "Let me check.", "tool_calls": "\n" + QWEN_CALL, "end_of_turn": EOT},
        TOOL_PARTS["qwen2.5-instruct"][1],
    ],
    "qwen3": [{"answer": "Let me check.", "tool_calls": "\n" + QWEN_CALL, "end_of_turn": EOT}, TOOL_PARTS["qwen3"][1]],
    "tool-results-in-model-turn": [
        {
            "tool_calls": '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>',
            "answer": "Let me check.",
            "end_of_turn": "<turn|>",
        },
        TOOL_PARTS["tool-results-in-model-turn"][1],
    ],
}


SMOLLM2 = "smollm2-135m-instruct"
# Template/tokenizer pairs where a trained token straddles a part's edge, because the tokenizer does not
# know the template's markers (`><` in `<|eot_id|><|start_header_id|>`, `]<` in `[/INST]<think>`): that
# token is trained. Everywhere else the trained tokens decode to exactly the selected parts.
STRADDLING = {(name, SMOLLM2) for name in ("deepseek-r1-distill", "llama-3-instruct", "mistral-instruct-v0.1", "channels", "end-then-eos")}
STRATEGIES = ["assistant", "reasoning_and_answer", "answer_only"]
TOOL_STRATEGIES = ["assistant", "tool_calls_only", "answer_only"]


def _templates(testdata) -> dict[str, str]:
    found = {path.stem: path.read_text() for path in sorted(testdata.glob("chat_templates/*.jinja"))}
    return found | {path.stem: path.read_text() for path in sorted(OWN_TEMPLATES.glob("*.jinja"))}


def _own_tokenizers(tokenizers: dict) -> list[tuple[str, str]]:
    """(template, tokenizer) for the templates whose own tokenizer is in ../shared."""
    return sorted((template, name) for template, name in MATCHED if name in tokenizers)


def _check_parts(name: str, tokenizer, rendered, expected: list[dict]) -> None:
    eot = END_OF_TURN.get(name, "").format(eos=tokenizer.eos_token)
    for turn, parts in zip(rendered.turns, expected, strict=True):
        want = [(part, text.replace(EOT, eot)) for part, text in parts.items()]
        assert [(part, rendered.text[a:b]) for part, (a, b) in turn.parts] == want, (name, rendered.text)


def _check_reasoning_parts(name: str, template: str, tokenizer_name: str, tokenizer, strategy: str) -> None:
    rendered = ChatTemplate(tokenizer, template, name=name).render(REASONING)
    _check_parts(name, tokenizer, rendered, REASONING_PARTS.get(name, EMBEDDED))
    assert [turn.missing for turn in rendered.turns] == list(NOT_RENDERED.get(name, [(), ()])), name
    _check_trained_tokens(name, tokenizer_name, tokenizer, rendered, make_strategy(strategy))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_reasoning_parts_are_exact_on_every_template(testdata, smollm2_tokenizer, strategy):
    templates = _templates(testdata)
    assert len(templates) == 14  # the 11 real templates and the 3 written for these tests
    for name, template in templates.items():
        _check_reasoning_parts(name, template, SMOLLM2, smollm2_tokenizer, strategy)


@pytest.mark.shared
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_reasoning_parts_are_exact_with_each_templates_own_tokenizer(testdata, tokenizers, strategy):
    pairs = _own_tokenizers(tokenizers)
    assert len(pairs) == 3  # Phi-3's template with Phi-3's tokenizer, Qwen2.5's and Qwen3's with Qwen3's
    for name, tokenizer_name in pairs:
        template = (testdata / f"chat_templates/{name}.jinja").read_text()
        _check_reasoning_parts(name, template, tokenizer_name, tokenizers[tokenizer_name], strategy)


def _check_tool_parts(
    name: str, template: str, tokenizer_name: str, tokenizer, strategy: str, conversation=TOOLS_CONVERSATION, expected=TOOL_PARTS
) -> None:
    rendered = ChatTemplate(tokenizer, template, name=name).render(conversation)
    _check_parts(name, tokenizer, rendered, expected[name])
    chosen = make_strategy(strategy)
    _check_trained_tokens(name, tokenizer_name, tokenizer, rendered, chosen)
    runs, _ = trained_runs(tokenizer, rendered.text, chosen.trained_spans(rendered))
    result = TOOL_RESULT_TEXT.get(name, TOOL_RESULT)
    assert result in rendered.text and not any(TOOL_RESULT in run for run in runs)


@pytest.mark.parametrize("strategy", TOOL_STRATEGIES)
@pytest.mark.parametrize("name", sorted(TOOL_PARTS))
def test_tool_call_parts_are_exact_and_tool_results_never_trained(testdata, smollm2_tokenizer, name, strategy):
    _check_tool_parts(name, _templates(testdata)[name], SMOLLM2, smollm2_tokenizer, strategy)


@pytest.mark.parametrize("strategy", TOOL_STRATEGIES)
@pytest.mark.parametrize("name", sorted(SAID_THEN_CALLED_PARTS))
def test_an_answer_before_tool_calls_is_its_own_part_and_tool_results_are_never_trained(testdata, smollm2_tokenizer, name, strategy):
    _check_tool_parts(name, _templates(testdata)[name], SMOLLM2, smollm2_tokenizer, strategy, SAID_THEN_CALLED, SAID_THEN_CALLED_PARTS)


@pytest.mark.shared
@pytest.mark.parametrize("strategy", TOOL_STRATEGIES)
@pytest.mark.parametrize("name", sorted(name for name in TOOL_PARTS if name.startswith("qwen")))
def test_tool_call_parts_are_exact_with_qwen3s_tokenizer(testdata, tokenizers, name, strategy):
    _check_tool_parts(name, _templates(testdata)[name], "qwen3", tokenizers["qwen3"], strategy)


def _check_trained_tokens(name: str, tokenizer_name: str, tokenizer, rendered, strategy) -> None:
    """The trained tokens of each turn decode to its selected parts (end-of-turn after a selected part);
    where the tokenizer does not know the template's markers (STRADDLING), a token may straddle a part's edge."""
    selected = [
        "".join(rendered.text[a:b] for a, b in strategy.trained_spans(_one_turn(rendered, turn))) for turn in range(len(rendered.turns))
    ]
    encoded = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    for turn, want in zip(rendered.turns, selected):
        a, b = turn.span
        inside = [i for i, (start, end) in enumerate(encoded["offset_mapping"]) if start < b and a < end]
        labels = token_labels(encoded["input_ids"], encoded["offset_mapping"], strategy.trained_spans(rendered))
        got = tokenizer.decode([encoded["input_ids"][i] for i in inside if labels[i] != IGNORE_INDEX])
        if (name, tokenizer_name) not in STRADDLING:
            assert got.strip() == want.strip(), (name, got, want)
        else:  # a token may straddle a part's edge, and is trained
            assert want.strip() in got and len(got.strip()) <= len(want.strip()) + 3, (name, got, want)


def _one_turn(rendered, index: int):
    """`rendered` with only turn `index` (the strategy's choice for that turn in isolation)."""
    return replace(rendered, turns=rendered.turns[index : index + 1])


def test_deepseek_r1_dropping_reasoning_is_reported(testdata, smollm2_tokenizer, caplog):
    # No tokenizer here is DeepSeek's own; what is dropped and reported is the template's doing.
    renderer = ChatTemplate(smollm2_tokenizer, (testdata / "chat_templates/deepseek-r1-distill.jinja").read_text(), name="deepseek-r1")
    with caplog.at_level(logging.WARNING):
        rendered = renderer.render(REASONING)
    assert "Add two and two" not in rendered.text
    assert all(turn.missing == ("reasoning",) for turn in rendered.turns)
    assert "deepseek-r1 does not render the reasoning" in caplog.text and "not trained" in caplog.text


GEMMA_LIKE = OWN_TEMPLATES / "tool-results-in-model-turn.jinja"


def test_tool_results_written_inside_the_model_turn_are_never_trained(smollm2_tokenizer):
    """Gemma-4 writes tool results inside the model turn: none of that is the model's to learn."""
    renderer = ChatTemplate(smollm2_tokenizer, GEMMA_LIKE.read_text(), name="gemma-like")
    conversation = Conversation(
        (
            Message("user", "Weather in Paris?"),
            Message("assistant", "", (ToolCall("get_weather", json.dumps({"city": "Paris"})),)),
            Message("tool", TOOL_RESULT),
            Message("assistant", "It is 21 degrees in Paris."),
        ),
        "test",
        TOOLS,
    )
    rendered = renderer.render(conversation)
    assert 'response:unknown{value:<|"|>{"temperature": 21}<|"|>}<tool_response|>It is 21' in rendered.text
    runs, _ = trained_runs(smollm2_tokenizer, rendered.text, rendered.assistant_spans)
    assert not any("temperature" in run or "response:" in run for run in runs), runs
    assert [run.strip() for run in runs][-1] == "It is 21 degrees in Paris.<turn|>"


RECORD_WITH_IDS = {
    "messages": [
        {"role": "user", "content": "Weather and time in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"id": "call_t", "type": "function", "function": {"name": "get_local_time", "arguments": {"city": "Oslo"}}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_t", "content": "10:00"},  # answers arrive in the other order
        {"role": "tool", "tool_call_id": "call_w", "content": '{"temperature": 21}'},
        {"role": "assistant", "content": "It is 21 degrees and 10:00 in Oslo."},
        {"role": "user", "content": "And tomorrow?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "name": "get_weather", "content": '{"temperature": 18}'},  # named, no id
        {"role": "assistant", "content": "18 degrees."},
    ]
}


def test_tool_call_ids_and_tool_names_reach_the_template(smollm2_tokenizer):
    """Templates that match results to calls by id (Gemma-4) must get the ids and names of the record."""
    from sftlab.data.formats.messages import Messages

    conversation = Messages().read(RECORD_WITH_IDS, "test").validate()
    rendered = ChatTemplate(smollm2_tokenizer, GEMMA_LIKE.read_text()).render(conversation)
    assert 'response:get_local_time{value:<|"|>10:00<|"|>}' in rendered.text
    assert 'response:get_weather{value:<|"|>{"temperature": 21}<|"|>}' in rendered.text
    assert 'response:get_weather{value:<|"|>{"temperature": 18}<|"|>}' in rendered.text
    direct = smollm2_tokenizer.apply_chat_template(RECORD_WITH_IDS["messages"], chat_template=GEMMA_LIKE.read_text(), tokenize=False)
    assert rendered.text == direct


def _check_reasoning_field(template: Path, tokenizer, field: str) -> None:
    from sftlab.data.formats.messages import Messages

    record = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", field: "Add two and two."}]}
    rendered = ChatTemplate(tokenizer, template.read_text()).render(Messages().read(record, "test").validate())
    assert "Add two and two." in rendered.text
    assert rendered.text == tokenizer.apply_chat_template(record["messages"], chat_template=template.read_text(), tokenize=False)


@pytest.mark.parametrize("field", ["reasoning_content", "thinking"])
def test_reasoning_fields_are_rendered_as_the_template_renders_them(testdata, smollm2_tokenizer, field):
    for template in (testdata / "chat_templates/qwen3.jinja", OWN_TEMPLATES / "channels.jinja"):
        _check_reasoning_field(template, smollm2_tokenizer, field)


@pytest.mark.shared
@pytest.mark.parametrize("field", ["reasoning_content", "thinking"])
def test_reasoning_fields_are_rendered_as_qwen3_renders_them_with_its_tokenizer(testdata, tokenizers, field):
    _check_reasoning_field(testdata / "chat_templates/qwen3.jinja", tokenizers["qwen3"], field)


def _check_qwen3_think_block(testdata, tokenizer) -> None:
    renderer = ChatTemplate(tokenizer, (testdata / "chat_templates/qwen3.jinja").read_text())
    conversation = Conversation(
        (
            Message("user", "Weather in Paris?"),
            Message(
                "assistant", "<think>\nI should call the tool.\n</think>\n\n", (ToolCall("get_weather", json.dumps({"city": "Paris"})),)
            ),
            Message("tool", TOOL_RESULT),
            Message("assistant", "<think>\nThe tool said 21.\n</think>\n\nIt is 21 degrees."),
        ),
        "test",
        TOOLS,
    )
    rendered = renderer.render(conversation)
    runs, _ = trained_runs(tokenizer, rendered.text, rendered.assistant_spans)
    assert [run[: len("<think>\n")] for run in runs] == ["<think>\n"] * 2, runs
    assert runs[1].endswith("It is 21 degrees.<|im_end|>")
    prompt = renderer.prompt_text(Conversation(conversation.messages[:3], "test", TOOLS))
    assert prompt.endswith("</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert rendered.text.startswith(prompt)


def test_qwen3_trains_its_think_block_on_every_turn_and_prompts_before_it(testdata, smollm2_tokenizer):
    """The rule: train what the model must write. Qwen3's generation prompt ends at
    `<|im_start|>assistant\\n`, so the model writes `<think>` itself, on a final answer as after a tool call;
    and the inference prompt must not close the think block (that switches thinking off). SmolLM2's
    tokenizer has the same `<|im_start|>`/`<|im_end|>` special tokens; `<think>` is plain text in it,
    and the newline before it its own token, so the trained runs start at `<think>` all the same."""
    _check_qwen3_think_block(testdata, smollm2_tokenizer)


@pytest.mark.shared
def test_qwen3_trains_its_think_block_with_its_own_tokenizer(testdata, tokenizers):
    """As above, with Qwen3's tokenizer, where `<think>` is one token of its own."""
    _check_qwen3_think_block(testdata, tokenizers["qwen3"])
