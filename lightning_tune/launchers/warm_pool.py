"""The warm pool: a Tune trial process keeps its cleanly finished workers for its next trial
(and the workers it started early for the trial it is building).

Tune's ``reuse_actors`` hands a finished trial's process, with its placement group, to the
next trial of the same shape. That trial's strategy is a new object, so the workers cannot
wait on it: they wait here, in the one pool of the process, under a key that says which
bundles they sit in and which strategy made them. A trial process holds one placement group,
so at most one entry is live; whatever a launch does not take is released.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, NamedTuple, Optional

import ray

from lightning_tune.bridge import Bridge


class ParkedWorkers(NamedTuple):
    """Workers kept for the next trial, with the bridge they reported over.

    The bridge goes with them: its queue actor is a process too, and the trial-side end may
    hold a pending read that the next trial's first report must answer.
    """

    workers: List[Any]
    bridge: Optional[Bridge]


def pool_key(strategy: Any, placement_group_id: str, bundle_indices: List[int]) -> Hashable:
    """Workers fit a job when they sit in the same bundles and were made for the same strategy."""
    return (placement_group_id, tuple(bundle_indices), type(strategy).__qualname__,
            tuple(sorted(strategy.worker_bundle.items())))


class WarmPool:
    """Parked workers by key: ``take`` what fits, ``park`` after a clean finish (or when
    started early), ``release`` the rest."""

    def __init__(self) -> None:
        self._parked: Dict[Hashable, ParkedWorkers] = {}

    def take(self, key: Optional[Hashable]) -> Optional[ParkedWorkers]:
        """The workers parked under ``key`` (they leave the pool), or None."""
        return self._parked.pop(key, None) if key is not None else None

    def holds(self, key: Hashable) -> bool:
        return key in self._parked

    def park(self, key: Hashable, workers: List[Any], bridge: Optional[Bridge]) -> None:
        self.release()  # one live entry: this process's bundles hold nothing else
        self._parked[key] = ParkedWorkers(list(workers), bridge)

    def release(self) -> None:
        """Kill every parked worker and close its bridge (they also die with the process)."""
        for parked in self._parked.values():
            for worker in parked.workers:
                ray.kill(worker, no_restart=True)
            if parked.bridge is not None:
                parked.bridge.close()
        self._parked.clear()

    def __len__(self) -> int:
        return sum(len(parked.workers) for parked in self._parked.values())


# The process's one pool: a trial process outlives each trial's strategy and launcher.
WARM_POOL = WarmPool()
