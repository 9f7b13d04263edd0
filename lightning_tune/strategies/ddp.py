"""Lightning's DDP strategy with its ranks started as Ray actors by the Ray launcher."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import lightning.pytorch as pl
import torch

from lightning_tune.errors import InvalidTypeError
from lightning_tune.lightning_trees import LIGHTNING, TreeTwin
from lightning_tune.strategies._base import (RayStrategyBase, TorchProcessGroupMixin,
                                             check_known_arguments, parameter_names)


class RayDDPStrategyImpl(TorchProcessGroupMixin, RayStrategyBase):
    """The implementation both trees' ``RayDDPStrategy`` share."""

    family = "RayDDPStrategy"

    def __init__(self, num_workers: int = 1, cpus_per_worker: float = 1, use_gpu: bool = False,
                 resources_per_worker: Optional[Mapping[str, float]] = None,
                 init_hook: Optional[Callable[[], None]] = None,
                 worker_timeout_s: Optional[float] = None, reuse_workers: bool = True,
                 rank_zero_in_trial: bool = True, **ddp_kwargs: Any) -> None:
        check_known_arguments("RayDDPStrategy", ddp_kwargs, parameter_names(
            RayDDPStrategyImpl.__init__, self.lightning_base().__init__,
            torch.nn.parallel.DistributedDataParallel.__init__))
        self._init_workers(num_workers, cpus_per_worker, use_gpu, resources_per_worker,
                           init_hook, worker_timeout_s, reuse_workers)
        if not isinstance(rank_zero_in_trial, bool):
            raise InvalidTypeError(
                f"rank_zero_in_trial must be True or False, got {rank_zero_in_trial!r}.")
        self.rank_zero_in_trial = rank_zero_in_trial
        super().__init__(cluster_environment=self._new_cluster_environment(), **ddp_kwargs)

    @classmethod
    def lightning_base(cls) -> type:
        return next(klass for klass in cls.__mro__ if klass.__name__ == "DDPStrategy")


class RayDDPStrategy(RayDDPStrategyImpl, pl.strategies.DDPStrategy, metaclass=TreeTwin):
    """Distributed data parallel training whose ranks are Ray actors.

    Works in a script, a notebook or a Tune trial (where the workers take the trial's own
    bundles). ``num_workers`` ranks of ``cpus_per_worker`` CPUs each (``use_gpu``: one GPU
    each); ``resources_per_worker`` may add custom resources and, as in Ray Train, override
    the CPUs and GPUs (``{"GPU": 0}`` turns GPUs off). With ``worker_timeout_s``, a rank that
    makes no progress for that long (counted once every rank reached its first step) stops the run with
    an error naming it. In a Tune trial, ``reuse_workers`` lets the next trial of the same
    shape take these workers, warm, once they finished cleanly; and with
    ``rank_zero_in_trial`` (the default), no GPU and no ``worker_timeout_s``, rank 0 trains in
    the trial process itself, one worker process fewer. Other keyword arguments go
    to Lightning's ``DDPStrategy`` and ``DistributedDataParallel`` (``find_unused_parameters``,
    ``process_group_backend``, ...); an unknown one is refused here, naming the closest.

    This class subclasses ``lightning.pytorch``'s ``DDPStrategy``; constructed from code that
    uses ``pytorch_lightning`` it gives its twin there,
    ``lightning_tune.pytorch_lightning.RayDDPStrategy``.
    """

    lightning_tree = LIGHTNING
    family = "RayDDPStrategy"
