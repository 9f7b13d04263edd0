"""Strategies decide what runs on each rank; their ranks are Ray actors.

Each class here subclasses ``lightning.pytorch``'s base; the ``pytorch_lightning`` twins are
in :mod:`lightning_tune.pytorch_lightning`.
"""

from lightning_tune.strategies.ddp import RayDDPStrategy
from lightning_tune.strategies.horovod import RayHorovodStrategy

__all__ = ["RayDDPStrategy", "RayHorovodStrategy"]
