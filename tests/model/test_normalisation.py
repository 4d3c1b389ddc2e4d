"""Per-token weights and the normalisation axis (token, sequence, turn): each exact whatever the batch
layout — accumulation 8x1 = 2x4 = 1x8, 2-process DDP, packed = unpacked — against the definition
computed example by example from full logits."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.packing import pack_examples
from sftlab.data.labels.tokenize import IGNORE_INDEX
from sftlab.model.loss import TokenLoss, label_positions
from tests.model.test_module import GradientRecorder, fit_one_step, tiny_module
from tests.test_cli import REPO

SCHEMES = ("token", "sequence", "turn")


def weighted_examples() -> list[dict[str, list]]:
    """Eight examples of 1 to 3 trained runs ("turns") of uneven lengths, with uneven positive weights."""
    generator = torch.Generator().manual_seed(1)
    layouts = [
        [(2, 3)],
        [(1, 20), (4, 5), (2, 12)],
        [(6, 2)],
        [(3, 9), (3, 1)],
        [(1, 4)],
        [(10, 2), (2, 25)],
        [(2, 7), (1, 1), (1, 3)],
        [(5, 6)],
    ]
    rows = []
    for layout in layouts:
        labels, weights = [], []
        for gap, run in layout:
            labels += [IGNORE_INDEX] * gap + [1] * run
            weights += [0.0] * gap + (0.5 + torch.rand(run, generator=generator) * 2).tolist()
        ids = torch.randint(3, 128, (len(labels),), generator=generator).tolist()
        labels = [token if label != IGNORE_INDEX else IGNORE_INDEX for token, label in zip(ids, labels)]
        rows.append({"input_ids": ids, "labels": labels, "weights": weights})
    return rows


def definition(module, rows, scheme: str) -> torch.Tensor:
    """The step's loss by its definition: groups (tokens, examples or runs) weighted means, averaged."""
    numerators, denominators = [], []
    for row in rows:
        batch = Collator(pad_token_id=0)([row])
        logits, labels, weights = module(batch)[0], batch["labels"][0], batch["weights"][0]
        groups: dict[int, list[tuple[torch.Tensor, float]]] = {}
        run = -1
        for t in range(len(labels) - 1):
            if labels[t + 1] == IGNORE_INDEX:
                continue
            run = run + 1 if t == 0 or labels[t] == IGNORE_INDEX else run
            key = {"token": len(groups), "sequence": 0, "turn": run}[scheme]
            groups.setdefault(key, []).append((F.cross_entropy(logits[t], labels[t + 1]), float(weights[t + 1])))
        for members in groups.values():
            total = sum(w for _, w in members)
            numerators.append(sum(w * loss for loss, w in members) / (1 if scheme == "token" else total))
            denominators.append(total if scheme == "token" else 1.0)
    return sum(numerators) / sum(denominators)


def reference(scheme: str) -> tuple[list[torch.Tensor], float]:
    module = tiny_module(loss=TokenLoss(normalisation=scheme))
    loss = definition(module, weighted_examples(), scheme)
    loss.backward()
    return [p.grad for p in module.parameters()], loss.item()


def one_step(rows, micro_batch: int, accumulation: int, scheme: str) -> GradientRecorder:
    return fit_one_step(tiny_module(GradientRecorder, loss=TokenLoss(normalisation=scheme)), rows, micro_batch, accumulation)


def assert_same(module: GradientRecorder, expected: tuple[list[torch.Tensor], float]) -> None:
    gradients, loss = expected
    for got, want in zip(module.gradients, gradients):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert module.step_loss == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_normalisation_is_exact_under_any_accumulation(scheme):
    expected = reference(scheme)
    for micro_batch, accumulation in ((8, 1), (2, 4), (1, 8)):
        assert_same(one_step(weighted_examples(), micro_batch, accumulation, scheme), expected)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_packed_rows_give_the_unpacked_loss_and_gradients(scheme):
    rows = weighted_examples()
    packed = pack_examples({key: [row[key] for row in rows] for key in rows[0]}, max_seq_length=64)
    packed_rows = [
        {key: packed[key][i] for key in ("input_ids", "labels", "position_ids", "weights")} for i in range(len(packed["input_ids"]))
    ]
    assert len(packed_rows) < len(rows)
    # Packing makes each example's first label untrained; the definition on the unpacked rows does the same.
    unpacked = [{**row, "labels": [IGNORE_INDEX, *row["labels"][1:]], "weights": [0.0, *row["weights"][1:]]} for row in rows]
    module = tiny_module(loss=TokenLoss(normalisation=scheme))
    loss = definition(module, unpacked, scheme)
    loss.backward()
    expected = [p.grad for p in module.parameters()], loss.item()
    assert_same(one_step(packed_rows, len(packed_rows), 1, scheme), expected)


def test_weights_all_one_are_exactly_the_unweighted_loss():
    module = tiny_module()
    batch = Collator(pad_token_id=0)(weighted_examples())
    ones = {**batch, "weights": (batch["labels"] != IGNORE_INDEX).float()}
    unweighted = {key: value for key, value in batch.items() if key != "weights"}
    results = []
    for variant in (ones, unweighted):
        module.zero_grad()
        loss_sum, normaliser, *_ = module.labelled_sums(variant)
        loss_sum.backward()
        results.append((loss_sum.item(), normaliser.item(), [p.grad.clone() for p in module.parameters()]))
    assert results[0][:2] == results[1][:2]
    assert all(torch.equal(a, b) for a, b in zip(results[0][2], results[1][2]))


def test_weight_zero_is_exactly_the_label_masked():
    module = tiny_module()
    batch = Collator(pad_token_id=0)(weighted_examples())
    drop = torch.zeros_like(batch["labels"], dtype=torch.bool)
    drop[:, ::3] = True
    zeroed = {**batch, "weights": torch.where(drop, 0.0, batch["weights"])}
    masked = {**batch, "labels": torch.where(drop, IGNORE_INDEX, batch["labels"]), "weights": torch.where(drop, 0.0, batch["weights"])}
    sums = []
    for variant in (zeroed, masked):
        module.zero_grad()
        loss_sum, normaliser, *_ = module.labelled_sums(variant)
        loss_sum.backward()
        sums.append((loss_sum.item(), normaliser.item(), [p.grad.clone() for p in module.parameters()]))
    assert sums[0][0] == pytest.approx(sums[1][0], rel=1e-6) and sums[0][1] == pytest.approx(sums[1][1])
    for a, b in zip(sums[0][2], sums[1][2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_validation_reports_the_token_average_whatever_the_training_normalisation():
    batch = Collator(pad_token_id=0)(weighted_examples())
    positions, _ = label_positions(batch["labels"])
    loss = TokenLoss(normalisation="turn")
    _, turns = loss.scale(batch, positions)
    _, tokens = loss.scale(batch, positions, "token")
    assert turns.item() == 14 and tokens.item() == pytest.approx(float(batch["weights"].sum()))


@pytest.mark.slow  # a subprocess fit (or several): the slow tier keeps the default tier (a bare `pytest`) quick
@pytest.mark.parametrize("scheme", ["sequence", "turn"])
def test_two_process_ddp_gives_the_one_process_result(tmp_path, scheme):
    output = tmp_path / "ddp.pt"
    result = subprocess.run(
        [sys.executable, "-m", "tests.model.ddp_one_step", str(output), scheme],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = torch.load(output)
    gradients, loss = reference(scheme)
    for gradient, expected in zip(got["gradients"], gradients):
        torch.testing.assert_close(gradient, expected, rtol=1e-5, atol=1e-7)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
