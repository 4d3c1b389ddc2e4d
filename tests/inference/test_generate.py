"""Generation: prompts rendered exactly as in training; batched left-padded greedy equals one by one;
answers stop at the end-of-turn text."""

from __future__ import annotations

import pytest

from sftlab.data.formats.records import Conversation, Message
from sftlab.data.rendering.templates import make_renderer
from sftlab.inference.generate import Generator, Sampling
from sftlab.inference.loading import LoadedModel, load_for_inference
from sftlab.inference.prompts import user_prompt
from sftlab.model.loading import load_causal_lm
from tests.training.test_export import TINY_SMOLLM2_VOCAB

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves falling slowly to the ground.",
    "2+2=?",
    "Name three primary colors.",
    "Translate 'good morning' into Spanish, please.",
]


@pytest.mark.parametrize("template", ["chat", "alpaca"])
def test_prompt_is_the_training_text_before_the_answer(smollm2_tokenizer, template):
    renderer = make_renderer(template, smollm2_tokenizer)
    messages = (Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "And now?"), Message("assistant", "Now this."))
    full = renderer.render(Conversation(messages, "test"))
    prompt = renderer.prompt_text(Conversation(messages[:3], "test"))
    start, end = full.assistant_spans[-1]
    assert full.text[:start] == prompt
    assert full.text[start:end] == "Now this." + renderer.stop_text


def _tiny(smollm2_tokenizer) -> LoadedModel:
    smollm2_tokenizer.padding_side = "left"
    return LoadedModel(
        load_causal_lm(config=TINY_SMOLLM2_VOCAB).eval(), smollm2_tokenizer, make_renderer("chat", smollm2_tokenizer), "", "chat"
    )


def _batched_equals_single(loaded: LoadedModel, max_new_tokens: int) -> list:
    conversations = [user_prompt(q, None, "test").conversation for q in QUESTIONS]
    batched = Generator(loaded, Sampling(max_new_tokens=max_new_tokens), batch_size=len(QUESTIONS)).answer(conversations)
    single = Generator(loaded, Sampling(max_new_tokens=max_new_tokens), batch_size=1)
    for conversation, answer in zip(conversations, batched):
        alone = single.answer([conversation])[0]
        assert (answer.answer, answer.answer_tokens) == (alone.answer, alone.answer_tokens)
    assert len({a.prompt_tokens for a in batched}) > 1  # the batch really was padded
    return batched


def test_batched_greedy_equals_one_by_one_on_a_tiny_model(smollm2_tokenizer):
    answers = _batched_equals_single(_tiny(smollm2_tokenizer), max_new_tokens=12)
    assert all(a.answer_tokens == 12 and a.finish_reason == "length" for a in answers)  # random weights never stop


@pytest.mark.slow
def test_real_smollm2_batched_equals_one_by_one_and_stops_at_end_of_turn(smollm2_gguf):
    loaded = load_for_inference(str(smollm2_gguf))
    answers = _batched_equals_single(loaded, max_new_tokens=48)
    stopped = [a for a in answers if a.finish_reason == "stop"]
    assert stopped, "SmolLM2 answers short questions within 48 tokens"
    for answer in stopped:
        assert answer.answer_tokens < 48 and "<|im_end|>" not in answer.answer and answer.answer
    assert "Paris" in answers[0].answer
