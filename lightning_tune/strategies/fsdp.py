"""Lightning's FSDP strategy (fully sharded data parallel) with its ranks started as Ray actors.

Each rank holds only its shard of the parameters, gradients and optimizer state, so a model
that does not fit one worker trains across several. The ranks start, meet and report like
DDP's (same launcher, same rendezvous, same bridge); what differs is Lightning's
``FSDPStrategy`` underneath and the checkpoint: with ``state_dict_type="sharded"`` every
rank writes its own shard and the folder of shards travels to Tune as one checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional

import lightning.pytorch as pl
import torch

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.lightning_trees import LIGHTNING, TreeTwin
from lightning_tune.sharded_checkpoints import check_loadable_as_data
from lightning_tune.strategies._base import (RayStrategyBase, TorchProcessGroupMixin,
                                             check_known_arguments, parameter_names)

STATE_DICT_TYPES = ("full", "sharded")


def _check_fsdp_options(num_workers: int, options: Mapping[str, Any]) -> None:
    """What FSDP would refuse only in the workers (or not at all), refused here."""
    from torch.distributed.fsdp import ShardingStrategy

    state_dict_type = options.get("state_dict_type", "full")
    if state_dict_type not in STATE_DICT_TYPES:
        raise InvalidArgumentError(
            f"state_dict_type must be 'full' (rank 0 assembles and saves the whole model) or "
            f"'sharded' (every rank saves its shard), got {state_dict_type!r}.")
    sharding = options.get("sharding_strategy", "FULL_SHARD")
    if isinstance(sharding, str):
        names = [member.name for member in ShardingStrategy]
        if sharding.upper() not in names:
            raise InvalidArgumentError(
                f"sharding_strategy must be one of {', '.join(names)}, got {sharding!r}.")
        sharding = ShardingStrategy[sharding.upper()]
    mesh = options.get("device_mesh")
    if "HYBRID" in sharding.name and mesh is None:
        raise InvalidArgumentError(
            f"sharding_strategy={sharding.name!r} shards within groups of workers and replicates "
            f"across them, so it needs device_mesh=(replicas, shard_size) with replicas * "
            f"shard_size == num_workers ({num_workers}), e.g. device_mesh=(2, "
            f"{max(num_workers // 2, 1)}) for two replicas.")
    if isinstance(mesh, (tuple, list)):
        if len(mesh) != 2 or not all(isinstance(size, int) and size >= 1 for size in mesh):
            raise InvalidArgumentError(
                f"device_mesh must be a pair of positive integers (replicas, shard_size), got "
                f"{mesh!r}.")
        if math.prod(mesh) != num_workers:
            raise InvalidArgumentError(
                f"device_mesh={tuple(mesh)} spans {math.prod(mesh)} ranks, but the trial has "
                f"num_workers={num_workers}: replicas * shard_size must equal num_workers.")


class RayFSDPStrategyImpl(TorchProcessGroupMixin, RayStrategyBase):
    """The implementation both trees' ``RayFSDPStrategy`` share."""

    family = "RayFSDPStrategy"

    def __init__(self, num_workers: int = 1, cpus_per_worker: float = 1, use_gpu: bool = False,
                 resources_per_worker: Optional[Mapping[str, float]] = None,
                 init_hook: Optional[Callable[[], None]] = None,
                 worker_timeout_s: Optional[float] = None, reuse_workers: bool = True,
                 **fsdp_kwargs: Any) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel

        check_known_arguments("RayFSDPStrategy", fsdp_kwargs, parameter_names(
            RayFSDPStrategyImpl.__init__, self.lightning_base().__init__,
            FullyShardedDataParallel.__init__))
        self._init_workers(num_workers, cpus_per_worker, use_gpu, resources_per_worker,
                           init_hook, worker_timeout_s, reuse_workers)
        _check_fsdp_options(num_workers, fsdp_kwargs)
        super().__init__(cluster_environment=self._new_cluster_environment(), **fsdp_kwargs)

    @classmethod
    def lightning_base(cls) -> type:
        return next(klass for klass in cls.__mro__ if klass.__name__ == "FSDPStrategy")

    @property
    def state_dict_type(self) -> str:
        """"full" (rank 0 saves the assembled model) or "sharded" (a folder of shards)."""
        return self._state_dict_type

    def setup_environment(self) -> None:
        self.join_process_group()
        mesh = self.kwargs.get("device_mesh")
        if isinstance(mesh, (tuple, list)):
            # Lightning builds a (replicas, shard_size) mesh on "cuda" only; build it on the
            # device this rank trains on, so a hybrid-sharded trial also runs on CPUs
            from torch.distributed.device_mesh import init_device_mesh

            self.kwargs["device_mesh"] = init_device_mesh(self.root_device.type, tuple(mesh),
                                                          mesh_dim_names=("replicate", "shard"))
        super().setup_environment()

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Wrap the model on CPU ranks too.

        Lightning hands FSDP ``device_id=root_device.index``, which is None on a CPU, and
        torch's FSDP then looks for an accelerator and refuses to start. On a CPU rank the
        model is wrapped here with the CPU as its device; Lightning finishes the set-up.
        """
        from torch.distributed.fsdp import FullyShardedDataParallel

        if self.root_device.type != "cpu" or any(
                isinstance(module, FullyShardedDataParallel) for module in model.modules()):
            return super()._setup_model(model)
        wrapped = FullyShardedDataParallel(
            module=model, cpu_offload=self.cpu_offload,
            mixed_precision=self.mixed_precision_config, sharding_strategy=self.sharding_strategy,
            device_id=self.root_device, **self.kwargs)
        options = self.kwargs
        # the policy was applied above; Lightning would warn about it on a wrapped model
        self.kwargs = {name: value for name, value in options.items() if name != "auto_wrap_policy"}
        try:
            return super()._setup_model(wrapped)
        finally:
            self.kwargs = options

    def load_checkpoint(self, checkpoint_path: Any, weights_only: Optional[bool] = None) -> Any:
        if weights_only:
            # torch reads a shard folder's index with pickle; vet it before torch does
            check_loadable_as_data(self.broadcast(checkpoint_path))
        return super().load_checkpoint(checkpoint_path, weights_only=weights_only)

    def weights_for_driver(self) -> Dict[str, Any]:
        """The whole model's weights, assembled from the shards on rank 0."""
        with self._full_state_dict_context():
            return self.model.state_dict()

    # --- the full state dict, assembled on rank 0 ---------------------------------------------
    # Lightning asks FSDP to offload the assembled state to the CPU; on a CPU rank that
    # frees memory the state still uses, and the process dies. These offload from GPUs only.
    def _full_state_dict_context(self) -> Any:
        from torch.distributed.fsdp import (FullOptimStateDictConfig, FullStateDictConfig,
                                            FullyShardedDataParallel, StateDictType)

        offload = self.root_device.type != "cpu"
        return FullyShardedDataParallel.state_dict_type(
            self.model, StateDictType.FULL_STATE_DICT,
            FullStateDictConfig(offload_to_cpu=offload, rank0_only=True),
            FullOptimStateDictConfig(offload_to_cpu=offload, rank0_only=True))

    def lightning_module_state_dict(self) -> Dict[str, Any]:
        if self._state_dict_type != "full":
            return super().lightning_module_state_dict()
        with self._full_state_dict_context():
            return self.model.state_dict()

    def optimizer_state(self, optimizer: Any) -> Dict[str, Any]:
        if self._state_dict_type != "full":
            return super().optimizer_state(optimizer)
        from torch.distributed.fsdp import FullyShardedDataParallel, OptimStateKeyType

        optimizer = getattr(optimizer, "_optimizer", optimizer)  # Lightning's wrapper
        with self._full_state_dict_context():
            state = FullyShardedDataParallel.optim_state_dict(self.model, optimizer)
        if self.global_rank == 0:  # keyed by parameter index, as a plain optimizer's
            state = FullyShardedDataParallel.rekey_optim_state_dict(
                state, OptimStateKeyType.PARAM_ID, self.model)
        return state

    def local_parameter_count(self) -> int:
        """How many parameter elements this rank holds (its shards), once the model is wrapped."""
        model = self.model if self.model is not None else self.lightning_module
        return sum(parameter.numel() for parameter in _local_parameters(model))


def _local_parameters(module: torch.nn.Module):
    """The parameter storage this rank holds: each FSDP unit's flat shard, where wrapped.

    (FSDP keeps no public count of a rank's shard; its flat parameter is that shard outside
    forward and backward.)
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    units = FullyShardedDataParallel.fsdp_modules(module)
    handles = {id(unit._handle): unit._handle for unit in units
               if getattr(unit, "_handle", None) is not None}
    if not handles:
        yield from module.parameters()
    for handle in handles.values():
        yield handle.flat_param


class RayFSDPStrategy(RayFSDPStrategyImpl, pl.strategies.FSDPStrategy, metaclass=TreeTwin):
    """Fully sharded data parallel training whose ranks are Ray actors.

    Every rank holds 1/``num_workers`` of the parameters, gradients and optimizer state.
    Worker arguments as :class:`~lightning_tune.RayDDPStrategy` (``num_workers``,
    ``cpus_per_worker``, ``use_gpu``, ``resources_per_worker``, ``worker_timeout_s``,
    ``reuse_workers``, ``init_hook``); every other keyword argument goes to Lightning's
    ``FSDPStrategy`` and torch's ``FullyShardedDataParallel`` (``sharding_strategy``,
    ``auto_wrap_policy``, ``cpu_offload``, ``mixed_precision``, ``state_dict_type``,
    ``activation_checkpointing_policy``, ``device_mesh``, ...); an unknown one, a
    ``state_dict_type`` other than "full" or "sharded", and a hybrid sharding strategy
    without a matching ``device_mesh`` are refused here, before any worker starts.

    ``state_dict_type="sharded"``: each rank saves its own shard; a Tune checkpoint is the
    folder of all shards, gathered from every node, and ``load_best_model()`` consolidates
    it. Runs with gloo on CPUs and NCCL on GPUs.

    This class subclasses ``lightning.pytorch``'s ``FSDPStrategy``; its ``pytorch_lightning``
    twin is ``lightning_tune.pytorch_lightning.RayFSDPStrategy``.
    """

    lightning_tree = LIGHTNING
    family = "RayFSDPStrategy"
