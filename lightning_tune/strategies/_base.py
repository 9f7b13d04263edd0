"""What every Ray-launched strategy shares: its worker shape, its place in the worker group,
step marks for the watchdog, and (for torch backends) a process group that meets without a
listening server.

The strategies here are Lightning strategies whose ranks are Ray actors started by
:class:`~lightning_tune.launchers.ray.RayLauncher`; this base implements the launcher's side
of :class:`~lightning_tune.launchers.contract.RayLaunchedStrategy`. On the driver (no
placement yet) a strategy reports itself as rank 0 of ``num_workers``.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import torch

from lightning_tune.bridge import ReportChannel
from lightning_tune.errors import InvalidTypeError, UnknownArgumentError
from lightning_tune.launchers.contract import WorkerContext
from lightning_tune.launchers.ranks import WorkerHost, WorkerPlacement
from lightning_tune.launchers.ray import RayLauncher
from lightning_tune.launchers.watchdog import StepMarks
from lightning_tune.lightning_trees import PerTree, fabric_module, tree_module
from lightning_tune.resources import (check_worker_options, check_worker_shape,
                                      resolve_worker_shape, worker_bundle)

# what ray_lightning called these arguments, and ours
_RAY_LIGHTNING_NAMES = {"num_cpus_per_worker": "cpus_per_worker",
                        "num_gpus_per_worker": "resources_per_worker={'GPU': ...}",
                        "cpus_per_actor": "cpus_per_worker"}


class RayStrategyBase(PerTree):
    """The launcher-facing half of a Ray strategy; concrete strategies add the backend."""

    # rank 0 may train in the Tune trial process (see launchers.in_trial); DDP offers it
    rank_zero_in_trial: bool = False
    # set in the worker by enter_worker
    placement: Optional[WorkerPlacement] = None
    report_channel: Optional[ReportChannel] = None
    step_marks: Optional[StepMarks] = None
    peers_failed: Optional[Callable[[], bool]] = None

    def _init_workers(self, num_workers: int, cpus_per_worker: float, use_gpu: bool,
                      resources_per_worker: Optional[Mapping[str, float]],
                      init_hook: Optional[Callable[[], None]],
                      worker_timeout_s: Optional[float], reuse_workers: bool) -> None:
        resources = dict(resources_per_worker or {})
        if use_gpu and "GPU" not in resources:
            resources["GPU"] = 1
        cpus, gpus, extra = resolve_worker_shape(cpus_per_worker, 0, resources)
        check_worker_shape(num_workers, cpus, gpus, extra)
        if init_hook is not None and not callable(init_hook):
            raise InvalidTypeError(
                f"init_hook must be a callable taking no arguments, got {init_hook!r}.")
        check_worker_options(worker_timeout_s, reuse_workers)
        self.num_workers = num_workers
        self.cpus_per_worker = cpus
        self.use_gpu = bool(gpus)
        self.resources_per_worker = extra
        self.init_hook = init_hook
        self.worker_timeout_s = worker_timeout_s
        self.reuse_workers = reuse_workers
        self.worker_bundle: Dict[str, float] = worker_bundle(cpus, gpus, extra)

    def _configure_launcher(self) -> None:
        self._launcher = RayLauncher(self)

    def _new_cluster_environment(self) -> Any:
        return fabric_module(self.lightning_tree, "plugins.environments").LightningEnvironment()

    # --- the launcher's contract ------------------------------------------------------------
    def start_backend(self, placements: List[WorkerPlacement],
                      hosts: List[WorkerHost]) -> List[Dict[str, str]]:
        return [{} for _ in placements]

    def stop_backend(self) -> None:
        pass

    def enter_worker(self, placement: WorkerPlacement, context: WorkerContext) -> None:
        self.placement = placement
        self.report_channel, self.step_marks = context.report_channel, context.step_marks
        self.peers_failed = context.peers_failed
        self.cluster_environment = self._new_cluster_environment()
        self.num_nodes = placement.num_nodes
        accelerators = tree_module(self.lightning_tree, "accelerators")
        self.accelerator = (accelerators.CUDAAccelerator() if self.use_gpu
                            else accelerators.CPUAccelerator())
        self.set_world_ranks()

    def weights_for_driver(self) -> Dict[str, Any]:
        return self.lightning_module.state_dict()

    def leave_worker(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            # no rank closes its connections while a peer still uses them (a subgroup the
            # job made at its very end may still be connecting)
            dist.barrier()
            dist.destroy_process_group()

    # --- steps, marked for the watchdog ------------------------------------------------------
    def _marked(self, step: str, *args: Any, **kwargs: Any) -> Any:
        marks = self.step_marks
        if marks is not None:
            marks.enter(step)
        result = getattr(super(), step)(*args, **kwargs)
        if marks is not None:
            marks.leave()
        return result

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("training_step", *args, **kwargs)

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("validation_step", *args, **kwargs)

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("test_step", *args, **kwargs)

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("predict_step", *args, **kwargs)

    # --- where this rank stands ----------------------------------------------------------------
    @property
    def root_device(self) -> torch.device:
        if self.placement is not None and self.placement.gpu_index is not None:
            return torch.device("cuda", self.placement.gpu_index)
        return torch.device("cpu")

    @property
    def distributed_sampler_kwargs(self) -> Dict[str, Any]:
        return {"num_replicas": self.world_size, "rank": self.global_rank}

    def set_world_ranks(self) -> None:
        from lightning_utilities.core.rank_zero import rank_zero_only

        rank, size = ((self.placement.global_rank, self.placement.world_size) if self.placement
                      else (0, self.num_workers))
        if self.cluster_environment is not None:
            self.cluster_environment.set_global_rank(rank)
            self.cluster_environment.set_world_size(size)
        rank_zero_only.rank = rank

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        for name in ("report_channel", "step_marks", "peers_failed"):
            state.pop(name, None)
        return state

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_workers={self.num_workers}, cpus_per_worker="
                f"{self.cpus_per_worker}, use_gpu={self.use_gpu})")


class TorchProcessGroupMixin:
    """The ranks of a ``torch.distributed`` backend (DDP, FSDP) meet through
    :mod:`lightning_tune.rendezvous`: a file on one node, a Ray actor across nodes, so no
    rendezvous server listens on the network."""

    _rendezvous: Any = None

    def start_backend(self, placements: List[WorkerPlacement],
                      hosts: List[WorkerHost]) -> List[Dict[str, str]]:
        from lightning_tune.rendezvous import RENDEZVOUS_VARIABLE, plan_rendezvous

        self._rendezvous = plan_rendezvous([host.node_id for host in hosts])
        return [{RENDEZVOUS_VARIABLE: self._rendezvous.address} for _ in placements]

    def stop_backend(self) -> None:
        if self._rendezvous is not None:
            self._rendezvous.close()
            self._rendezvous = None

    def setup_environment(self) -> None:
        self.join_process_group()  # before Lightning's own set-up, which then finds the group
        super().setup_environment()

    def _get_process_group_backend(self) -> str:
        backend = super()._get_process_group_backend()
        if backend == "nccl" and not self._process_group_backend and self.placement is not None \
                and self.placement.shares_gpu:
            return "gloo"  # NCCL refuses two ranks on one GPU; gloo reduces CUDA tensors too
        return backend

    def join_process_group(self) -> None:
        """Join this rank's process group through the trial's rendezvous (once)."""
        import os

        import torch.distributed as dist

        from lightning_tune.rendezvous import RENDEZVOUS_VARIABLE, open_store, wait_for_peers

        address = os.environ.get(RENDEZVOUS_VARIABLE)
        if self.placement is None or not address or dist.is_initialized():
            return
        self.set_world_ranks()
        device = self.root_device
        options = {}
        if device.type == "cuda":  # NCCL binds to the device this rank trains on
            torch.cuda.set_device(device)
            options["device_id"] = device
        timeout_s = self._timeout.total_seconds()
        store = open_store(address, self.placement.world_size, timeout_s)
        wait_for_peers(store, self.placement.global_rank, self.placement.world_size, timeout_s,
                       self.peers_failed)
        dist.init_process_group(self._get_process_group_backend(), store=store,
                                rank=self.placement.global_rank,
                                world_size=self.placement.world_size, timeout=self._timeout,
                                **options)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_rendezvous", None)
        return state


def check_known_arguments(strategy: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Refuse keywords nothing accepts, at construction, naming the one probably meant.

    Without this an unknown keyword travels to the workers and fails there (e.g. as a
    ``TypeError`` from ``DistributedDataParallel``), after the actors started.
    """
    accepted = sorted(set(accepted))
    for name in given:
        if name in accepted:
            continue
        meant = _RAY_LIGHTNING_NAMES.get(name) or next(
            iter(difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)), None)
        hint = f" Did you mean {meant}?" if meant else ""
        raise UnknownArgumentError(
            f"{strategy} got an unexpected keyword argument {name!r}.{hint} It takes: "
            f"{', '.join(accepted)}.")


def parameter_names(*callables: Callable) -> List[str]:
    """The named (not ``*args``/``**kwargs``) parameters of ``callables`` that a user may pass
    (not ``self``, DDP's ``module`` or the ``cluster_environment`` the strategy sets itself)."""
    names = []
    for function in callables:
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) \
                    and parameter.name not in ("self", "module", "cluster_environment"):
                names.append(parameter.name)
    return names
