"""Labels on every real chat template (tests/data/files/chat_templates) with the real tokenizers: for
each assistant message, the trained tokens are exactly its content plus the template's end-of-turn
marker. SmolLM2's tokenizer ships with the tests; Qwen3's and Phi-3's come from ../shared (`shared`)."""

from __future__ import annotations

import json
from itertools import groupby

import pytest

from sftlab.data.formats.records import Conversation, Message, ToolCall
from sftlab.data.labels.masking import make_strategy
from sftlab.data.labels.tokenize import IGNORE_INDEX, token_labels
from sftlab.data.rendering.templates import ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT, ChatTemplate, make_renderer
from sftlab.errors import DataError, TemplateError

# What each template writes after an assistant message, written out by hand from the .jinja files
# (independent of the probe in templates.py). "{eos}" is the tokenizer's eos token.
END_OF_TURN = {
    "chatml-plain": "<|im_end|>",
    "deepseek-r1-distill": "<｜end▁of▁sentence｜>",
    "gemma-it": "<end_of_turn>",
    "llama-2-chat": " {eos}",
    "llama-3-instruct": "<|eot_id|>",
    "mistral-instruct-v0.1": "{eos}",
    "phi-3-mini-4k-instruct": "<|end|>",
    "qwen2.5-instruct": "<|im_end|>",
    "qwen3": "<|im_end|>",
    "smollm2-instruct": "<|im_end|>",
    "zephyr-7b-beta_tinyllama-1.1b-chat-v1.0": "{eos}",
}
# What the model writes before a final answer (the rule: train what the model must write): Qwen3 wraps
# the last turn in an (empty) think block that its generation prompt leaves to the model.
FINAL_ANSWER_OPENER = {"qwen3": "<think>\n\n</think>\n\n"}
# Templates that print bos_token cannot run with a tokenizer that has none (Qwen3's).
NEEDS_BOS = {"llama-2-chat", "llama-3-instruct"}
TOOL_TEMPLATES = {"qwen2.5-instruct", "qwen3"}


def _conversation(*turns: tuple[str, str], tools: tuple = ()) -> Conversation:
    return Conversation(tuple(Message(role, content) for role, content in turns), "test", tools)


MULTI_TURN = _conversation(
    ("user", "Repeat exactly: The capital of France is Paris."),
    ("assistant", "The capital of France is Paris."),
    ("user", "Again, the same words?"),
    ("assistant", "The capital of France is Paris."),  # the same answer twice, and quoted by the user
    ("user", "What is 2 + 2? Answer with one digit."),
    ("assistant", "4"),
)
WITH_SYSTEM = Conversation((Message("system", "You answer in one short sentence."), *MULTI_TURN.messages), "test")


def trained_runs(tokenizer, rendered_text: str, labels_spans) -> tuple[list[str], list[int]]:
    """The text covered by each run of consecutive trained tokens, and the labels."""
    encoded = tokenizer(rendered_text, add_special_tokens=False, return_offsets_mapping=True)
    labels = token_labels(encoded["input_ids"], encoded["offset_mapping"], labels_spans)
    runs = []
    for trained, group in groupby(zip(encoded["offset_mapping"], labels), key=lambda x: x[1] != IGNORE_INDEX):
        group = list(group)
        if trained:
            runs.append(rendered_text[group[0][0][0] : group[-1][0][1]])
    return runs, labels


def _templates(testdata):
    return sorted(testdata.glob("chat_templates/*.jinja"))


def _expected(template_name: str, tokenizer, message: Message, last: bool) -> str:
    content = message.content
    if message.tool_calls:
        content = ""  # checked separately in the tool test
    opener = FINAL_ANSWER_OPENER.get(template_name, "") if last else ""
    return (opener + content + END_OF_TURN[template_name].format(eos=tokenizer.eos_token)).strip()


# Template/tokenizer pairs that belong together: there, the trained tokens decode to exactly the
# expected text. Elsewhere, the tokenizer does not know the template's special tokens, and a token
# may straddle the end of the marker (`><` in `<｜end▁of▁sentence｜><｜User｜>`): it is trained.
MATCHED = {
    ("smollm2-instruct", "smollm2-135m-instruct"),
    ("chatml-plain", "smollm2-135m-instruct"),
    ("qwen3", "qwen3"),
    ("qwen2.5-instruct", "qwen3"),
    ("phi-3-mini-4k-instruct", "phi-3-mini-4k-instruct"),
}


def _check_all_turns(template_file, tokenizer_name, tokenizer, conversation: Conversation, strategy: str = "assistant") -> None:
    name = template_file.stem
    renderer = ChatTemplate(tokenizer, template_file.read_text(), name=name)
    chosen = make_strategy(strategy)
    for example in chosen.examples(conversation):
        rendered = renderer.render(example)
        spans = chosen.trained_spans(rendered)
        assistants = [m for m in example.messages if m.role == "assistant"]
        if strategy in ("last_assistant", "expand"):
            assistants = assistants[-1:]
        last = [m is example.messages[-1] for m in assistants]
        expected = [_expected(name, tokenizer, m, is_last) for m, is_last in zip(assistants, last)]
        assert [rendered.text[a:b].strip() for a, b in spans] == expected, rendered.text  # exact characters
        runs, _ = trained_runs(tokenizer, rendered.text, spans)  # the tokens that carry them
        assert len(runs) == len(expected), rendered.text
        for run, text in zip(runs, expected):
            if (name, tokenizer_name) in MATCHED:
                assert run.strip() == text
            else:
                assert text in run and len(run.strip()) <= len(text) + 2, (run, text)


STRATEGIES = ["assistant", "last_assistant", "expand"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_template_trains_exactly_content_and_end_of_turn(testdata, smollm2_tokenizer, strategy):
    _check_every_template(testdata, "smollm2-135m-instruct", smollm2_tokenizer, strategy)


@pytest.mark.shared
@pytest.mark.parametrize("tokenizer_name", ["qwen3", "phi-3-mini-4k-instruct"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_template_with_the_qwen3_and_phi3_tokenizers(testdata, tokenizers, tokenizer_name, strategy):
    _check_every_template(testdata, tokenizer_name, tokenizers[tokenizer_name], strategy)


def _check_every_template(testdata, tokenizer_name: str, tokenizer, strategy: str) -> None:
    checked = 0
    for template_file in _templates(testdata):
        if tokenizer.bos_token is None and template_file.stem in NEEDS_BOS:
            continue
        for conversation in (MULTI_TURN, WITH_SYSTEM):
            _check_all_turns(template_file, tokenizer_name, tokenizer, conversation, strategy)
        checked += 1
    assert checked >= 9


def test_system_prompt_is_folded_where_the_template_has_none(testdata, smollm2_tokenizer):
    gemma = ChatTemplate(smollm2_tokenizer, (testdata / "chat_templates/gemma-it.jinja").read_text())
    assert not gemma.has_system_role
    text = gemma.render(WITH_SYSTEM).text
    assert "<start_of_turn>user\nYou answer in one short sentence.\n\nRepeat exactly" in text
    strict = ChatTemplate(smollm2_tokenizer, (testdata / "chat_templates/gemma-it.jinja").read_text(), fold_system_prompt=False)
    with pytest.raises(TemplateError, match="no system role"):
        strict.render(WITH_SYSTEM)


def test_injected_default_system_prompt_is_not_trained(smollm2_tokenizer):
    renderer = ChatTemplate(smollm2_tokenizer)  # SmolLM2's own template adds "You are a helpful AI assistant named SmolLM"
    rendered = renderer.render(MULTI_TURN)
    assert "named SmolLM" in rendered.text
    runs, _ = trained_runs(smollm2_tokenizer, rendered.text, rendered.assistant_spans)
    assert runs == ["The capital of France is Paris.<|im_end|>"] * 2 + ["4<|im_end|>"]


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
TOOL_CONVERSATION = Conversation(
    (
        Message("system", "You can call tools."),
        Message("user", "Weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", json.dumps({"city": "Paris"})),)),
        Message("tool", json.dumps({"temperature": 21})),
        Message("assistant", "It is 21 degrees in Paris."),
    ),
    "test",
    TOOLS,
)


@pytest.mark.shared
@pytest.mark.parametrize("template", sorted(TOOL_TEMPLATES))
def test_tool_calls_are_trained_and_tool_results_are_not(testdata, tokenizers, template):
    tokenizer = tokenizers["qwen3"]
    renderer = ChatTemplate(tokenizer, (testdata / f"chat_templates/{template}.jinja").read_text(), name=template)
    rendered = renderer.render(TOOL_CONVERSATION)
    assert "# Tools" in rendered.text and '{"temperature": 21}' in rendered.text
    runs, _ = trained_runs(tokenizer, rendered.text, rendered.assistant_spans)
    assert len(runs) == 2
    call, answer = (run.strip() for run in runs)
    assert call.startswith("<tool_call>") and '"name": "get_weather"' in call and '"city": "Paris"' in call
    assert call.endswith("</tool_call><|im_end|>")
    assert answer.endswith("It is 21 degrees in Paris.<|im_end|>")


@pytest.mark.shared
def test_qwen3_drops_old_reasoning_and_trains_the_last_one(testdata, tokenizers):
    tokenizer = tokenizers["qwen3"]
    renderer = ChatTemplate(tokenizer, (testdata / "chat_templates/qwen3.jinja").read_text())
    conversation = _conversation(
        ("user", "1+1?"),
        ("assistant", "<think>\nadd them\n</think>\n\n2"),
        ("user", "2+2?"),
        ("assistant", "<think>\nadd again\n</think>\n\n4"),
    )
    rendered = renderer.render(conversation)
    assert "add them" not in rendered.text  # Qwen3 rewrites the earlier turn
    runs, _ = trained_runs(tokenizer, rendered.text, rendered.assistant_spans)
    assert runs[0].strip() == "2<|im_end|>"
    assert "add again" in runs[1] and runs[1].strip().endswith("4<|im_end|>")


def test_template_that_cannot_render_tool_calls_is_an_error(testdata, smollm2_tokenizer):
    renderer = ChatTemplate(smollm2_tokenizer, (testdata / "chat_templates/chatml-plain.jinja").read_text())
    with pytest.raises(DataError, match=r"messages\[2\].*did not render"):
        renderer.render(TOOL_CONVERSATION)


@pytest.mark.shared
def test_template_tokenizer_mismatch_is_named(testdata, tokenizers):
    renderer = ChatTemplate(tokenizers["qwen3"], (testdata / "chat_templates/llama-3-instruct.jinja").read_text(), name="llama-3")
    with pytest.raises(TemplateError, match="bos_token.*template/tokenizer mismatch"):
        renderer.render(MULTI_TURN)


def test_template_raising_names_the_record(testdata, smollm2_tokenizer):
    renderer = ChatTemplate(smollm2_tokenizer, (testdata / "chat_templates/mistral-instruct-v0.1.jinja").read_text())
    bad = Conversation((Message("user", "a"), Message("user", "b"), Message("assistant", "c")), "f.json record 7")
    with pytest.raises(TemplateError, match="f.json record 7.*alternate"):
        renderer.render(bad)


@pytest.mark.parametrize("task_input", ["", "a short input"])
def test_alpaca_template_is_the_recipe_and_trains_output_plus_eos(smollm2_tokenizer, task_input):
    renderer = make_renderer("alpaca", smollm2_tokenizer)
    conversation = Conversation((Message("user", "Name a color.", input=task_input), Message("assistant", "Blue.")), "test")
    rendered = renderer.render(conversation)
    prompt = (ALPACA_PROMPT_INPUT if task_input else ALPACA_PROMPT_NO_INPUT).format(instruction="Name a color.", input=task_input)
    assert rendered.text == prompt + "Blue." + smollm2_tokenizer.eos_token
    encoded = smollm2_tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    labels = token_labels(encoded["input_ids"], encoded["offset_mapping"], rendered.assistant_spans)
    trained = [label for label in labels if label != IGNORE_INDEX]
    assert smollm2_tokenizer.decode(trained) == "Blue." + smollm2_tokenizer.eos_token
    assert trained[-1] == smollm2_tokenizer.eos_token_id


def test_alpaca_strings_are_the_stanford_recipe():
    assert ALPACA_PROMPT_NO_INPUT == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\n{instruction}\n\n### Response:"
    )
    assert ALPACA_PROMPT_INPUT.endswith("### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")


@pytest.mark.shared
def test_no_double_bos(testdata, tokenizers):
    tokenizer = tokenizers["phi-3-mini-4k-instruct"]  # has a BOS token <s>
    renderer = ChatTemplate(tokenizer, (testdata / "chat_templates/llama-2-chat.jinja").read_text())
    text = renderer.render(MULTI_TURN).text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
