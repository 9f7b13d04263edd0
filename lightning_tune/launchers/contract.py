"""What a strategy must offer for :class:`~lightning_tune.launchers.ray.RayLauncher` to run it.

A strategy decides *what* runs on each rank; the launcher decides *how* the ranks start (Ray
actors in the trial's bundles) and brings rank 0's results back. They meet only through the
names below, in the order the launcher uses them. A "worker" is a rank's process: a worker
actor, or, for rank 0 of a strategy that sets ``rank_zero_in_trial = True``, the Tune trial
process itself (see ``launchers.in_trial``).

1. on the driver, ``num_workers`` and ``worker_bundle`` size the worker group, and
   ``reuse_workers`` says whether finished workers may be parked for the next trial;
2. on the driver, once the workers' hosts and ranks are known, ``start_backend`` starts
   whatever the backend needs there (a rendezvous) and returns extra environment
   variables for each rank;
3. in each worker, after the job is unpickled, ``enter_worker`` gives the strategy its
   placement and its :class:`WorkerContext`; then the trainer function runs;
4. in each worker, after a fit, every rank calls ``weights_for_driver``; rank 0's result
   becomes the driver's model weights;
5. in each worker whose job finished cleanly, ``leave_worker`` releases the backend (so a
   parked worker can join another group);
6. on the driver, ``stop_backend`` releases what ``start_backend`` started, whatever happened.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Protocol, runtime_checkable

from lightning_tune.bridge import ReportChannel
from lightning_tune.launchers.ranks import WorkerHost, WorkerPlacement
from lightning_tune.launchers.watchdog import StepMarks


class WorkerContext(NamedTuple):
    """What the launcher hands a strategy in a worker besides its placement."""

    report_channel: Optional[ReportChannel]  # rank 0's way to the trial process (in Tune)
    step_marks: Optional[StepMarks]  # where to mark steps (with worker_timeout_s)
    log_path: Optional[str] = None  # where the rank's output goes (in Tune: its trial folder)
    # the trial folder is on another node: log on this node, send the text back
    send_log_back: bool = False
    # rank 0 in the trial process: whether a worker rank already failed (ends waits for it)
    peers_failed: Optional[Callable[[], bool]] = None


@runtime_checkable
class RayLaunchedStrategy(Protocol):
    num_workers: int
    worker_bundle: Dict[str, float]
    reuse_workers: bool
    worker_timeout_s: Optional[float]
    init_hook: Optional[Callable[[], None]]

    def start_backend(self, placements: List[WorkerPlacement],
                      hosts: List[WorkerHost]) -> List[Dict[str, str]]:
        """Driver side, before ranks train: extra environment variables per rank."""

    def stop_backend(self) -> None:
        """Driver side: release what ``start_backend`` started; called even after a failure."""

    def enter_worker(self, placement: WorkerPlacement, context: WorkerContext) -> None:
        """In the worker, after unpickling: take this rank's place, device and context."""

    def weights_for_driver(self) -> Dict[str, Any]:
        """In every worker after a fit (collective): the whole model's state dict.

        Rank 0's result is the one the driver's model takes."""

    def leave_worker(self) -> None:
        """In the worker, after a clean finish: release the backend's process group."""
