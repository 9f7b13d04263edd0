"""The stalled-rank watchdog behind ``worker_timeout_s``.

Ranks mark entering and leaving each step (training, validation, test, predict: the sanity
check too) on a small board actor, on one clock. Everything before a rank's first step is
its set-up: the process start, the import of torch and Lightning (seconds, more on a busy
machine), unpickling the job, joining the process group, Lightning's own set-up. That is not
a stall, so it has its own, generous limit (``SETUP_TIMEOUT_S``, or ``worker_timeout_s`` if
that is longer), counted from the launch until every rank has made its first step. After
that a rank may not spend more than ``worker_timeout_s`` inside one step or between two.
Ranks that start early wait for their slowest peer at the first collective, so no rank's
clock runs before the last rank's first step.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

import ray

from lightning_tune.errors import WorkerError

SETUP_TIMEOUT_S = 600.0
_POLL_MAX_S = 10.0


class StallClock:
    """Where ranks mark their steps, on one clock (the board's); a first mark ends set-up."""

    def __init__(self, world_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._created = clock()
        self._ready: Dict[int, float] = {}
        self._marks: Dict[int, Tuple[float, Optional[str]]] = {}
        self._done: set = set()
        self._world_size = world_size

    def done(self, rank: int) -> None:
        """The rank's trainer function returned: what is left (teardown) is no stall."""
        self._done.add(rank)

    def mark(self, rank: int, step: Optional[str]) -> None:
        """``step``: the hook a rank just entered, or None when it left it."""
        now = self._clock()
        self._ready.setdefault(rank, now)
        self._marks[rank] = (now, step)

    def stalled(self, timeout_s: float, setup_timeout_s: float) -> Optional[Tuple[int, float, str]]:
        """(rank, seconds, where) of the rank to blame, if one is past its limit.

        While ranks are starting: the first that is not ready, once the set-up limit passed.
        Then a rank inside a step is the culprit before one waiting outside (its peers wait
        for it in a collective); among equals, the one silent longest.
        """
        now = self._clock()
        starting = [rank for rank in range(self._world_size) if rank not in self._ready]
        if starting:
            waited = now - self._created
            if waited <= setup_timeout_s:
                return None
            return starting[0], waited, ("still setting up: it never reached its first step "
                                         "(process start, imports, process group, set-up)")
        everyone_ready = max(self._ready.values())
        late = []
        for rank, (since, step) in self._marks.items():
            if rank in self._done:
                continue
            silent = now - max(since, everyone_ready)
            if silent > timeout_s:
                late.append((step is not None, silent, rank, step))
        if not late:
            return None
        _, seconds, rank, step = max(late)
        return rank, seconds, f"inside {step}" if step else "between steps"


_ProgressBoard = ray.remote(num_cpus=0)(StallClock)


class StepMarks:
    """A rank's handle on the board; travels to the worker. Marks are fire-and-forget."""

    def __init__(self, board: Any, rank: int) -> None:
        self._board, self._rank = board, rank

    def enter(self, step: str) -> None:
        self._board.mark.remote(self._rank, step)

    def leave(self) -> None:
        self._board.mark.remote(self._rank, None)

    def done(self) -> None:
        self._board.done.remote(self._rank)


class Watchdog:
    """The launcher's side: starts the board, polls it, ends the run naming the stalled rank."""

    def __init__(self, timeout_s: float, world_size: int) -> None:
        self.timeout_s = timeout_s
        self.setup_timeout_s = max(SETUP_TIMEOUT_S, timeout_s)
        self.poll_s = min(timeout_s / 4, _POLL_MAX_S)
        # outside the trial's placement group: the board needs no bundle of its own
        self._board = _ProgressBoard.options(scheduling_strategy="DEFAULT").remote(world_size)

    def marks_for(self, rank: int) -> StepMarks:
        return StepMarks(self._board, rank)

    def check(self) -> None:
        """Raise :class:`WorkerError` for a rank past its limit; return otherwise."""
        stalled = ray.get(self._board.stalled.remote(self.timeout_s, self.setup_timeout_s))
        if stalled:
            rank, seconds, where = stalled
            raise WorkerError(rank, f"rank {rank} made no progress for {seconds:.0f} s "
                                    f"({where}; worker_timeout_s={self.timeout_s:g}, set-up "
                                    f"limit {self.setup_timeout_s:g} s). Its peers wait for it "
                                    "in a collective, so the run was stopped.")

    def stop(self) -> None:
        ray.kill(self._board, no_restart=True)
