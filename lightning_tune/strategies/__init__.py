"""Strategies decide what runs on each rank; their ranks are Ray actors.

Each class here subclasses ``lightning.pytorch``'s base; the ``pytorch_lightning`` twins are
in :mod:`lightning_tune.pytorch_lightning`.
"""

from lightning_tune.strategies.ddp import RayDDPStrategy
from lightning_tune.strategies.fsdp import RayFSDPStrategy
from lightning_tune.strategies.horovod import RayHorovodStrategy

from typing import Any, Mapping, Optional

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.lightning_trees import LIGHTNING

__all__ = ["RayDDPStrategy", "RayFSDPStrategy", "RayHorovodStrategy", "STRATEGY_CLASSES",
           "make_strategy"]

STRATEGY_CLASSES = {"ddp": RayDDPStrategy, "fsdp": RayFSDPStrategy, "horovod": RayHorovodStrategy}
# what a trial's own arguments set, so strategy_kwargs may not
_TRIAL_ARGUMENTS = {"num_workers": "num_workers", "cpus_per_worker": "cpus_per_worker",
                    "use_gpu": "gpus_per_worker", "resources_per_worker": "gpus_per_worker",
                    "worker_timeout_s": "worker_timeout_s", "reuse_workers": "reuse_workers"}


def make_strategy(name: str, *, tree: str = LIGHTNING, num_workers: int = 1,
                  cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                  worker_timeout_s: Optional[float] = None, reuse_workers: bool = True,
                  strategy_kwargs: Optional[Mapping[str, Any]] = None) -> Any:
    """The strategy ``name`` ("ddp", "fsdp", "horovod") of ``tree`` for a trial of this shape.

    ``strategy_kwargs`` go to the strategy's own constructor (FSDP's ``sharding_strategy``,
    DDP's ``find_unused_parameters``, ...); they are checked there, so building one strategy
    on the driver checks them all before Ray starts.
    """
    options = dict(strategy_kwargs or {})
    for key, instead in _TRIAL_ARGUMENTS.items():
        if key in options:
            raise InvalidArgumentError(
                f"strategy_kwargs may not set {key!r}: use the {instead} argument.")
    return STRATEGY_CLASSES[name].make_for_tree(
        tree, num_workers=num_workers, cpus_per_worker=cpus_per_worker,
        use_gpu=bool(gpus_per_worker),
        resources_per_worker={"GPU": gpus_per_worker} if gpus_per_worker else None,
        worker_timeout_s=worker_timeout_s, reuse_workers=reuse_workers, **options)
