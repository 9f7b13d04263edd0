"""lightning-tune: Ray Tune hyperparameter search for PyTorch Lightning, each trial data-parallel.

The public names are imported on first use (PEP 562), so ``import lightning_tune`` and the
``lightning-tune`` command's help and input errors do not wait for torch, Lightning and Ray.
Neither Lightning tree is imported here: strategies and callbacks pick ``lightning.pytorch``
or ``pytorch_lightning`` when they are first used.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_tune.api import load_result, resume, tune_lightning
    from lightning_tune.callbacks import TuneReportCallback, TuneReportCheckpointCallback
    from lightning_tune.resources import get_tune_resources
    from lightning_tune.results import TuneLightningResult
    from lightning_tune.strategies import RayDDPStrategy, RayHorovodStrategy
    from lightning_tune.trainable import lightning_trainable

_HOME = {
    "tune_lightning": "api", "resume": "api", "load_result": "api",
    "TuneReportCallback": "callbacks", "TuneReportCheckpointCallback": "callbacks",
    "get_tune_resources": "resources", "TuneLightningResult": "results",
    "RayDDPStrategy": "strategies", "RayHorovodStrategy": "strategies",
    "lightning_trainable": "trainable",
}
__all__ = sorted(_HOME)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'lightning_tune' has no attribute {name!r}")
    value = getattr(import_module(f"lightning_tune.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
