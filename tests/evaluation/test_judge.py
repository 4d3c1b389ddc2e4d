"""Judge prompts and rating parsing; grading against a real loopback OpenAI-compatible server: retries,
follow-ups that a deterministic server answers differently, a stop naming a wrong or dead URL."""

from __future__ import annotations

import pytest

from sftlab.errors import SftlabError
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


def test_an_unrated_reply_is_followed_up_not_asked_again(openai_stub):
    # A deterministic server (temperature 0): the same request always gets the same reply.
    def reply(body, number):
        follow_up = body["messages"][-1]["content"] != "prompt"
        return 200, "Rating: [[7]]" if follow_up else "A thoughtful answer, overall."

    stub = openai_stub(reply)
    judgment = Judge(stub.url, "judge-model", max_retries=0, rating_retries=2).grade("prompt")
    assert (judgment.rating, judgment.attempts, judgment.error) == (7, 2, None)
    first, second = (request["messages"] for request in stub.requests)
    assert second[:2] == first and second[2] == {"role": "assistant", "content": "A thoughtful answer, overall."}
    assert "[[5]]" in second[3]["content"] and all(request["temperature"] == 0 for request in stub.requests)
    assert judgment.reply == "A thoughtful answer, overall.\n\nRating: [[7]]"


def _rows(count: int) -> tuple[list[dict], list]:
    from sftlab.evaluation.mtbench import Question

    questions = [Question(i, "writing", ("Q1?", "Q2?")) for i in range(count)]
    rows = [{"question_id": i, "category": "writing", "turns": ["Q1?", "Q2?"], "answers": ["A1.", "A2."]} for i in range(count)]
    return rows, questions


def test_a_wrong_judge_url_stops_after_failures_in_a_row_naming_it(openai_stub):
    from sftlab.evaluation.mtbench import judge_answers

    stub = openai_stub(lambda body, number: (404, "File Not Found"))
    bare = stub.url.removesuffix("/v1")
    rows, questions = _rows(12)
    with pytest.raises(SftlabError) as error:
        judge_answers(Judge(bare, "j", max_retries=0, concurrency=1), rows, questions)
    message = str(error.value)
    assert message.startswith(f"--judge.base_url {bare}: 10 requests in a row failed; last: NotFoundError")
    assert message.endswith(f"try --judge.base_url {bare}/v1") and "\n" not in message
    assert len(stub.requests) == 10  # the other 14 answers were never sent


def test_a_judge_that_rates_nothing_is_an_error(openai_stub):
    from sftlab.evaluation.mtbench import judge_answers

    stub = openai_stub(lambda body, number: (200, "I would rather not say."))
    rows, questions = _rows(1)
    with pytest.raises(SftlabError, match=rf"^--judge.base_url {stub.url}: none of the 2 answers got a rating; last: no rating"):
        judge_answers(Judge(stub.url, "j", rating_retries=0), rows, questions)
