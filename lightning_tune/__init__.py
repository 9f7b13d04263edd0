"""lightning-tune: Ray Tune hyperparameter search for PyTorch Lightning, each trial data-parallel.

Neither Lightning tree is imported here: strategies and callbacks pick ``lightning.pytorch``
or ``pytorch_lightning`` when they are first used.
"""

from lightning_tune.api import load_result, resume, tune_lightning
from lightning_tune.callbacks import TuneReportCallback, TuneReportCheckpointCallback
from lightning_tune.resources import get_tune_resources
from lightning_tune.results import TuneLightningResult
from lightning_tune.strategies import RayDDPStrategy, RayHorovodStrategy
from lightning_tune.trainable import lightning_trainable

__all__ = [
    "TuneLightningResult",
    "lightning_trainable",
    "load_result",
    "resume",
    "tune_lightning",
    "RayDDPStrategy",
    "RayHorovodStrategy",
    "TuneReportCallback",
    "TuneReportCheckpointCallback",
    "get_tune_resources",
]
__version__ = "0.1.0"
