"""Strategies decide what runs on each rank; their ranks are Ray actors."""

from lightning_tune.strategies.ddp import RayDDPStrategy

__all__ = ["RayDDPStrategy"]
