"""Held-out metrics after every epoch, from inside the fit: a callback that scores the model being trained
on fixed labelled sets and appends one JSON line per epoch to a file.

Per set and epoch: `answer`, the mean loss on the tokens the `assistant` masking trains (the answer and its
end-of-turn marker), `prompt`, the mean loss on every other token (the `prompt` masking: system and user
turns and the template's text), and `exact`, the fraction of examples whose every answer token is the
model's most likely next token given the reference before it (teacher forcing). Greedy decoding writes
the reference answer and stops exactly when that holds, so `exact` is the exact-match accuracy of greedy
answers (up to ties between logits), from one forward pass instead of a generation. Labels come from
sftlab's own pipeline (`heldout.labelled`), the ones training uses; the model is scored in eval mode (no
dropout), one example at a time (no padding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning import Callback, LightningModule, Trainer

from sftlab.data.labels.tokenize import IGNORE_INDEX

Labelled = dict[str, tuple[list[int], list[int]]]  # record -> (input_ids, labels)


def next_token_scores(model: torch.nn.Module, input_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of each next token and whether it is the argmax, at positions 0 .. len - 2."""
    ids = torch.tensor([input_ids], device=next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
    return F.cross_entropy(logits, ids[0, 1:], reduction="none").cpu(), (logits.argmax(-1) == ids[0, 1:]).cpu()


def score_labelled(model: torch.nn.Module, answers: Labelled, prompts: Labelled) -> dict[str, Any]:
    """`answer` and `prompt` mean losses over all tokens of all examples, `exact` over examples, and the
    token counts, of the examples under the `assistant` (`answers`) and `prompt` maskings."""
    sums = {"answer": [0.0, 0], "prompt": [0.0, 0]}
    exact = 0
    for record, (ids, labels) in answers.items():
        losses, right = next_token_scores(model, ids)
        for name, masking_labels in (("answer", labels), ("prompt", prompts.get(record, (ids, []))[1])):
            trained = (
                torch.tensor(masking_labels[1:], dtype=torch.long) != IGNORE_INDEX if masking_labels else torch.zeros(0, dtype=torch.bool)
            )
            if trained.any():
                sums[name][0] += float(losses[trained].sum())
                sums[name][1] += int(trained.sum())
        exact += bool(right[torch.tensor(labels[1:]) != IGNORE_INDEX].all())
    scores: dict[str, Any] = {name: round(total / count, 5) for name, (total, count) in sums.items() if count}
    return scores | {"exact": round(exact / max(len(answers), 1), 5), "tokens": {name: count for name, (_, count) in sums.items()}}


def labelled_sets(
    sets: dict[str, str], tokenizer: str, template: str, max_seq_length: int, cache_dir: str
) -> dict[str, tuple[Labelled, Labelled]]:
    """Each set's examples under the `assistant` and the `prompt` maskings."""
    from experiments.masking_ablation.heldout import labelled

    return {
        name: tuple(
            labelled(tokenizer, template, Path(path), masking, max_seq_length, Path(cache_dir)) for masking in ("assistant", "prompt")
        )
        for name, path in sets.items()
    }


class HeldoutEachEpoch(Callback):
    def __init__(self, sets: dict[str, str], output: str, max_seq_length: int, cache_dir: str) -> None:
        """
        Args:
            sets: Name -> a conversation file to score after every epoch (held-out data, a sample of the training data).
            output: The JSON Lines file that gets one line per epoch: `{"epoch", "step", <set>: scores}`.
            max_seq_length: Tokens per example, as in training.
            cache_dir: Where `datasets` caches the sets' labels.
        """
        self.sets, self.output, self.max_seq_length, self.cache_dir = sets, Path(output), max_seq_length, cache_dir
        self.examples: dict[str, tuple[Labelled, Labelled]] = {}
        self.scored_step = -1

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        data = trainer.datamodule
        self.examples = labelled_sets(self.sets, data.hparams.tokenizer, data.hparams.template, self.max_seq_length, self.cache_dir)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.score(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.score(trainer, pl_module)  # a budget in steps or tokens can end inside an epoch

    def score(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step == self.scored_step or not trainer.is_global_zero:
            return
        self.scored_step = trainer.global_step
        model, was_training = pl_module.model, pl_module.model.training
        model.eval()
        try:
            line = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
            line |= {name: score_labelled(model, answers, prompts) for name, (answers, prompts) in self.examples.items()}
        finally:
            model.train(was_training)
        with self.output.open("a") as file:
            file.write(json.dumps(line) + "\n")
