"""Start a strategy's ranks as Ray actors and bring rank 0's results back to the driver.

Lightning hands ``launch`` the bound trainer function (``trainer._fit_impl`` and friends).
The trainer and the function are pickled together, so each worker trains a copy of the very
trainer the driver holds; afterwards rank 0's weights, metrics and loop state are copied into
the driver's trainer, as Lightning's own spawn launcher does. Inside a Tune trial the workers
take the trial's own worker bundles; elsewhere they get a placement group of their own.

Outside Tune, workers are killed before ``launch`` returns or raises. In a Tune trial whose
strategy has ``reuse_workers``, workers that finished cleanly are parked in the trial process
(the warm pool): Tune's ``reuse_actors`` hands that process, placement group included, to the
next trial of the same shape, whose launch takes them instead of starting new ones. A parked
worker has released its process group and its CUDA cache, and resets its environment and
random seeds before the next job; workers of a failed job are never parked.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import ray
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from ray.util.placement_group import (PlacementGroup, get_current_placement_group,
                                      placement_group, remove_placement_group)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from lightning_tune import session
from lightning_tune._reuse import release_leftovers, start_afresh
from lightning_tune.errors import TrialShapeError, WorkerError
from lightning_tune.cluster import ensure_ray
from lightning_tune.resources import bundle_fits, check_cluster_can_hold

log = logging.getLogger(__name__)
_PLACEMENT_WAIT_LOG_S = 30.0


@dataclass(frozen=True)
class WorkerPlacement:
    """Where one rank stands in the worker group."""

    global_rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    num_nodes: int
    gpu_index: Optional[int] = None  # index into the node's CUDA_VISIBLE_DEVICES


class WorkerHost(NamedTuple):
    """What a worker reports about the machine it runs on."""

    node_id: str
    ip: str
    gpu_ids: List[str]
    interface: str  # the network interface that carries ``ip`` (Horovod's gloo needs it)


def _interface_of(ip: str) -> str:
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(address.address == ip for address in addresses):
            return name
    return "lo"


class _WorkerOutput(NamedTuple):
    weights: Optional[Dict[str, torch.Tensor]]
    trainer_state: Any
    results: Any
    callback_metrics: Dict[str, Any]
    logged_metrics: Dict[str, Any]
    progress_bar_metrics: Dict[str, Any]
    fit_loop_state: Optional[dict]
    best_model_path: Optional[str]


def _to_cpu(data: Any) -> Any:
    return apply_to_collection(data, torch.Tensor, lambda tensor: tensor.detach().cpu())


@ray.remote(num_cpus=0)
class _ProgressBoard:
    """Where ranks mark entering and leaving a step, on one clock, to find a stalled rank."""

    def __init__(self, world_size: int) -> None:
        import time

        self._clock = time.monotonic
        started = self._clock()
        self._marks = {rank: (started, None) for rank in range(world_size)}

    def mark(self, rank: int, step: Optional[str]) -> None:
        """``step``: the hook a rank just entered, or None when it left it."""
        self._marks[rank] = (self._clock(), step)

    def stalled(self, timeout_s: float) -> Optional[Tuple[int, float, Optional[str]]]:
        """(rank, seconds, step) of the rank stuck longest, if any rank is past ``timeout_s``.

        A rank inside a step is the culprit before one waiting outside (its peers wait for
        it in a collective); among equals, the one silent longest.
        """
        now = self._clock()
        late = [(step is not None, now - since, rank, step)
                for rank, (since, step) in self._marks.items() if now - since > timeout_s]
        if not late:
            return None
        _, seconds, rank, step = max(late)
        return rank, seconds, step


@ray.remote
class _TrainingWorker:
    """One rank: receives the pickled trainer function, runs it, returns rank 0's results.

    A worker may run several jobs (the warm pool); each starts from the environment the
    actor started with and from fresh random seeds, and one that finished cleanly ends by
    releasing its backend.
    """

    def __init__(self) -> None:
        self._environ = dict(os.environ)

    def describe(self) -> WorkerHost:
        ip = ray.util.get_node_ip_address()
        # gloo talks over the interface Ray uses (loopback for a local Ray) unless told otherwise
        interface = os.environ.get("GLOO_SOCKET_IFNAME") or _interface_of(ip)
        return WorkerHost(ray.get_runtime_context().get_node_id(), ip,
                          [str(gpu) for gpu in ray.get_gpu_ids()], interface)

    def free_port(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((ray.util.get_node_ip_address(), 0))
            return sock.getsockname()[1]

    def run(self, payload: bytes, placement: WorkerPlacement, env: Dict[str, str],
            bridge_end: Optional[session.BridgeEnd], init_hook: Optional[Callable[[], None]],
            progress_board: Any = None) -> Optional[_WorkerOutput]:
        start_afresh(self._environ)
        os.environ.update(env)
        try:
            if init_hook is not None:
                init_hook()
            function, args, kwargs = ray.cloudpickle.loads(payload)
            trainer = function.__self__
            trainer.strategy._progress_board = progress_board
            trainer.strategy._enter_worker(placement)
            session.enter_worker(bridge_end, placement.global_rank)
            results = function(*args, **kwargs)
            output = _collect_rank_zero_results(trainer, results, placement.global_rank)
            # after a clean finish only: a failed job's worker is killed, and a collective
            # shutdown here could hold back this rank's error while its peers wait in theirs
            trainer.strategy._leave_worker()
            return output
        finally:
            session.enter_worker(None, placement.global_rank)
            release_leftovers()


def _collect_rank_zero_results(trainer: Any, results: Any, rank: int) -> Optional[_WorkerOutput]:
    fitting = trainer.state.fn is not None and trainer.state.fn.value == "fit"
    # every rank computes the state dict: metric states may synchronise across ranks
    weights = trainer.lightning_module.state_dict() if fitting else None
    if rank != 0:
        return None
    connector = trainer._logger_connector
    checkpoint_callback = trainer.checkpoint_callback
    return _WorkerOutput(
        weights=_to_cpu(weights),
        trainer_state=trainer.state,
        results=_to_cpu(results),
        callback_metrics=_to_cpu(dict(connector.callback_metrics)),
        logged_metrics=_to_cpu(dict(connector.logged_metrics)),
        progress_bar_metrics=_to_cpu(dict(connector.progress_bar_metrics)),
        fit_loop_state=trainer.fit_loop.state_dict() if fitting else None,
        best_model_path=getattr(checkpoint_callback, "best_model_path", None),
    )


def _recover_results_in_driver(trainer: Any, output: _WorkerOutput) -> None:
    if output.weights is not None:
        # not strict: a model may add layers in setup(), which ran only in the workers
        trainer.lightning_module.load_state_dict(output.weights, strict=False)
    trainer.state = output.trainer_state
    connector = trainer._logger_connector
    connector._callback_metrics = output.callback_metrics
    connector._logged_metrics = output.logged_metrics
    connector._progress_bar_metrics = output.progress_bar_metrics
    if output.fit_loop_state is not None:
        trainer.fit_loop.load_state_dict(output.fit_loop_state)
        trainer.fit_loop.restarting = False  # finished, not interrupted: a next fit continues
        trainer.fit_loop._resuming_from_checkpoint = False
    checkpoint_callback = trainer.checkpoint_callback
    if output.best_model_path and hasattr(checkpoint_callback, "best_model_path"):
        checkpoint_callback.best_model_path = output.best_model_path


def serialize_for_workers(function: Callable, args: tuple, kwargs: dict) -> bytes:
    """Pickle the trainer function with its arguments; name the attribute that cannot be."""
    try:
        return ray.cloudpickle.dumps((function, args, kwargs))
    except Exception as error:
        trainer = function.__self__
        suspects = [("the LightningModule", "self", trainer.lightning_module),
                    ("the LightningDataModule", "self", trainer.datamodule),
                    ("the Trainer", "trainer", trainer)]
        for what, root, obj in suspects:
            if obj is None:
                continue
            culprit = _find_unpicklable(obj, root)
            if culprit:
                raise TypeError(
                    f"{what} cannot be pickled to send it to the Ray workers: {culprit} cannot be "
                    f"pickled ({error}). Create that attribute in setup() or on_fit_start(), "
                    "which run on each worker, instead of __init__.") from error
        raise TypeError(f"The training job cannot be pickled for the Ray workers: {error}") from error


def _find_unpicklable(obj: Any, path: str, depth: int = 0) -> Optional[str]:
    """The deepest attribute path below ``obj`` whose value fails to pickle."""
    if depth > 6:
        return None
    if isinstance(obj, dict):
        items = [(f"{path}[{key!r}]", value) for key, value in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(f"{path}[{index}]", value) for index, value in enumerate(obj)]
    elif hasattr(obj, "__dict__"):
        items = []
        for name, value in vars(obj).items():
            if name == "_modules" and isinstance(value, dict):  # torch submodules read as attributes
                items.extend((f"{path}.{child}", module) for child, module in value.items())
            else:
                items.append((f"{path}.{name}", value))
    else:
        return None
    for item_path, value in items:
        try:
            ray.cloudpickle.dumps(value)
        except Exception:
            return _find_unpicklable(value, item_path, depth + 1) or (
                f"{item_path} (a {type(value).__module__}.{type(value).__qualname__})")
    return None


def assign_ranks(described: List[WorkerHost],
                 main_port: int) -> Tuple[List[WorkerPlacement], List[Dict[str, str]]]:
    """Placements and environment variables for the workers, in bundle order.

    Global rank is the worker's position; nodes are numbered in order of their first rank and
    local ranks count within a node, so uneven or interleaved layouts are ranked correctly.
    A worker sees all of its node's GPUs (NCCL wants its peers visible) and uses its own.
    """
    node_ids = list(dict.fromkeys(host.node_id for host in described))
    node_gpus: Dict[str, List[str]] = {node_id: [] for node_id in node_ids}
    for host in described:
        node_gpus[host.node_id].extend(gpu for gpu in host.gpu_ids if gpu not in node_gpus[host.node_id])
    main_address = described[0].ip
    placements, envs = [], []
    for rank, host in enumerate(described):
        node_id, gpus = host.node_id, host.gpu_ids
        on_node = [other_rank for other_rank, other in enumerate(described) if other.node_id == node_id]
        placement = WorkerPlacement(
            global_rank=rank, world_size=len(described), local_rank=on_node.index(rank),
            local_world_size=len(on_node), node_rank=node_ids.index(node_id),
            num_nodes=len(node_ids),
            gpu_index=node_gpus[node_id].index(gpus[0]) if gpus else None)
        env = {
            "MASTER_ADDR": main_address, "MASTER_PORT": str(main_port),
            "WORLD_SIZE": str(placement.world_size), "RANK": str(rank),
            "LOCAL_RANK": str(placement.local_rank), "NODE_RANK": str(placement.node_rank),
            "LOCAL_WORLD_SIZE": str(placement.local_world_size),
            "GLOO_SOCKET_IFNAME": host.interface,
        }
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(node_gpus[node_id])
        placements.append(placement)
        envs.append(env)
    return placements, envs


class _Parked(NamedTuple):
    """Workers kept for the next trial, with the bridge they reported over.

    The bridge goes with them: its queue actor is a process too, and the trial-side end may
    hold a pending read that the next trial's first report must answer.
    """

    workers: List[Any]
    bridge: session.Bridge


# Parked in a Tune trial process between trials, by ``_pool_key``. A trial process holds
# one placement group, so at most one entry is live.
_warm_workers: Dict[Tuple[Any, ...], _Parked] = {}


def _pool_key(strategy: Any, group: PlacementGroup, bundle_indices: List[int]) -> Tuple[Any, ...]:
    """Workers fit a job when they sit in the same bundles and were made for the same strategy."""
    return (group.id.hex(), tuple(bundle_indices), type(strategy).__qualname__,
            tuple(sorted(strategy.worker_bundle.items())))


def release_warm_workers() -> None:
    """Kill the workers this process has parked (they also die with it)."""
    for parked in _warm_workers.values():
        for worker in parked.workers:
            ray.kill(worker, no_restart=True)
        parked.bridge.close()
    _warm_workers.clear()


class RayLauncher:
    """Runs a trainer function on ``strategy.num_workers`` Ray actors.

    The strategy supplies the worker shape (``worker_bundle``), its ``init_hook``, the
    backend's driver side (``_start_backend`` returns extra environment variables per rank,
    ``_stop_backend`` releases it) and ``_enter_worker(placement)``, run in each worker.
    """

    def __init__(self, strategy: Any) -> None:
        self._strategy = strategy
        self._workers: List[Any] = []

    @property
    def is_interactive_compatible(self) -> bool:
        return True  # actors are separate processes: fine in notebooks

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        strategy = self._strategy
        payload = serialize_for_workers(function, args, kwargs)
        ensure_ray()
        group, bundle_indices, owned = self._reserve_bundles()
        in_trial = session.in_tune_trial()
        pool_key = (_pool_key(strategy, group, bundle_indices)
                    if in_trial and not owned and strategy.reuse_workers else None)
        parked = _warm_workers.pop(pool_key, None) if pool_key is not None else None
        release_warm_workers()  # any other shape: this trial's bundles are all it has
        bridge = (parked.bridge if parked else session.Bridge()) if in_trial else None
        timeout_s = strategy.worker_timeout_s
        board = (_ProgressBoard.options(scheduling_strategy="DEFAULT").remote(strategy.num_workers)
                 if timeout_s else None)
        finished = False
        try:
            hosts = self._take_workers(group, bundle_indices, parked.workers if parked else None)
            placements, envs = assign_ranks(hosts, ray.get(self._workers[0].free_port.remote()))
            for env, backend_env in zip(envs, strategy._start_backend(placements, hosts)):
                env.update(backend_env)
            payload_ref = ray.put(payload)
            bridge_end = bridge.worker_end() if bridge else None
            running = {
                worker.run.remote(payload_ref, placement, env, bridge_end, strategy.init_hook,
                                  board): rank
                for rank, (worker, placement, env) in enumerate(zip(self._workers, placements, envs))
            }
            output = self._wait_for_workers(running, bridge, board, timeout_s)
            finished = True
        finally:
            strategy._stop_backend()
            if finished and pool_key is not None:
                _warm_workers[pool_key] = _Parked(self._workers, bridge)
                self._workers, bridge = [], None
            self._teardown(bridge, board, group if owned else None)
        if trainer is not None:
            _recover_results_in_driver(trainer, output)
        return output.results

    def kill(self, signum: Any = None) -> None:
        for worker in self._workers:
            ray.kill(worker, no_restart=True)
        self._workers = []

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_workers"] = []
        return state

    # --- placement -----------------------------------------------------------------------
    def _reserve_bundles(self) -> Tuple[PlacementGroup, List[int], bool]:
        """The trial's trailing worker bundles if we are in one, else a new placement group."""
        strategy = self._strategy
        shape, count = strategy.worker_bundle, strategy.num_workers
        group = get_current_placement_group()
        if group is not None:
            specs = group.bundle_specs
            if len(specs) >= count and all(bundle_fits(shape, spec) for spec in specs[-count:]):
                return group, list(range(len(specs) - count, len(specs))), False
            if session.in_tune_trial():
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
        return group, list(range(count)), True

    def _take_workers(self, group: PlacementGroup, bundle_indices: List[int],
                      parked: Optional[List[Any]]) -> List[WorkerHost]:
        """Set ``self._workers``: the parked ones if they still live, else new ones."""
        if parked:
            self._workers = parked
            try:
                return ray.get([worker.describe.remote() for worker in parked])
            except ray.exceptions.RayActorError:
                self.kill()  # one died while parked: start them all afresh
        self._workers = [self._start_worker(group, index) for index in bundle_indices]
        return ray.get([worker.describe.remote() for worker in self._workers])

    def _start_worker(self, group: PlacementGroup, bundle_index: int) -> Any:
        shape = dict(self._strategy.worker_bundle)
        options = dict(
            num_cpus=shape.pop("CPU", 0), num_gpus=shape.pop("GPU", 0), resources=shape or None,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=bundle_index),
        )
        return _TrainingWorker.options(**options).remote()

    # --- running ---------------------------------------------------------------------------
    def _wait_for_workers(self, running: Dict[ray.ObjectRef, int],
                          bridge: Optional[session.Bridge], board: Any = None,
                          timeout_s: Optional[float] = None) -> _WorkerOutput:
        """Block until every rank returns, passing rank 0's reports to Tune meanwhile.

        The first rank to fail ends the wait: its peers may be stuck in a collective. With
        ``timeout_s``, a rank that made no progress for that long ends it too.
        """
        outputs: Dict[int, Optional[_WorkerOutput]] = {}
        pending = dict(running)
        poll_s = min(timeout_s / 4, 10.0) if timeout_s else None
        while pending:
            watched = list(pending) + ([bridge.next_report()] if bridge else [])
            ready, _ = ray.wait(watched, num_returns=1, timeout=poll_s)
            if not ready:
                stalled = ray.get(board.stalled.remote(timeout_s))
                if stalled:
                    rank, seconds, step = stalled
                    where = f"inside {step}" if step else "between steps"
                    raise WorkerError(rank, f"rank {rank} made no progress for {seconds:.0f} s "
                                            f"({where}; worker_timeout_s={timeout_s:g}). Its peers "
                                            "wait for it in a collective, so the run was stopped.")
                continue
            ref = ready[0]
            if ref not in pending:
                bridge.deliver()
                continue
            rank = pending.pop(ref)
            try:
                outputs[rank] = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                raise WorkerError(rank, str(error)) from error.cause
            except ray.exceptions.RayActorError as error:
                raise WorkerError(rank, f"the worker process died: {error}") from None
        return outputs[0]

    def _teardown(self, bridge: Optional[session.Bridge], board: Any,
                  owned_group: Optional[PlacementGroup]) -> None:
        self.kill()
        if bridge is not None:
            bridge.close()
        if board is not None:
            ray.kill(board, no_restart=True)
        if owned_group is not None:
            remove_placement_group(owned_group)
