"""Lightning's DDP strategy with its ranks started as Ray actors by :class:`RayLauncher`."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from lightning_tune._lightning import PerTree, fabric_module, tree_module
from lightning_tune.launchers.ray import RayLauncher, WorkerPlacement
from lightning_tune.resources import check_worker_shape, worker_bundle


class RayWorkerStrategyMixin:
    """What every Ray-launched strategy shares: worker shape, ranks from the launcher, devices.

    The launcher calls ``_enter_worker`` in each actor before the trainer function runs; on
    the driver (``_worker`` is None) the strategy reports itself as rank 0 of ``num_workers``.
    """

    _worker: Optional[WorkerPlacement] = None
    _progress_board: Any = None

    def _init_workers(self, num_workers: int, cpus_per_worker: float, use_gpu: bool,
                      resources_per_worker: Optional[Mapping[str, float]],
                      init_hook: Optional[Callable[[], None]],
                      worker_timeout_s: Optional[float] = None,
                      reuse_workers: bool = True) -> None:
        extra = dict(resources_per_worker or {})
        gpus_per_worker = extra.pop("GPU", 1 if use_gpu else 0) if use_gpu else 0
        if not use_gpu and "GPU" in extra:
            raise ValueError("resources_per_worker has 'GPU' but use_gpu=False; set use_gpu=True.")
        check_worker_shape(num_workers, cpus_per_worker, gpus_per_worker, extra)
        if use_gpu and not gpus_per_worker:
            raise ValueError("use_gpu=True needs a GPU share per worker > 0.")
        if init_hook is not None and not callable(init_hook):
            raise TypeError(f"init_hook must be a callable taking no arguments, got {init_hook!r}.")
        if worker_timeout_s is not None and (isinstance(worker_timeout_s, bool) or not isinstance(
                worker_timeout_s, (int, float)) or worker_timeout_s <= 0):
            raise ValueError(f"worker_timeout_s must be a number of seconds > 0 (or None for no "
                             f"limit), got {worker_timeout_s!r}.")
        if not isinstance(reuse_workers, bool):
            raise TypeError(f"reuse_workers must be True or False, got {reuse_workers!r}.")
        self.worker_timeout_s = worker_timeout_s
        self.reuse_workers = reuse_workers
        self.num_workers = num_workers
        self.cpus_per_worker = cpus_per_worker
        self.use_gpu = use_gpu
        self.resources_per_worker = extra
        self.init_hook = init_hook
        self.worker_bundle: Dict[str, float] = worker_bundle(cpus_per_worker, gpus_per_worker, extra)

    def _configure_launcher(self) -> None:
        self._launcher = RayLauncher(self)

    def _start_backend(self, placements: List[WorkerPlacement], hosts: List[Any]) -> List[Dict[str, str]]:
        """Driver side of the backend, before workers train: extra environment per rank."""
        return [{} for _ in placements]

    def _stop_backend(self) -> None:
        """Release what ``_start_backend`` started; called even when training failed."""

    def _enter_worker(self, placement: WorkerPlacement) -> None:
        """Runs in the actor, after unpickling: fresh environment, ranks and device."""
        self._worker = placement
        self.cluster_environment = fabric_module(self.lightning_tree,
                                                 "plugins.environments").LightningEnvironment()
        self.num_nodes = placement.num_nodes
        accelerators = tree_module(self.lightning_tree, "accelerators")
        self.accelerator = accelerators.CUDAAccelerator() if self.use_gpu else accelerators.CPUAccelerator()
        self.set_world_ranks()

    def _leave_worker(self) -> None:
        """Runs in the actor after a job that finished cleanly: release the backend's process
        group, so that a next job on this worker (the warm pool) sets up its own."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def _marked(self, step: str, *args: Any, **kwargs: Any) -> Any:
        """Run a step hook, marking entry and exit on the progress board (with worker_timeout_s)."""
        board, rank = self._progress_board, self.global_rank
        if board is not None:
            board.mark.remote(rank, step)
        result = getattr(super(), step)(*args, **kwargs)
        if board is not None:
            board.mark.remote(rank, None)
        return result

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("training_step", *args, **kwargs)

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("validation_step", *args, **kwargs)

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("test_step", *args, **kwargs)

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._marked("predict_step", *args, **kwargs)

    @property
    def root_device(self) -> torch.device:
        if self._worker is not None and self._worker.gpu_index is not None:
            return torch.device("cuda", self._worker.gpu_index)
        return torch.device("cpu")

    @property
    def distributed_sampler_kwargs(self) -> Dict[str, Any]:
        return {"num_replicas": self.world_size, "rank": self.global_rank}

    def set_world_ranks(self) -> None:
        from lightning_utilities.core.rank_zero import rank_zero_only

        rank, size = ((self._worker.global_rank, self._worker.world_size) if self._worker
                      else (0, self.num_workers))
        if self.cluster_environment is not None:
            self.cluster_environment.set_global_rank(rank)
            self.cluster_environment.set_world_size(size)
        rank_zero_only.rank = rank


class RayDDPStrategy(RayWorkerStrategyMixin, PerTree):
    """Distributed data parallel training whose ranks are Ray actors.

    Works in a script, a notebook or a Tune trial (where the workers take the trial's own
    bundles), for ``lightning.pytorch`` and ``pytorch_lightning`` Trainers alike. With
    ``worker_timeout_s``, a rank that makes no progress for that long (counted from the
    workers' start, then per step) stops the run with an error naming it. In a Tune trial,
    ``reuse_workers`` lets the next trial of the same shape take these workers, warm, once
    they finished cleanly (see :mod:`lightning_tune.launchers.ray`). Extra keyword arguments
    go to Lightning's ``DDPStrategy`` (e.g. ``find_unused_parameters``).
    """

    _tree_base = "strategies.DDPStrategy"

    def __init__(self, num_workers: int = 1, cpus_per_worker: float = 1, use_gpu: bool = False,
                 resources_per_worker: Optional[Mapping[str, float]] = None,
                 init_hook: Optional[Callable[[], None]] = None,
                 worker_timeout_s: Optional[float] = None, reuse_workers: bool = True,
                 **ddp_kwargs: Any) -> None:
        self._init_workers(num_workers, cpus_per_worker, use_gpu, resources_per_worker, init_hook,
                           worker_timeout_s, reuse_workers)
        environment = fabric_module(self.lightning_tree, "plugins.environments").LightningEnvironment()
        super().__init__(cluster_environment=environment, **ddp_kwargs)

    def __repr__(self) -> str:
        return (f"RayDDPStrategy(num_workers={self.num_workers}, cpus_per_worker="
                f"{self.cpus_per_worker}, use_gpu={self.use_gpu})")
