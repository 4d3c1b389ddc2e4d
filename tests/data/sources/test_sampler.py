"""The training order: seeded per epoch, split over ranks, length-grouped, resumable mid-epoch."""

from __future__ import annotations

import torch

from sftlab.data.labels.collate import Collator
from sftlab.data.labels.tally import Tally, TallyingCollator
from sftlab.data.sources.loaders import ResumableDataLoader
from sftlab.data.sources.sampler import EpochSampler

LENGTHS = torch.randint(1, 1000, (403,), generator=torch.Generator().manual_seed(0)).tolist()


def test_order_depends_only_on_seed_and_epoch():
    first, second = EpochSampler(LENGTHS, 4, seed=3), EpochSampler(LENGTHS, 4, seed=3)
    assert list(first) == list(second) and sorted(first) == list(range(403))
    second.set_epoch(1)
    assert list(first) != list(second)
    assert list(EpochSampler(LENGTHS, 4, seed=4)) != list(first)


def test_ranks_share_the_epoch_disjointly_and_length_grouped_batches_match():
    ranks = [list(EpochSampler(LENGTHS, 4, seed=3, group_by_length=True, megabatch_size=10, num_replicas=2, rank=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 202  # 403 padded to 404 by repeating the first index
    assert sorted(ranks[0] + ranks[1])[:404] == sorted(list(range(403)) + [ranks[0][0]])
    for step in range(len(ranks[0]) // 4):
        step_lengths = [LENGTHS[i] for r in ranks for i in r[step * 4 : (step + 1) * 4]]
        assert max(step_lengths) - min(step_lengths) < 500  # a random batch spans ~all of 1..1000


ROWS = [{"input_ids": [i, i + 1], "labels": [i, i + 1]} for i in range(403)]


def _loader() -> ResumableDataLoader:
    collate = TallyingCollator(Collator(pad_token_id=0, pad_to_multiple_of=1), sources=1)
    return ResumableDataLoader(ROWS, batch_size=4, sampler=EpochSampler(LENGTHS, 4, seed=3), collate_fn=collate, tally=Tally({"all": 1.0}))


def _trained(loader: ResumableDataLoader) -> list[list[int]]:
    """Every batch of an epoch, each marked trained as the loop takes it."""
    batches = []
    for batch in loader:
        loader.trained.trained()
        batches.append(batch["input_ids"][:, 0].tolist())
    return batches


def test_loader_resumes_at_the_next_batch_of_the_same_epoch_only():
    full = _loader()
    full.sampler.set_epoch(2)
    expected = _trained(full)
    interrupted = _loader()
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    for _ in range(7):
        next(iterator)
        interrupted.trained.trained()
    next(iterator)  # fetched ahead, not trained: not part of the position
    assert interrupted.trained.position == {"epoch": 2, "batches": 7}
    assert interrupted.trained.tally.sums[0].tolist() == [28, 56, 28]  # rows, tokens, trainable tokens of 7 batches

    resumed = _loader()
    resumed.resume(interrupted.trained.position)
    resumed.sampler.set_epoch(2)
    assert _trained(resumed) == expected[7:]
    assert resumed.trained.position == {"epoch": 2, "batches": len(expected)}

    ended = _loader()
    ended.resume({"epoch": 2, "batches": len(expected)})  # saved at the end of epoch 2
    ended.sampler.set_epoch(3)
    assert len(_trained(ended)) == len(expected)
