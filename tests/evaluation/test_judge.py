"""Judge prompts and rating parsing; grading against a real loopback OpenAI-compatible server."""

from __future__ import annotations

from sftlab.evaluation.judge import Judge, judge_prompt, parse_rating


def test_ratings_are_parsed_or_refused():
    assert parse_rating("Clear and correct. Rating: [[8]]") == 8
    assert parse_rating("Rating: [[6.5]]") == 6.5
    assert parse_rating("I would say Rating: 7") == 7
    assert parse_rating("[[3]] at first, but on reflection [[4]]") == 4
    assert parse_rating("Rating: [[11]]") is None and parse_rating("no number here") is None


def test_second_turn_prompt_shows_the_conversation_and_the_reference():
    prompt = judge_prompt(["Q1?", "Q2?"], ["A1.", "A2."], ["R1", "R2"])
    assert "question number 2" in prompt and "Reference answer 2]\nR2" in prompt and "R1" not in prompt
    assert prompt.index("[User question 1]") < prompt.index("[Assistant answer 1]") < prompt.index("[User question 2]")


def test_judge_retries_server_errors_and_counts_replies_without_rating(openai_stub, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-secret")
    replies = iter([(500, "overloaded"), (200, "Good. Rating: [[9]]"), (200, "I cannot decide."), (200, "Still no idea."), (200, "Nope.")])
    stub = openai_stub(lambda body, number: next(replies))
    judge = Judge(stub.url, "judge-model", api_key_env="JUDGE_KEY", max_retries=2, rating_retries=2)
    first = judge.grade("prompt one")
    assert (first.rating, first.attempts, first.error) == (9, 1, None)
    second = judge.grade("prompt two")
    assert second.rating is None and second.attempts == 3 and second.error == "no rating in the judge's reply"
    assert len(stub.requests) == 5 and stub.requests[0]["model"] == "judge-model"
    assert {k.lower(): v for k, v in stub.headers[0].items()}["authorization"] == "Bearer sk-secret"
