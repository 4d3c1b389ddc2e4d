"""sftlab's trained text on the real chat templates TRL ships (`trl/chat_templates/`, the `bench` extra),
against an independent oracle: TRL's `_training` variants mark what the assistant writes with
`{% generation %}`, and transformers' `apply_chat_template(..., return_assistant_tokens_mask=True)` turns
that into a mask. On every training variant, varied conversations (multi-turn with a system prompt, an
answer the user quoted, tool calls and results, reasoning in a field and in the content, unicode) are
rendered by both; the texts must be equal and the trained tokens must agree, except for the convention
differences listed here by name and reason (a new one fails, and so does a listed one that no longer
shows). And on every template TRL ships, with or without a training variant: every assistant turn's stop
(its end-of-turn marker, the closing text of its tool calls where that ends the turn, or the role tag that
ends it) is trained, on multi-turn and tool-call conversations. Tokenizers: tests/data/rendering/trl_templates.py."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache

import pytest

from sftlab.data.formats.messages import Messages
from sftlab.data.labels.masking import make_strategy
from sftlab.data.labels.tokenize import IGNORE_INDEX, encode, example_tokens
from sftlab.data.rendering.templates import ChatTemplate
from sftlab.errors import SftlabError
from tests.data.rendering.trl_templates import template_names, template_text, tokenizer_for

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CALL = {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def _user(content: str) -> dict:
    return {"role": "user", "content": content}


def _assistant(content: str, **more) -> dict:
    return {"role": "assistant", "content": content, **more}


def _tool(content: str) -> dict:
    return {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": content}


CONVERSATIONS = {
    "multi_turn": {
        "messages": [
            {"role": "system", "content": "Réponds brièvement. 🙂"},
            _user("Repeat exactly: The capital of France is Paris."),
            _assistant("The capital of France is Paris."),  # the same answer twice, and quoted by the user
            _user("Again, the same words?"),
            _assistant("The capital of France is Paris."),
            _user("日本の首都は？"),
            _assistant("東京です。"),
        ]
    },
    "tool_calls": {
        "messages": [
            _user("Weather in Paris?"),
            _assistant("", tool_calls=[CALL]),
            _tool('{"temperature": 21}'),
            _assistant("It is 21 degrees."),
            _user("Thanks!"),
            _assistant("You are welcome."),
        ],
        "tools": TOOLS,
    },
    "reasoning_in_content": {
        "messages": [
            _user("1+1?"),
            _assistant("<think>\nAdd one and one.\n</think>\n\n2"),
            _user("2+2?"),
            _assistant("<think>\nAdd two and two.\n</think>\n\n4"),
        ]
    },
    "reasoning_in_field": {
        "messages": [
            _user("1+1?"),
            _assistant("2", reasoning_content="Add one and one."),
            _user("2+2?"),
            _assistant("4", reasoning_content="Add two and two."),
        ]
    },
    "tool_calls_with_reasoning": {
        "messages": [
            _user("Weather in Paris?"),
            _assistant("", reasoning_content="I should call the tool.", tool_calls=[CALL]),
            _tool("21"),
            _assistant("It is 21 degrees.", reasoning_content="The tool said 21."),
        ],
        "tools": TOOLS,
    },
}
TOOL_CONVERSATIONS = {"tool_calls", "tool_calls_with_reasoning"}
# Templates that read contents as lists of parts only (sftlab sends them so, see template_inputs.py); the
# record gives them as parts too, as a messages file may.
PARTS_ONLY = ("idefics3", "smolvlm", "llava_next")
# Templates that cannot render tool calls, by hand from their text: sftlab's render is a one-line error.
NO_TOOL_CALLS = {
    **dict.fromkeys(["cohere", "cohere2", "gemma", "gemma3", "llava_next"], "raises unless user and assistant alternate: no tool role"),
    **dict.fromkeys(["deepseek_r1_distill", "lfm2", "llama3", "phi3", "phi3_5"], "drops tool calls or never reads them"),
    **dict.fromkeys(["idefics3", "smolvlm", "qwen2_5_vl"], "never reads tool calls"),
}


def _untrained(name: str) -> str:
    return name.removesuffix("_training")


@cache
def _renderer(name: str) -> ChatTemplate:
    """One renderer per template: its probes are learnt once for all tests."""
    return ChatTemplate(tokenizer_for(name), template_text(name), name=name)


def _record(name: str, conversation: str) -> dict:
    record = CONVERSATIONS[conversation]
    return {**record, "messages": _as_parts(name, record["messages"])}


def _as_parts(name: str, messages: list[dict]) -> list[dict]:
    if not name.startswith(PARTS_ONLY):
        return messages
    return [{**message, "content": [{"type": "text", "text": message["content"]}]} for message in messages]


def _as_the_template_gets_it(name: str, renderer: ChatTemplate, conversation: str) -> list[dict]:
    """The record as sftlab documents passing it on: a system prompt folded into the first user turn where
    the template has no system role; reasoning from a field in the template's field, or, where it reads
    none, written into the content as `<think>\\n…\\n</think>\\n\\n`, unless the template drops it written
    there (DeepSeek-R1 cuts everything up to `</think>`): then left out."""
    record = CONVERSATIONS[conversation]
    messages = [dict(message) for message in record["messages"]]
    if messages[0]["role"] == "system" and renderer.fold_system_prompt:
        system, first, *messages = messages
        messages = [{**first, "content": f"{system['content']}\n\n{first['content']}"}, *messages]
    for message in messages:
        reasoning = message.pop("reasoning_content", None)
        if reasoning and renderer.shape.reasoning_field:
            message[renderer.shape.reasoning_field] = reasoning
        elif reasoning:
            answer = message["content"]
            message["content"] = f"<think>\n{reasoning}\n</think>\n\n{answer}"
            if reasoning not in _own_rendering(name, _as_parts(name, messages), record.get("tools")):
                message["content"] = answer
    return _as_parts(name, messages)


def _own_rendering(name: str, messages: list[dict], tools: list | None) -> str:
    return tokenizer_for(name).apply_chat_template(messages, tools=tools, chat_template=template_text(name), tokenize=False)


@dataclass(frozen=True)
class Difference:
    """A run of tokens that one side trains and the other does not."""

    trainer: str  # "trl" or "sftlab": which one trains it
    text: str
    start: int
    end: int


def _differences(name: str, conversation: str) -> tuple[list[Difference], dict] | None:
    """sftlab's and TRL's trained tokens on one conversation (None where the template cannot render it)."""
    renderer, tokenizer, record = _renderer(name), tokenizer_for(name), _record(name, conversation)
    try:
        rendered = renderer.render(Messages().read(record, conversation).validate())
    except SftlabError:
        assert conversation in TOOL_CONVERSATIONS and _untrained(name) in NO_TOOL_CALLS, (name, conversation)
        return None
    assert _untrained(name) not in NO_TOOL_CALLS or conversation not in TOOL_CONVERSATIONS, f"{name} renders tool calls now"
    messages, tools = _as_the_template_gets_it(name, renderer, conversation), record.get("tools")
    template = template_text(name)
    text = _own_rendering(name, messages, tools)
    assert rendered.text == text, name
    oracle = tokenizer.apply_chat_template(
        messages, tools=tools, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ((ids, offsets),) = encode(tokenizer, [text], [rendered.literal_spans])
    assert ids == oracle["input_ids"]
    spans = [(span, 1.0) for span in make_strategy("assistant").trained_spans(rendered)]
    _, labels, _ = example_tokens((ids, offsets), spans, len(ids))
    differences: list[Difference] = []
    for index, ((start, end), label, mask) in enumerate(zip(offsets, labels, oracle["assistant_masks"])):
        ours, theirs = label != IGNORE_INDEX, bool(mask)
        if ours == theirs:
            continue
        trainer = "sftlab" if ours else "trl"
        if differences and differences[-1].trainer == trainer and differences[-1].end == start and index:
            start = differences.pop().start
        differences.append(Difference(trainer, text[start:end], start, end))
    context = {"text": text, "stop_ends": {turn.stop[1] for turn in rendered.turns if turn.stop}, "eos": tokenizer.eos_token}
    return differences, context


@cache
def _generation_prompt(name: str) -> str:
    """What the template adds after a user turn when asked for a generation prompt."""
    messages, template, tokenizer = [_user("Hi")], template_text(name), tokenizer_for(name)
    prompt = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)
    plain = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)
    return prompt[len(os.path.commonprefix([prompt, plain])) :]


# The convention differences between sftlab and TRL's training templates: name -> (who trains it, how it is
# recognised, why sftlab does what it does, the templates where it shows).
KNOWN = {
    "newline after the end-of-turn marker": (
        "trl",
        lambda difference, context, name: difference.text.isspace() and difference.start in context["stop_ends"],
        "the model stops at the marker; the newline after it is the template's separator, never generated",
        {
            "diffusion_gemma",
            "gemma",
            "gemma3",
            "idefics3",
            "lfm2",
            "lfm2_v2",
            "nemotron_3_5_lightning",
            "nemotron_3_nano",
            "nemotron_3_super",
            "nemotron_3_ultra",
            "phi3",
            "phi3_5",
            "qwen2_5",
            "qwen2_5_vl",
            "qwen3",
            "qwen3_5_nothink",
            "qwen3_5_think",
            "qwen3_6",
            "qwen3_8",
            "qwen3_instruct_2507",
            "qwen3_vl",
            "smolvlm",
        },
    ),
    "eos after the whole conversation": (
        "trl",
        lambda difference, context, name: difference.text.strip() == context["eos"] and difference.end == len(context["text"]),
        "Phi-3 writes eos after the last message only when no generation prompt follows: the template's padding, "
        "not the model's stop (`<|end|>` is, and it is trained after every turn)",
        {"phi3", "phi3_5"},
    ),
    "text the generation prompt writes": (
        "trl",
        lambda difference, context, name: difference.text in _generation_prompt(name) and difference.start not in context["stop_ends"],
        "the model is prompted with it at inference and starts writing after it (`<｜Assistant｜>`, `<|start|>assistant`, "
        "Qwen2.5's newline after `assistant`, Qwen3.5's and Nemotron-3's `<think>\\n`, Qwen3.5's empty think block "
        "without thinking)",
        {
            "deepseek_r1_distill",
            "deepseekv3",
            "gptoss",
            "muse_glimmer",
            "nemotron_3_5_lightning",
            "nemotron_3_nano",
            "nemotron_3_super",
            "nemotron_3_ultra",
            "qwen2_5",
            "qwen3_5_nothink",
            "qwen3_5_think",
            "qwen3_6",
            "qwen3_8",
        },
    ),
    "end of DeepSeek-V3's tool outputs": (
        "trl",
        lambda difference, context, name: difference.text == "<｜tool▁outputs▁end｜>",
        "the template writes it after the last tool output whether or not an answer follows, and so does its generation "
        "prompt after tool outputs: it closes the tool's turn",
        {"deepseekv3"},
    ),
    "gpt-oss's <|end|> after an earlier answer": (
        "trl",
        lambda difference, context, name: difference.text == "<|end|>",
        "the form `<|return|>` takes in the history: no stop token (gpt-oss stops at `<|return|>` and `<|call|>`), so a "
        "model trained on it writes on after its answer; sftlab trains no stop there (`expand` trains each answer's `<|return|>`)",
        {"gptoss"},
    ),
    "Gemma-4's <|tool_response> after tool calls": (
        "sftlab",
        lambda difference, context, name: difference.text == "<|tool_response>",
        "the template writes it right after the calls, inside the model turn: the model writes it to hand over to the "
        "tool (one of Gemma-4's stop tokens); TRL's template leaves it to the tool's response",
        {"diffusion_gemma"},
    ),
}


@pytest.mark.parametrize("name", template_names(training=True))
def test_trained_tokens_agree_with_trls_generation_masks_up_to_listed_conventions(name):
    assert len(template_names(training=True)) == 31
    seen: set[str] = set()
    for conversation in CONVERSATIONS:
        found = _differences(name, conversation)
        for difference in found[0] if found else []:
            known = [
                label
                for label, (trainer, matches, _, templates) in KNOWN.items()
                if trainer == difference.trainer and _untrained(name) in templates and matches(difference, found[1], name)
            ]
            assert len(known) == 1, f"{name} {conversation}: {known or 'a new difference'}: {difference}"
            seen.add(known[0])
    assert seen == {label for label, (*_, templates) in KNOWN.items() if _untrained(name) in templates}, name


# What ends each kind of turn, by hand from the templates (the longest prefix of a template's name applies):
# an end-of-turn marker, the closing text of the tool calls where that ends the turn (gpt-oss, Gemma-4), or
# the role tag of the message that follows (GLM-4.5).
STOPS = {
    "cohere": {"answer": "<|END_OF_TURN_TOKEN|>"},
    "cohere2": {"answer": "<|END_RESPONSE|><|END_OF_TURN_TOKEN|>"},
    "deepseek": {"answer": "<｜end▁of▁sentence｜>", "tool_calls": "<｜end▁of▁sentence｜>"},
    "diffusion_gemma": {"answer": "<turn|>", "tool_calls": "}<tool_call|><|tool_response>"},
    "gemma": {"answer": "<end_of_turn>"},
    "gemma4": {"answer": "<turn|>", "tool_calls": "}<tool_call|><|tool_response>"},
    "gemma4_v2": {"answer": "<turn|>", "tool_calls": "<turn|>"},
    "glm4moe": {"answer": "<|user|>", "tool_calls": "<|observation|>"},
    "glm4moe_training": {"answer": "<|user|>", "tool_calls": "\n</tool_call><|observation|>"},  # TRL writes the tag in the turn
    "gptoss": {"answer": "<|return|>", "tool_calls": "}<|call|>"},
    "idefics3": {"answer": "<end_of_utterance>"},
    "lfm2": {"answer": "<|im_end|>", "tool_calls": "<|im_end|>"},
    "llama3": {"answer": "<|eot_id|>", "tool_calls": "<|eot_id|>"},
    "llava_next": {"answer": "</s>"},
    "muse_glimmer": {"answer": "<|eot|>", "tool_calls": "<|eot|>"},
    "nemotron": {"answer": "<|im_end|>", "tool_calls": "\n<|im_end|>"},
    "phi3": {"answer": "<|end|>"},
    "qwen": {"answer": "<|im_end|>", "tool_calls": "<|im_end|>"},
    "smolvlm": {"answer": "<end_of_utterance>"},
}
# gpt-oss ends an earlier answer with `<|end|>`, the history form of `<|return|>` and no stop token: those
# answers have no stop in the text (see KNOWN); `expand`, which makes each the last, trains every one.
NO_STOP_BEFORE_THE_LAST = {"gptoss", "gptoss_training"}
STOP_TESTED = {"multi_turn": CONVERSATIONS["multi_turn"], "tool_calls": CONVERSATIONS["tool_calls"]}


def _stops(name: str) -> dict[str, str]:
    return STOPS[max((prefix for prefix in STOPS if name.startswith(prefix)), key=len)]


def _check_every_stop_trained(name: str, conversation: str, masking: str) -> tuple[int, int]:
    """Every assistant turn's stop is the template's and is trained; the number of turns checked, and of
    those left out (gpt-oss's earlier answers)."""
    renderer, tokenizer = _renderer(name), tokenizer_for(name)
    checked = skipped = 0
    strategy = make_strategy(masking)
    for example in strategy.examples(Messages().read(_record(name, conversation), conversation).validate()):
        rendered = renderer.render(example)
        ((ids, offsets),) = encode(tokenizer, [rendered.text], [rendered.literal_spans])
        _, labels, _ = example_tokens((ids, offsets), [(span, 1.0) for span in strategy.trained_spans(rendered)], len(ids))
        for position, turn in enumerate(rendered.turns):
            if name in NO_STOP_BEFORE_THE_LAST and turn.kind == "answer" and position < len(rendered.turns) - 1:
                assert turn.stop is None, name
                skipped += 1
                continue
            assert turn.stop is not None, (name, conversation, turn)
            assert rendered.text[turn.stop[0] : turn.stop[1]] == _stops(name)[turn.kind], (name, conversation)
            inside = [label for (start, end), label in zip(offsets, labels) if start < turn.stop[1] and turn.stop[0] < end]
            assert inside and IGNORE_INDEX not in inside, (name, conversation, "stop not trained")
            checked += 1
    return checked, skipped


@pytest.mark.parametrize("name", template_names())
def test_every_turn_of_every_template_trains_its_stop(name):
    assert len(template_names()) == 72
    for conversation in STOP_TESTED:
        try:
            checked = _check_every_stop_trained(name, conversation, "assistant")
        except SftlabError:
            assert conversation == "tool_calls" and _untrained(name) in NO_TOOL_CALLS, name
            continue
        assert sum(checked) == 3 and (checked[1] == 0 or name in NO_STOP_BEFORE_THE_LAST), (name, conversation, checked)
    if name in NO_STOP_BEFORE_THE_LAST:  # expand makes every answer the last one: each trains its <|return|>
        assert _check_every_stop_trained(name, "multi_turn", "expand") == (3, 3)


FIELD_READ = re.compile(r"""(?:\.|\[['"]|get\(['"])(reasoning_content|thinking|reasoning)\b""")


@pytest.mark.parametrize("name", template_names())
def test_a_reasoning_field_is_found_exactly_where_the_template_reads_one(name):
    """transformers passes reasoning under all three names (`reasoning_content`, `thinking`, `reasoning`);
    sftlab finds a field where the template's text reads one of them, and never writes `<think>` text there."""
    renderer = _renderer(name)
    assert (renderer.shape.reasoning_field is not None) == bool(FIELD_READ.search(template_text(name))), name
    if renderer.shape.reasoning_field and "<think>" not in template_text(name):  # a channel of its own (gpt-oss, Gemma-4, Muse)
        for conversation in ("reasoning_in_field", "tool_calls_with_reasoning"):
            assert "<think>" not in renderer.render(Messages().read(_record(name, conversation), conversation).validate()).text
