"""The pruned ROUGE-L filter keeps exactly what the naive rouge-score comparison keeps."""

from __future__ import annotations

import json

from rouge_score import rouge_scorer

from sftlab.selfinstruct.similarity import NoveltyFilter, rouge_l_score, rouge_tokens


def _instructions(testdata, count):
    seeds = [json.loads(line)["instruction"] for line in (testdata / "data/seed_tasks.jsonl").read_text().splitlines()]
    alpaca = [r["instruction"] for r in json.loads((testdata / "data/alpaca_en_demo.json").read_text())]
    return (seeds + alpaca)[:count]


def test_scores_are_rouge_score_bit_for_bit(testdata):
    texts = _instructions(testdata, 400)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for a, b in zip(texts, texts[1:] + texts[:1]):
        assert rouge_l_score(rouge_tokens(a), rouge_tokens(b)) == scorer.score(a, b)["rougeL"].fmeasure


def test_kept_set_equals_the_naive_method(testdata):
    texts = _instructions(testdata, 500)
    texts += [texts[10] + " Please.", "Give three tips for staying healthy today.", texts[200].upper()]  # near duplicates
    novelty, kept = NoveltyFilter(0.7), []
    for text in texts:
        if novelty.check(text).novel:
            novelty.add(text)
            kept.append(text)
    naive, naive_tokens = [], []
    for text in texts:
        tokens = rouge_tokens(text)
        if all(rouge_scorer._score_lcs(tokens, other).fmeasure <= 0.7 for other in naive_tokens):
            naive.append(text)
            naive_tokens.append(tokens)
    assert kept == naive and len(kept) < len(texts)
    verdict = novelty.check(texts[10] + " Please.")
    assert not verdict.novel and verdict.most_similar == texts[10] and verdict.max_similarity > 0.7


def test_the_nearest_instruction_is_exact_not_only_the_unpruned(testdata):
    texts = _instructions(testdata, 300)
    texts += [texts[10] + " Please.", "Give three tips for staying healthy today."]
    novelty, kept, middling = NoveltyFilter(0.7), [], 0
    for text in texts:
        verdict = novelty.check(text)
        middling += 0.3 < verdict.max_similarity <= 0.7  # the range the threshold pruning never scored
        tokens = rouge_tokens(text)
        scores = [rouge_scorer._score_lcs(tokens, rouge_tokens(other)).fmeasure for other in kept]
        assert verdict.max_similarity == max(scores, default=0.0)
        if verdict.most_similar is not None:
            assert rouge_l_score(tokens, rouge_tokens(verdict.most_similar)) == verdict.max_similarity
        if verdict.novel:
            novelty.add(text)
            kept.append(text)
    assert middling > 10
