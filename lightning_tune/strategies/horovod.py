"""Horovod data-parallel training for Lightning 2.x, its ranks Ray actors.

Lightning dropped its Horovod strategy in 2.0; this one follows the same recipe on the
current Strategy API. Workers are started by the same Ray launcher as DDP (so they sit in a
Tune trial's own bundles); the driver runs Horovod's gloo rendezvous server, bound to the
address Ray uses for its node, and hands each rank its Horovod environment.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import ray
import torch

import lightning.pytorch as pl

from lightning_tune.errors import InvalidArgumentError, MissingDependencyError
from lightning_tune.launchers.ranks import WorkerHost, WorkerPlacement
from lightning_tune.lightning_trees import LIGHTNING, TreeTwin
from lightning_tune.strategies._base import (RayStrategyBase, check_known_arguments,
                                             parameter_names)

_INSTALL_HINT = (
    "RayHorovodStrategy needs Horovod built for this torch, which pip cannot install as released "
    "(Horovod 0.28.1 does not compile against torch 2.x unchanged). Run `bash "
    "scripts/build_horovod.sh` from the lightning-tune repository (scripts/setup.sh runs it): it "
    "patches, builds and caches a Horovod wheel with the gloo controller and installs it.")


def import_horovod():
    try:
        import horovod.torch as hvd
    except ImportError as error:
        raise MissingDependencyError(f"{_INSTALL_HINT} ({error})") from error
    return hvd


def horovod_slots(placements: List[WorkerPlacement], hosts: List[WorkerHost]) -> List[Dict[str, int]]:
    """Horovod's rank layout: cross rank = a rank's index among ranks of its local rank."""
    cross_rank: Dict[int, int] = {}
    cross_size: Dict[int, int] = {}
    for placement in sorted(placements, key=lambda p: (p.node_rank, p.local_rank)):
        cross_rank[placement.global_rank] = cross_size.get(placement.local_rank, 0)
        cross_size[placement.local_rank] = cross_rank[placement.global_rank] + 1
    return [dict(rank=p.global_rank, size=p.world_size, local_rank=p.local_rank,
                 local_size=p.local_world_size, cross_rank=cross_rank[p.global_rank],
                 cross_size=cross_size[p.local_rank]) for p in placements]


def _route_zero_grad_to_the_optimizer(horovod_cls: type) -> None:
    """Make ``zero_grad`` on Lightning's wrapper run on the Horovod optimizer it wraps.

    Horovod's ``zero_grad`` calls ``super(self.__class__, self)``; Lightning's
    ``LightningOptimizer`` (what ``self.optimizers()`` returns under manual optimization)
    subclasses the optimizer's class, so that call would find Horovod's method again, forever.
    """
    horovod_zero_grad = horovod_cls.zero_grad

    def zero_grad(self, *args: Any, **kwargs: Any) -> None:
        return horovod_zero_grad(getattr(self, "_optimizer", self), *args, **kwargs)

    horovod_cls.zero_grad = zero_grad


class RayHorovodStrategyImpl(RayStrategyBase):
    """The implementation both trees' ``RayHorovodStrategy`` share.

    Parameters are broadcast from rank 0 before training; gradients are averaged by Horovod's
    ``DistributedOptimizer`` after every backward pass (so gradient accumulation and several
    optimizers under manual optimization stay correct); ``sync_dist`` metrics are reduced
    with Horovod; rank 0 writes checkpoints.
    """

    family = "RayHorovodStrategy"
    num_nodes = 1

    def __init__(self, num_workers: int = 1, cpus_per_worker: float = 1, use_gpu: bool = False,
                 resources_per_worker: Optional[Mapping[str, float]] = None,
                 init_hook: Optional[Callable[[], None]] = None,
                 worker_timeout_s: Optional[float] = None, reuse_workers: bool = True,
                 **unknown: Any) -> None:
        # Horovod's options have no keyword here: any other name is a mistake, named early
        check_known_arguments("RayHorovodStrategy", unknown,
                              parameter_names(RayHorovodStrategyImpl.__init__))
        import_horovod()
        self._init_workers(num_workers, cpus_per_worker, use_gpu, resources_per_worker,
                           init_hook, worker_timeout_s, reuse_workers)
        super().__init__(cluster_environment=self._new_cluster_environment())
        self._rendezvous = None
        self._exit_stack: Optional[contextlib.ExitStack] = None

    @property
    def is_distributed(self) -> bool:  # makes Lightning add a DistributedSampler
        return True

    # --- driver side -----------------------------------------------------------------------
    def start_backend(self, placements: List[WorkerPlacement],
                      hosts: List[WorkerHost]) -> List[Dict[str, str]]:
        from horovod.runner.common.util.hosts import SlotInfo

        slots = horovod_slots(placements, hosts)
        # on the address Ray uses for this node (loopback for a local Ray), not every address
        address = ray.util.get_node_ip_address()
        self._rendezvous = _bound_rendezvous_server(address)
        port = self._rendezvous.start()
        self._rendezvous.init([SlotInfo(hostname=host.node_id, **slot)
                               for host, slot in zip(hosts, slots)])
        return [{
            "HOROVOD_GLOO_RENDEZVOUS_ADDR": address, "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
            "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
            "HOROVOD_GLOO_IFACE": host.interface, "HOROVOD_HOSTNAME": host.node_id,
            **{f"HOROVOD_{key.upper()}": str(value) for key, value in slot.items()},
        } for host, slot in zip(hosts, slots)]

    def stop_backend(self) -> None:
        if self._rendezvous is not None:
            self._rendezvous.stop()
            self._rendezvous = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_rendezvous"] = state["_exit_stack"] = None
        return state

    # --- worker side -----------------------------------------------------------------------
    def setup_environment(self) -> None:
        hvd = import_horovod()
        hvd.init()
        if hvd.rank() != self.global_rank or hvd.size() != self.world_size:
            raise RuntimeError(f"Horovod placed this worker at rank {hvd.rank()} of {hvd.size()}, "
                               f"the launcher at {self.global_rank} of {self.world_size}.")
        super().setup_environment()

    def model_to_device(self) -> None:
        self.lightning_module.to(self.root_device)

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        if trainer.state.fn is None or trainer.state.fn.value != "fit":
            return
        hvd = import_horovod()
        hvd.broadcast_parameters(self.lightning_module.state_dict(), root_rank=0)
        self.optimizers = [self._distributed(optimizer) for optimizer in self.optimizers]
        self._exit_stack = contextlib.ExitStack()
        for optimizer in self.optimizers:
            # gradients are averaged in post_backward, after each backward pass
            self._exit_stack.enter_context(optimizer.skip_synchronize())

    def _distributed(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        hvd = import_horovod()
        if hasattr(optimizer, "synchronize"):
            return optimizer  # already Horovod's
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = [(name, p) for name, p in self.lightning_module.named_parameters() if id(p) in owned]
        wrapped = hvd.DistributedOptimizer(optimizer, named_parameters=named, op=hvd.Average)
        _route_zero_grad_to_the_optimizer(type(wrapped))
        wrapped.load_state_dict(optimizer.state_dict())
        if wrapped.state_dict()["state"]:  # a fresh optimizer is identical on every rank
            hvd.broadcast_optimizer_state(wrapped, root_rank=0)
        for config in self.lr_scheduler_configs:
            if getattr(config.scheduler, "optimizer", None) is optimizer:
                config.scheduler.optimizer = wrapped
        return wrapped

    def post_backward(self, closure_loss: torch.Tensor) -> None:
        # Averaging after every backward (not only before a step) keeps accumulation exact:
        # the mean is linear, so averaged partial sums add up to the averaged total.
        for optimizer in self.optimizers:
            if hasattr(optimizer, "synchronize"):
                optimizer.synchronize()

    def reduce(self, tensor: Union[torch.Tensor, Any], group: Optional[Any] = None,
               reduce_op: Optional[Union[str, Any]] = "mean") -> Union[torch.Tensor, Any]:
        if not isinstance(tensor, torch.Tensor):
            return tensor
        hvd = import_horovod()
        name = str(reduce_op).lower().rsplit(".", 1)[-1] if reduce_op is not None else "mean"
        if name in ("mean", "avg", "average"):
            op = hvd.Average
        elif name == "sum":
            op = hvd.Sum
        else:
            raise InvalidArgumentError(f"RayHorovodStrategy reduces with 'mean' or 'sum', not {reduce_op!r}.")
        return hvd.allreduce(tensor, op=op)

    def all_gather(self, tensor: torch.Tensor, group: Optional[Any] = None,
                   sync_grads: bool = False) -> torch.Tensor:
        if sync_grads:
            raise NotImplementedError("RayHorovodStrategy.all_gather does not carry gradients; "
                                      "use RayDDPStrategy for sync_grads=True.")
        hvd = import_horovod()
        return hvd.allgather(tensor.unsqueeze(0))

    def barrier(self, name: Optional[str] = None) -> None:
        if self.placement is not None:
            import_horovod().barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if self.placement is None:
            return obj
        return import_horovod().broadcast_object(obj, root_rank=src)

    def leave_worker(self) -> None:
        """Shut Horovod down, so a next job on this worker initialises it with its own peers."""
        hvd = import_horovod()
        if hvd.is_initialized():
            hvd.shutdown()
        super().leave_worker()

    def teardown(self) -> None:
        if self._exit_stack is not None:
            self._exit_stack.close()
            self._exit_stack = None
        super().teardown()


def _bound_rendezvous_server(address: str) -> Any:
    """Horovod's rendezvous server, listening on ``address`` only (Horovod's binds them all)."""
    from horovod.runner.http.http_server import (RendezvousHandler, RendezvousHTTPServer,
                                                 RendezvousServer)
    from horovod.runner.util.threads import in_thread

    class BoundRendezvousServer(RendezvousServer):
        def start(self, handler_cls: type = RendezvousHandler) -> int:
            self._httpd = RendezvousHTTPServer((address, 0), handler_cls, self._verbose)
            self._listen_thread = in_thread(target=self._httpd.serve_forever)
            return self._httpd.server_address[1]

    return BoundRendezvousServer(verbose=0)


class RayHorovodStrategy(RayHorovodStrategyImpl, pl.strategies.ParallelStrategy,
                         metaclass=TreeTwin):
    """Synchronous data parallel training over Horovod's collectives, ranks on Ray actors.

    Takes the worker arguments of :class:`~lightning_tune.RayDDPStrategy`. Subclasses
    ``lightning.pytorch``'s ``ParallelStrategy``; its ``pytorch_lightning`` twin is
    ``lightning_tune.pytorch_lightning.RayHorovodStrategy``.
    """

    lightning_tree = LIGHTNING
    family = "RayHorovodStrategy"
