"""A rank that dies or freezes stops the others within `timeout` seconds, with one line naming it.

A rank killed by SIGKILL or the OOM killer (or frozen whole: a stopped process, a hung filesystem) leaves
the others inside a collective. gloo notices the closed socket within seconds but can only say
`Connection reset by peer` (a 40-line traceback, no rank); NCCL does not notice at all and waits for the
process group's timeout (Lightning's: 30 minutes). So every rank of a multi-process run keeps a heartbeat
in a small key-value store of its own (torch's `TCPStore`, served by rank 0's process on a free port of
the main node): a thread adds 1 to `beat/RANK` every `interval` seconds. Rank 0 watches every other
rank's beat, the others watch rank 0's (and the store itself, which ends with rank 0's process). A rank
whose beat has not moved for `timeout` seconds is taken for dead; rank 0 publishes the verdict under
`verdict` for the others, and every survivor prints one line naming the rank and exits with status 1,
from the watching thread (`os._exit`): the main thread may be stuck in a collective nothing interrupts.

When the main thread's collective fails first (gloo: a peer's socket closed), the strategy's
`on_exception` waits for the verdict instead of letting the traceback out, and three silent intervals
are enough: the run cannot go on either way, and the line names the rank whose beat stopped. A rank that
ends on purpose (fit done, a preemption stop) or on an error of its own says so under `left/RANK`, so
its silence is never taken for a death, and an error of its own is named as one.

Lightning's own launcher (`sftlab fit --trainer.devices N`: rank 0 starts the node's other ranks) kills
the node's processes, itself included, with SIGKILL within 5 s of a rank it started exiting non-zero (its
child-process observer): that is how a dead rank on one machine is stopped (Lightning names it in one
line, `[rank: 1] Child process with PID ... terminated with code -9`). So that a stop all
ranks share (a preemption, a checkpoint that cannot be written) ends with rank 0's own exit status and
line, a rank that rank 0's process started lets rank 0 exit first (for up to `LAUNCHER_GRACE` seconds).

Beats come from a thread, not from training steps: a slow step, rank 0 tokenizing the data while the
others wait, or a long checkpoint never looks like a death; only a process that cannot run a Python
thread for `timeout` seconds does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.pytorch.strategies import ParallelStrategy

from sftlab.errors import SftlabError, Stopped

DEAD_RANK_EXIT_STATUS = 1
TORCH_DISTRIBUTED = Path(dist.__file__).parent
QUICK_INTERVALS = 3  # silent intervals that name a rank once the main thread's collective has failed
LAUNCHER_GRACE = 10.0  # seconds a rank started by rank 0's process waits for it to exit first
STORE_FAILURES = 2  # store operations failing in a row that mean rank 0's process (which serves it) is gone


@dataclass
class Peer:
    """What this rank knows of one rank it watches."""

    rank: int
    since: float  # monotonic time its beat last moved (or the watch started)
    beat: int = -1
    failed: bool = False  # it left on an error of its own


def beat_interval(timeout: float) -> float:
    """Seconds between beats: a tenth of `timeout`, at most 5."""
    return min(5.0, timeout / 10)


def ranks(peers: list[Peer]) -> str:
    """`rank 1`, `ranks 1, 3`."""
    return f"rank{'s' if len(peers) > 1 else ''} {', '.join(str(peer.rank) for peer in peers)}"


def raised_by_torch_distributed(exception: BaseException) -> bool:
    """Whether `exception` came out of a torch.distributed call (gloo raises plain RuntimeErrors)."""
    if isinstance(exception, dist.DistError):
        return True
    frame = exception.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and Path(frame.tb_frame.f_code.co_filename).is_relative_to(TORCH_DISTRIBUTED)


class PeerWatch:
    def __init__(self, store: dist.Store, rank: int, world_size: int, timeout: float, launcher: int | None = None) -> None:
        """`launcher`: the pid of rank 0's process where it started this one (Lightning's launcher), else None."""
        self.store, self.rank, self.timeout, self.launcher = store, rank, timeout, launcher
        self.interval = beat_interval(timeout)
        start = time.monotonic()
        self.peers = {peer: Peer(peer, start) for peer in (range(1, world_size) if rank == 0 else [0])}
        self.store_failures = 0  # in a row; STORE_FAILURES of them: rank 0's process ended or froze
        self.main_failed = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="sftlab-peer-watch", daemon=True)

    @classmethod
    def start(cls, strategy: ParallelStrategy, timeout: float) -> PeerWatch | None:
        """Every rank calls this once the process group exists (a collective: rank 0 shares its port)."""
        if strategy.world_size < 2:
            return None
        host, wait = strategy.cluster_environment.main_address, timedelta(seconds=max(1.0, beat_interval(timeout)))
        served = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, timeout=wait) if strategy.global_rank == 0 else None
        rank0 = (served.port, socket.gethostname(), os.getpid()) if served is not None else None
        port, rank0_host, rank0_pid = strategy.broadcast(rank0)
        store = served or dist.TCPStore(host, port, is_master=False, wait_for_workers=False, timeout=wait)
        started_by_rank0 = served is None and rank0_host == socket.gethostname() and os.getppid() == rank0_pid
        watch = cls(store, strategy.global_rank, strategy.world_size, timeout, rank0_pid if started_by_rank0 else None)
        watch.thread.start()
        return watch

    @property
    def store_lost(self) -> bool:
        return self.store_failures >= STORE_FAILURES

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            published = None
            if not self.store_lost:
                try:
                    self.store.add(f"beat/{self.rank}", 1)
                    published = self.published_verdict()
                    self.observe()
                    self.store_failures = 0
                except dist.DistError:
                    self.store_failures += 1
            if verdict := published or self.verdict():
                self.stop_this_process(verdict)

    def observe(self) -> None:
        """Read the beats of the watched ranks, and whether a silent one has left."""
        now = time.monotonic()
        for peer in list(self.peers.values()):
            beat = int(self.store.add(f"beat/{peer.rank}", 0))
            if beat != peer.beat:
                peer.beat, peer.since = beat, now
            elif self.store.check([f"left/{peer.rank}"]):
                if self.store.get(f"left/{peer.rank}").decode() == "done":
                    del self.peers[peer.rank]
                else:
                    peer.failed = True

    def published_verdict(self) -> str | None:
        if self.rank == 0 or not self.store.check(["verdict"]):
            return None
        return self.store.get("verdict").decode()

    def verdict(self) -> str | None:
        """What stopped the run, once a watched rank has been silent long enough; None while all live."""
        patience = QUICK_INTERVALS * self.interval if self.main_failed.is_set() else self.timeout
        now = time.monotonic()
        silent = [peer for peer in self.peers.values() if now - peer.since >= patience]
        if not silent:
            return None
        if self.store_lost and self.rank != 0:
            return f"lost contact with rank 0 for {now - silent[0].since:.0f} s (it ended, was killed or froze)"
        failed = [peer for peer in silent if peer.failed]
        gone = [peer for peer in silent if not peer.failed]
        parts = [f"{ranks(failed)} stopped on an error of its own (see its message)"] if failed else []
        if gone:
            seconds = min(now - peer.since for peer in gone)
            parts.append(f"{ranks(gone)} gave no sign of life for {seconds:.0f} s (killed, crashed or frozen)")
        return "; ".join(parts)

    def stop_this_process(self, verdict: str) -> None:
        if self.rank == 0:
            self.store.set("verdict", verdict)
            time.sleep(2 * self.interval)  # the others read it within one interval (rank 0's process serves it)
        print(
            f"sftlab: error: {verdict}: rank {self.rank} stops (trainer.strategy timeout {self.timeout:g} s); "
            "relaunch with --ckpt_path last to resume from the last whole checkpoint",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os._exit(DEAD_RANK_EXIT_STATUS)

    def on_exception(self, exception: BaseException) -> None:
        """The main thread's error: a failed collective waits for the verdict (which ends the process); a
        stop (preemption) or an error of this rank's own is said to the others."""
        if raised_by_torch_distributed(exception):
            self.main_failed.set()
            self.thread.join(self.timeout + QUICK_INTERVALS * self.interval)
            self.leave("failed")
            return
        self.leave("done" if isinstance(exception, (Stopped, KeyboardInterrupt)) else "failed")
        deadline = time.monotonic() + LAUNCHER_GRACE
        while self.launcher is not None and os.getppid() == self.launcher and time.monotonic() < deadline:
            time.sleep(0.05)

    def leave(self, how: str) -> None:
        """Stop watching and tell the others this rank ends on purpose (`done`) or on its own error (`failed`)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if not self.store_lost:
            with contextlib.suppress(dist.DistError):  # the store went with rank 0: nobody left to tell
                self.store.set(f"left/{self.rank}", how)


def collective_timeout(timeout: float) -> timedelta:
    """How long one collective may wait: `timeout`, and never less than Lightning's 30 minutes (ranks that
    live wait for each other: rank 0 tokenizing the data, a long checkpoint)."""
    if not timeout > 0:
        raise SftlabError(f"trainer.strategy timeout: seconds a silent rank is waited for, must be > 0, got {timeout!r}")
    return max(timedelta(seconds=timeout), default_pg_timeout)
