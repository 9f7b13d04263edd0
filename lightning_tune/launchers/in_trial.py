"""Rank 0 trained in the Tune trial process itself, the other ranks as worker actors.

The trial process has already imported torch and Lightning and built the model, so training
rank 0 there saves a worker process per trial (its start and its ~6 s of CPU importing), and
its reports go to Tune directly instead of over the bridge's queue actor. The trial's
bundles keep their shape: rank 0 stands for the first worker bundle, which no actor then
takes.

It is chosen only where the trial process can stand in for a worker safely: the strategy
offers it (``rank_zero_in_trial``, DDP), that bundle is on the trial process's node, no rank
needs a GPU (the trial's head bundle has none), and no watchdog (``worker_timeout_s``) is
set, since a stalled rank must be a process that can be killed. A failure of another rank is
seen by a thread watching the workers; it kills them, so rank 0's next collective fails too,
and the error then names that rank.
"""

from __future__ import annotations

import contextlib
import os
import threading
import traceback
from typing import Any, Callable, Optional

from lightning_tune.errors import WorkerError
from lightning_tune.launchers.contract import RayLaunchedStrategy, WorkerContext
from lightning_tune.launchers.ranks import WorkerPlacement
from lightning_tune.rank_logs import failure_log_note, output_to

# how long rank 0, failed in a collective, waits to learn which peer's failure caused it
PEER_GRACE_S = 10.0


def trains_rank_zero_here(strategy: RayLaunchedStrategy) -> bool:
    """Whether a Tune trial of ``strategy`` may train rank 0 in its own process (module doc)."""
    return bool(getattr(strategy, "rank_zero_in_trial", False)) \
        and not strategy.worker_timeout_s and not strategy.worker_bundle.get("GPU")


def bundle_on_this_node(group: Any, bundle_index: int) -> bool:
    """Whether bundle ``bundle_index`` of ``group`` was placed on this process's node: only
    then may this process stand in for it (a trial may put its ranks on another node)."""
    import ray
    from ray.util.placement_group import placement_group_table

    placed = placement_group_table(group).get("bundles_to_node_id", {})
    return placed.get(bundle_index) == ray.get_runtime_context().get_node_id()


class PeerWatch(threading.Thread):
    """Waits for the worker ranks (``wait`` returns when all did, or raises the first
    :class:`WorkerError`); on a failure it calls ``stop`` so rank 0 is not left waiting."""

    def __init__(self, wait: Callable[[], Any], stop: Callable[[], None]) -> None:
        super().__init__(name="lightning-tune-peer-watch", daemon=True)
        # not ``_stop``: Thread has a method of that name, which join() calls
        self._wait_for_peers, self._stop_peers = wait, stop
        self.failure: Optional[BaseException] = None
        self._failed = threading.Event()

    def run(self) -> None:
        try:
            self._wait_for_peers()
        except BaseException as error:  # noqa: B036 - reported to the trial's thread
            self.failure = error
            self._failed.set()
            self._stop_peers()

    def failed(self) -> bool:
        """Whether a worker rank failed already."""
        return self._failed.is_set()

    def failure_behind(self, error: BaseException) -> Optional[BaseException]:
        """The peer's failure that made rank 0 fail with ``error``, if there was one."""
        if self.failure is None and _from_the_process_group(error):
            self._failed.wait(PEER_GRACE_S)  # a dead peer takes Ray a moment to notice
        return self.failure


def run_rank_zero_here(function: Callable, args: tuple, kwargs: dict,
                       strategy: RayLaunchedStrategy, placement: WorkerPlacement,
                       env: dict, log: Optional[str], peers: PeerWatch,
                       stop_peers: Callable[[], None]) -> Any:
    """Run the trainer function as rank 0 here, then wait for the peers; returns its result.

    The process's environment is as before afterwards, and its process group is gone, so the
    next job (``test`` after ``fit``, or the next trial Tune runs here) starts clean. A
    failure raises :class:`WorkerError` naming the rank that failed first; Tune's own
    signals (a stopped trial's ``SystemExit``) pass through unchanged.
    """
    import torch

    trainer = function.__self__
    saved, threads = dict(os.environ), torch.get_num_threads()
    os.environ.update(env)
    # as many threads as Ray gives a worker of this bundle (the trial process may have 1)
    torch.set_num_threads(max(1, int(strategy.worker_bundle.get("CPU", 1))))
    peers.start()
    try:
        with output_to(log):
            if strategy.init_hook is not None:
                strategy.init_hook()
            strategy.enter_worker(placement, WorkerContext(None, None, log,
                                                           peers_failed=peers.failed))
            results = function(*args, **kwargs)
            if trainer.state.fn is not None and trainer.state.fn.value == "fit":
                strategy.weights_for_driver()  # a collective where a strategy gathers
            # this process's group goes: the next job here (or the next trial) joins anew
            strategy.leave_worker()
    except Exception as error:
        failure = peers.failure_behind(error)
        stop_peers()
        _abandon_process_group()
        if failure is not None:
            raise failure
        unexplained = ("\nA process-group error, but no worker rank was reported failed "
                       f"within {PEER_GRACE_S:g} s: a peer may still have died first."
                       if _from_the_process_group(error) else "")
        raise WorkerError(0, "".join(traceback.format_exception(error)) + unexplained
                          + failure_log_note(log)) from error
    except BaseException:
        stop_peers()
        _abandon_process_group()
        raise
    finally:
        _restore_environ(saved)
        torch.set_num_threads(threads)
    peers.join()
    if peers.failure is not None:
        raise peers.failure
    return results


def _restore_environ(saved: dict) -> None:
    """The environment as ``saved``, changing only what differs (other threads read it)."""
    for name in [name for name in os.environ if name not in saved]:
        os.environ.pop(name, None)
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _abandon_process_group() -> None:
    """Drop this process's group after a failure, without the collective goodbye of
    ``leave_worker`` (its peers are gone). Only torch backends offer ``rank_zero_in_trial``."""
    import torch.distributed as dist

    with contextlib.suppress(Exception):
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _from_the_process_group(error: BaseException) -> bool:
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, dist.DistError) or "gloo" in text or "Connection" in text
