"""The training order: seeded per epoch, split over ranks, length-grouped, resumable mid-epoch."""

from __future__ import annotations

import torch

from sftlab.data.sampler import EpochSampler, ResumableDataLoader

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


def test_loader_resumes_at_the_next_batch_of_the_same_epoch_only():
    def loader():
        return ResumableDataLoader(list(range(403)), batch_size=4, sampler=EpochSampler(LENGTHS, 4, seed=3))

    full = loader()
    full.sampler.set_epoch(2)
    expected = [batch.tolist() for batch in full]
    interrupted = loader()
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    for _ in range(7):
        next(iterator)
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches": 7}

    resumed = loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    rest = [batch.tolist() for batch in resumed]
    assert rest == expected[7:]
    assert resumed.state_dict() == {"epoch": 2, "batches": len(expected)}

    ended = loader()
    ended.load_state_dict({"epoch": 2, "batches": len(expected)})  # saved at the end of epoch 2
    ended.sampler.set_epoch(3)
    assert len(list(ended)) == len(expected)
