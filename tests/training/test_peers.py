"""The dead-rank watch without processes: two watches over one real TCPStore, on a clock the test moves.
A silent rank is named after `timeout` (after three beats once a collective has failed), a rank that
left on purpose never is, one that failed is named as such, and the others read rank 0's verdict.
The 2-process runs are in test_fsdp2_stops.py (slow)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch.distributed as dist

from sftlab.errors import SftlabError
from sftlab.training import peers
from sftlab.training.peers import PeerWatch, collective_timeout, raised_by_torch_distributed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(peers.time, "monotonic", clock)
    return clock


@pytest.fixture
def watches(clock) -> tuple[PeerWatch, PeerWatch]:
    """Rank 0's and rank 1's watch (timeout 20 s: a beat every 2 s), threads not started: the test beats."""
    served = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=5))
    client = dist.TCPStore("127.0.0.1", served.port, is_master=False, wait_for_workers=False, timeout=timedelta(seconds=5))
    return PeerWatch(served, 0, 2, timeout=20.0), PeerWatch(client, 1, 2, timeout=20.0)


def publish(watch: PeerWatch, key: str, value: str) -> None:
    """`store.set` as a rank does it, then a round trip on the same connection: TCPStore's set does not wait
    for the server, so another connection could otherwise read before the value is there (a flaky test)."""
    watch.store.set(key, value)
    watch.store.get(key)


def beat(*watches: PeerWatch) -> None:
    for watch in watches:
        watch.store.add(f"beat/{watch.rank}", 1)
    for watch in watches:
        watch.observe()


def test_ranks_that_beat_are_never_named_and_a_silent_one_is_after_the_timeout(watches, clock):
    rank0, rank1 = watches
    for _ in range(30):  # a minute of beats
        clock.now += rank0.interval
        beat(rank0, rank1)
        assert rank0.verdict() is None and rank1.verdict() is None
    clock.now += 19
    beat(rank0)  # rank 1 is silent from here
    assert rank0.verdict() is None
    clock.now += 1
    beat(rank0)
    assert rank0.verdict() == "rank 1 gave no sign of life for 20 s (killed, crashed or frozen)"


def test_after_a_failed_collective_three_silent_beats_name_the_rank(watches, clock):
    rank0, _ = watches
    beat(*watches)
    rank0.main_failed.set()
    clock.now += 2 * rank0.interval
    beat(rank0)
    assert rank0.verdict() is None
    clock.now += rank0.interval
    beat(rank0)
    assert rank0.verdict() == "rank 1 gave no sign of life for 6 s (killed, crashed or frozen)"


def test_a_rank_that_ends_on_purpose_is_never_named_and_one_that_failed_is_named_as_such(watches, clock):
    rank0, rank1 = watches
    beat(*watches)
    rank1.leave("done")
    clock.now += 600
    beat(rank0)
    assert rank0.verdict() is None and rank0.peers == {}
    rank0.peers = {1: peers.Peer(1, clock.now, beat=int(rank0.store.add("beat/1", 0)))}  # watched again, and this time
    publish(rank1, "left/1", "failed")
    clock.now += 20
    beat(rank0)
    assert rank0.verdict() == "rank 1 stopped on an error of its own (see its message)"


def test_the_other_ranks_read_rank_0s_verdict(watches):
    rank0, rank1 = watches
    assert rank1.published_verdict() is None
    publish(rank0, "verdict", "rank 3 gave no sign of life for 20 s (killed, crashed or frozen)")
    assert rank1.published_verdict() == "rank 3 gave no sign of life for 20 s (killed, crashed or frozen)"


def test_errors_out_of_torch_distributed_are_told_from_a_rank_s_own():
    with pytest.raises(Exception) as collective:
        dist.barrier()  # no process group: raised inside torch.distributed
    assert raised_by_torch_distributed(collective.value)
    assert raised_by_torch_distributed(dist.DistNetworkError("Connection reset by peer"))
    assert not raised_by_torch_distributed(RuntimeError("a bug of this rank's own"))


def test_collectives_wait_at_least_30_minutes_and_the_timeout_must_be_positive():
    assert collective_timeout(20) == timedelta(minutes=30)
    assert collective_timeout(7200) == timedelta(hours=2)
    with pytest.raises(SftlabError, match="trainer.strategy timeout: .* must be > 0, got 0"):
        collective_timeout(0)
