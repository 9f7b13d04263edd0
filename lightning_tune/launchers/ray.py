"""Start a strategy's ranks as Ray actors and bring rank 0's results back to the driver.

Lightning hands ``launch`` the bound trainer function (``trainer._fit_impl`` and friends).
Read ``launch`` top to bottom for one job's life: the job is pickled; the workers come from
the trial's own worker bundles (or a placement group of their own outside Tune), warm from
the pool when the last trial of this process left some; the strategy's backend starts;
every rank trains while rank 0's reports travel over the bridge and the watchdog looks for
a stalled rank (or, in a Tune trial of a strategy that allows it, rank 0 trains in the trial
process itself and reports to Tune directly: ``in_trial``); then the workers go back to the
pool (a clean finish in a Tune trial with ``reuse_workers``) or are killed (everything else,
failures always).

The parts live beside this module: ``ranks`` (who is which rank), ``worker`` (the actor and
what it sends back), ``restore`` (the checkpoint a job resumes from, on every node),
``pickling``, ``warm_pool``, ``watchdog``, ``in_trial`` (rank 0 in the trial process);
``contract`` is what a strategy offers the launcher.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import ray
from ray.util.placement_group import (PlacementGroup, get_current_placement_group,
                                      placement_group, remove_placement_group)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from lightning_tune import shared_data
from lightning_tune.bridge import Bridge, in_tune_trial
from lightning_tune.cluster import ensure_ray
from lightning_tune.errors import TrialShapeError, WorkerError
from lightning_tune.rank_logs import append_log, failure_log_note, rank_log_path
from lightning_tune.launchers.contract import RayLaunchedStrategy, WorkerContext
from lightning_tune.launchers.in_trial import (PeerWatch, bundle_on_this_node, run_rank_zero_here,
                                               trains_rank_zero_here)
from lightning_tune.launchers.pickling import serialize_for_workers
from lightning_tune.launchers.ranks import WorkerHost, assign_ranks
from lightning_tune.launchers.restore import files_for_other_nodes, restore_path
from lightning_tune.launchers.warm_pool import WARM_POOL, ParkedWorkers, pool_key
from lightning_tune.launchers.watchdog import Watchdog
from lightning_tune.launchers.worker import (TrainingWorker, WorkerOutput,
                                             recover_results_in_driver, this_host)
from lightning_tune.resources import bundle_fits, check_cluster_can_hold
from lightning_tune.trial_folder import trial_folder

log = logging.getLogger(__name__)
_PLACEMENT_WAIT_LOG_S = 30.0


class _Bundles(NamedTuple):
    """Where the workers go: bundles of a placement group, and whether we made the group."""

    group: PlacementGroup
    indices: List[int]
    owned: bool


class RayLauncher:
    """Runs a trainer function on ``strategy.num_workers`` Ray actors (see the module doc)."""

    def __init__(self, strategy: RayLaunchedStrategy) -> None:
        self._strategy = strategy
        self._workers: List[Any] = []

    @property
    def is_interactive_compatible(self) -> bool:
        return True  # actors are separate processes: fine in notebooks

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        strategy = self._strategy
        payload = serialize_for_workers(function, args, kwargs)
        ensure_ray()
        bundles = self._reserve_bundles()
        in_trial = in_tune_trial()
        here, indices = self._worker_bundles(bundles, in_trial)
        reusable = in_trial and not bundles.owned and strategy.reuse_workers
        key = (pool_key(strategy, bundles.group.id.hex(), indices)
               if in_trial and not bundles.owned else None)
        # workers (and bridge) the last trial here left, or that start_early started
        parked = WARM_POOL.take(key)
        WARM_POOL.release()  # anything else parked: this trial's bundles are all it has
        bridge = (parked.bridge if parked and parked.bridge else Bridge()) \
            if in_trial and not here else None
        watchdog = (Watchdog(strategy.worker_timeout_s, strategy.num_workers)
                    if strategy.worker_timeout_s else None)
        finished = False
        try:
            hosts = ([this_host()] if here else []) + self._take_workers(
                bundles.group, indices, parked)
            placements, envs = assign_ranks(hosts)
            for env, backend_env in zip(envs, strategy.start_backend(placements, hosts)):
                env.update(backend_env)
            payload_ref = ray.put(payload)
            channel = bridge.channel() if bridge else None
            nodes = [host.node_id for host in hosts]
            restore = files_for_other_nodes(restore_path(function, args, kwargs), nodes)
            logs = _rank_logs(len(placements)) if in_trial else [None] * len(placements)
            node = ray.get_runtime_context().get_node_id()
            running = {
                worker.run.remote(payload_ref, placements[rank], envs[rank],
                                  WorkerContext(channel, watchdog.marks_for(rank) if watchdog
                                                else None, logs[rank],
                                                send_log_back=logs[rank] is not None
                                                and nodes[rank] != node),
                                  strategy.init_hook, restore, shared_data.references()): rank
                for rank, worker in enumerate(self._workers, start=len(hosts) - len(self._workers))
            }
            if here:  # the watch stops this job's workers only, even if it outlives the job
                stop = functools.partial(_kill_all, list(self._workers))
                peers = PeerWatch(lambda: self._wait_for_workers(running, None, None, logs, nodes),
                                  stop)
                results = run_rank_zero_here(function, args, kwargs, strategy, placements[0],
                                             envs[0], logs[0], peers, stop)
            else:
                output = self._wait_for_workers(running, bridge, watchdog, logs, nodes)
                results = output.results
            finished = True
        finally:
            strategy.stop_backend()
            if finished and reusable:
                WARM_POOL.park(key, self._workers, bridge)  # the workers wait for the next trial
                self._workers, bridge = [], None
            self._teardown(bridge, watchdog, bundles)
        if trainer is not None and not here:
            recover_results_in_driver(trainer, output)
        return results

    def start_early(self) -> None:
        """In a Tune trial, start the workers now, while the trial process builds its model
        and data; the next ``launch`` in this process takes them (warm ones are kept)."""
        strategy = self._strategy
        group = get_current_placement_group()
        if group is None or not in_tune_trial():
            return
        bundles = self._reserve_bundles()  # the trial's own: refuses a trial of the wrong shape
        here, indices = self._worker_bundles(bundles, in_trial=True)
        key = pool_key(strategy, group.id.hex(), indices)
        if WARM_POOL.holds(key):
            return
        WARM_POOL.release()
        WARM_POOL.park(key, [self._start_worker(group, index) for index in indices],
                       None if here else Bridge())

    def kill(self, signum: Any = None) -> None:
        workers, self._workers = self._workers, []
        _kill_all(workers)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_workers"] = []
        return state

    # --- where workers come from ------------------------------------------------------------
    def _reserve_bundles(self) -> _Bundles:
        """The trial's trailing worker bundles if we are in one, else a new placement group."""
        strategy = self._strategy
        shape, count = strategy.worker_bundle, strategy.num_workers
        group = get_current_placement_group()
        if group is not None:
            specs = group.bundle_specs
            if len(specs) >= count and all(bundle_fits(shape, spec) for spec in specs[-count:]):
                return _Bundles(group, list(range(len(specs) - count, len(specs))), False)
            if in_tune_trial():
                raise TrialShapeError(
                    f"This Tune trial reserved the bundles {specs}, but {type(strategy).__name__} "
                    f"needs {count} worker bundles of {shape} after the trial's own. Give the "
                    f"trainable resources=get_tune_resources(num_workers={count}, ...) "
                    "(lightning_trainable does this for you).")
        check_cluster_can_hold([shape] * count, what=f"{type(strategy).__name__}")
        group = placement_group([dict(shape) for _ in range(count)], strategy="PACK")
        waited = 0.0
        while not ray.wait([group.ready()], timeout=_PLACEMENT_WAIT_LOG_S)[0]:
            waited += _PLACEMENT_WAIT_LOG_S
            log.warning("Waited %.0f s for %d worker bundles of %s; the cluster is busy.",
                        waited, count, shape)
        return _Bundles(group, list(range(count)), True)

    def _worker_bundles(self, bundles: _Bundles, in_trial: bool) -> Tuple[bool, List[int]]:
        """Whether rank 0 trains in this trial process, and the bundles the worker actors
        take: all of them, or all but the first, which rank 0 here stands for."""
        here = in_trial and not bundles.owned and trains_rank_zero_here(self._strategy) \
            and bundle_on_this_node(bundles.group, bundles.indices[0])
        return here, bundles.indices[1:] if here else bundles.indices

    def _take_workers(self, group: PlacementGroup, indices: List[int],
                      parked: Optional[ParkedWorkers]) -> List[WorkerHost]:
        """Set ``self._workers``: the parked ones if they still live, else new ones in the
        bundles ``indices`` of ``group``."""
        if parked:
            self._workers = parked.workers
            try:
                return ray.get([worker.describe.remote() for worker in parked.workers])
            except ray.exceptions.RayActorError:
                self.kill()  # one died while parked: start them all afresh
        self._workers = [self._start_worker(group, index) for index in indices]
        return ray.get([worker.describe.remote() for worker in self._workers])

    def _start_worker(self, group: PlacementGroup, bundle_index: int) -> Any:
        shape = dict(self._strategy.worker_bundle)
        options = dict(
            num_cpus=shape.pop("CPU", 0), num_gpus=shape.pop("GPU", 0), resources=shape or None,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=bundle_index),
        )
        # the worker imports Lightning as it starts, not when the first job arrives
        return TrainingWorker.options(**options).remote(
            getattr(self._strategy, "lightning_tree", None))

    # --- while they train ---------------------------------------------------------------------
    def _wait_for_workers(self, running: Dict[ray.ObjectRef, int], bridge: Optional[Bridge],
                          watchdog: Optional[Watchdog], logs: List[Optional[str]],
                          nodes: List[str]) -> Optional[WorkerOutput]:
        """Block until every rank returns, passing rank 0's reports to Tune meanwhile.

        The first rank to fail ends the wait: its peers may be stuck in a collective. With a
        watchdog, a rank that made no progress for too long ends it too. A failed or stalled
        rank's error ends with the last lines of its log; a rank on another node sends its
        log back with its result or error.
        """
        outputs: Dict[int, Optional[WorkerOutput]] = {}
        pending = dict(running)
        while pending:
            watched = list(pending) + ([bridge.next_report()] if bridge else [])
            ready, _ = ray.wait(watched, num_returns=1,
                                timeout=watchdog.poll_s if watchdog else None)
            if not ready:
                try:
                    watchdog.check()
                except WorkerError as error:
                    raise WorkerError(error.rank,
                                      error.detail + failure_log_note(logs[error.rank])) from None
                continue
            ref = ready[0]
            if ref not in pending:
                bridge.deliver()
                continue
            rank = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                append_log(logs[rank], getattr(error.cause, "rank_log", None), nodes[rank])
                raise WorkerError(rank, str(error) + failure_log_note(logs[rank])) from error.cause
            except ray.exceptions.RayActorError as error:
                raise WorkerError(rank, f"the worker process died: {error}"
                                  + failure_log_note(logs[rank])) from None
            append_log(logs[rank], result.log, nodes[rank])
            outputs[rank] = result.output
        return outputs.get(0)  # None when rank 0 trained in this process

    # --- where workers go -----------------------------------------------------------------------
    def _teardown(self, bridge: Optional[Bridge], watchdog: Optional[Watchdog],
                  bundles: _Bundles) -> None:
        """Kill the workers still held (none once parked) and everything this launch started."""
        self.kill()
        if bridge is not None:
            bridge.close()
        if watchdog is not None:
            watchdog.stop()
        if bundles.owned:
            remove_placement_group(bundles.group)


def start_workers_early(strategy: RayLaunchedStrategy) -> None:
    """Start ``strategy``'s workers for the Tune trial this process is building (see
    :meth:`RayLauncher.start_early`); outside a trial, nothing."""
    RayLauncher(strategy).start_early()


def _kill_all(workers: List[Any]) -> None:
    for worker in workers:
        ray.kill(worker, no_restart=True)


def _rank_logs(count: int) -> List[Optional[str]]:
    """Each rank's log file in this Tune trial's folder."""
    trial_dir = trial_folder()
    return [rank_log_path(trial_dir, rank) for rank in range(count)]
