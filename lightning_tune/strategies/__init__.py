"""Strategies decide what runs on each rank; their ranks are Ray actors."""

from lightning_tune.strategies.ddp import RayDDPStrategy
from lightning_tune.strategies.horovod import RayHorovodStrategy

__all__ = ["RayDDPStrategy", "RayHorovodStrategy"]
