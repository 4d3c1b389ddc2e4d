"""Scoring a model on each source's held-out conversations: the loss on the tokens of several maskings
from one forward pass per conversation, the answer accuracy on the reasoning problems, and optionally
MT-bench ratings from a judge endpoint.

Each masking's labels are built by sftlab's own data pipeline (`SFTDataModule.examples`, the labels
training uses); the conversation is run through the model once and every masking's loss is the mean
next-token cross-entropy over its trained labels, so `assistant` here equals `sftlab eval ppl
--masking assistant` on the same file (tested), at a fraction of the cost of one pass per masking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from experiments.masking_ablation.reasoning_data import answer_key
from sftlab.data.datamodule import SFTDataModule
from sftlab.data.labels.masking import MaskingStrategy, TrainParts
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.inference.generate import Generator, Sampling
from sftlab.inference.loading import LoadedModel
from sftlab.inference.prompts import read_dataset_prompts

# What a held-out loss is measured on: a name and the masking whose labels it averages over.
EVAL_MASKINGS: dict[str, str | MaskingStrategy] = {
    "assistant": "assistant",  # everything an assistant message writes
    "prompt": "prompt",  # system, user and tool turns and the template's text (what `none` also trains)
    "answer": "answer_only",  # the answers and their end-of-turn markers, reasoning and tool calls as context
    "reasoning": TrainParts({"reasoning": 1.0}),  # the reasoning alone
    "tool_calls": TrainParts({"tool_calls": 1.0}),  # the tool calls alone
}
SOURCE_METRICS = {
    "oasst": ("assistant", "prompt"),
    "fastchat": ("assistant", "prompt"),
    "reasoning": ("assistant", "answer", "reasoning"),
    "tools": ("assistant", "answer", "tool_calls"),
}


def labelled(
    tokenizer: str, template: str, path: Path, masking: str | MaskingStrategy, max_seq_length: int, cache_dir: Path
) -> dict[str, Any]:
    """`{record: (input_ids, labels)}` of a held-out file under one masking (records it trains nothing of are
    absent), with a tokenizer (folder or GGUF) and template as `data.tokenizer` and `data.template` take them."""
    data = SFTDataModule(
        val_path=str(path),
        tokenizer=tokenizer,
        template=template,
        val_masking=masking,
        max_seq_length=max_seq_length,
        cache_dir=str(cache_dir),
    )
    dataset, _ = data.examples("val")
    return {row["source"]: (row["input_ids"], row["labels"]) for row in dataset}


def token_losses(model: torch.nn.Module, input_ids: list[int]) -> torch.Tensor:
    """The next-token cross-entropy at every position of one sequence: (len - 1,), float32."""
    ids = torch.tensor([input_ids], device=next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
    return F.cross_entropy(logits.float(), ids[0, 1:], reduction="none").cpu()


def score_source(loaded: LoadedModel, path: Path, metrics: tuple[str, ...], max_seq_length: int, cache_dir: Path) -> dict[str, dict]:
    """`{metric: {"loss", "tokens"}}` over all held-out records of one file (metrics with no token absent)."""
    by_metric = {
        metric: labelled(loaded.tokenizer_path, loaded.template, path, EVAL_MASKINGS[metric], max_seq_length, cache_dir)
        for metric in metrics
    }
    inputs: dict[str, list[int]] = {}
    for examples in by_metric.values():
        for record, (ids, _) in examples.items():
            if inputs.setdefault(record, ids) != ids:
                raise RuntimeError(f"{record}: the maskings tokenized it differently")
    sums = {metric: [0.0, 0] for metric in metrics}
    for record, ids in inputs.items():
        losses = token_losses(loaded.model, ids)
        for metric, examples in by_metric.items():
            if record in examples:
                trained = torch.tensor(examples[record][1][1:]) != IGNORE_INDEX
                sums[metric][0] += float(losses[trained].sum())
                sums[metric][1] += int(trained.sum())
    return {metric: {"loss": round(total / count, 5), "tokens": count} for metric, (total, count) in sums.items() if count}


def final_answer(text: str) -> str:
    """A generated answer without its reasoning (what follows the last `</think>`)."""
    return text.rsplit("</think>", 1)[-1].strip()


def reasoning_accuracy(loaded: LoadedModel, path: Path, max_new_tokens: int) -> dict[str, Any]:
    """Greedy answers to the held-out problems: the fraction whose result is right (`accuracy`), the
    fraction that reasoned first (`reasoned`: wrote a think block) and the first three answers."""
    items = read_dataset_prompts(str(path))
    generator = Generator(loaded, Sampling(max_new_tokens=max_new_tokens), batch_size=len(items))
    answers = [answer.answer for answer in generator.answer([item.conversation for item in items])]
    right = [answer_key(final_answer(answer)) == answer_key(item.reference or "") for answer, item in zip(answers, items)]
    return {
        "accuracy": sum(right) / len(right),
        "reasoned": sum("</think>" in answer for answer in answers) / len(answers),
        "examples": answers[:3],
    }


def mtbench_rating(loaded: LoadedModel, judge: Any, limit: int, max_new_tokens: int) -> float | None:
    """The mean judge rating (1-10) of the answers to the first `limit` MT-bench questions."""
    from sftlab.evaluation.mtbench import answer_questions, judge_answers, load_questions, summarize

    questions = load_questions()[:limit]
    rows = answer_questions(Generator(loaded, Sampling(max_new_tokens=max_new_tokens)), questions, "ablation")
    return summarize(judge_answers(judge, rows, questions))["overall"]["mean"]
