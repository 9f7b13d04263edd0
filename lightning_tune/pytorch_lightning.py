"""The ``pytorch_lightning`` twins of lightning-tune's strategies and callbacks.

Lightning ships its Trainer twice, as ``lightning.pytorch`` and as ``pytorch_lightning``, and
each accepts only strategies and callbacks of its own tree. ``lightning_tune.RayDDPStrategy``
and the others subclass ``lightning.pytorch``'s bases; the classes here are the same
implementation over ``pytorch_lightning``'s, for type checkers, ``isinstance`` checks and
``LightningCLI``::

    from lightning_tune.pytorch_lightning import RayDDPStrategy
    pytorch_lightning.Trainer(strategy=RayDDPStrategy(num_workers=2))

    python train.py --trainer.strategy=lightning_tune.pytorch_lightning.RayDDPStrategy

(``lightning_tune.RayDDPStrategy(...)`` called from code that uses ``pytorch_lightning``
gives an instance of the class here too.)
"""

import pytorch_lightning as pl

from lightning_tune.callbacks import (TrialHyperparametersImpl, TuneReportCallbackImpl,
                                      TuneReportCheckpointCallbackImpl)
from lightning_tune.lightning_trees import PYTORCH_LIGHTNING, TreeTwin
from lightning_tune.strategies.ddp import RayDDPStrategyImpl
from lightning_tune.strategies.fsdp import RayFSDPStrategyImpl
from lightning_tune.strategies.horovod import RayHorovodStrategyImpl
from lightning_tune.trackers import TrialConfigLoggedImpl, TrialMLFlowLoggerImpl

__all__ = ["RayDDPStrategy", "RayFSDPStrategy", "RayHorovodStrategy", "TuneReportCallback",
           "TuneReportCheckpointCallback"]


class RayDDPStrategy(RayDDPStrategyImpl, pl.strategies.DDPStrategy, metaclass=TreeTwin):
    __doc__ = RayDDPStrategyImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "RayDDPStrategy"


class RayFSDPStrategy(RayFSDPStrategyImpl, pl.strategies.FSDPStrategy, metaclass=TreeTwin):
    __doc__ = RayFSDPStrategyImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "RayFSDPStrategy"


class RayHorovodStrategy(RayHorovodStrategyImpl, pl.strategies.ParallelStrategy,
                         metaclass=TreeTwin):
    __doc__ = RayHorovodStrategyImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "RayHorovodStrategy"


class TuneReportCallback(TuneReportCallbackImpl, pl.Callback, metaclass=TreeTwin):
    __doc__ = TuneReportCallbackImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "TuneReportCallback"


class TuneReportCheckpointCallback(TuneReportCheckpointCallbackImpl, pl.Callback,
                                   metaclass=TreeTwin):
    __doc__ = TuneReportCheckpointCallbackImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "TuneReportCheckpointCallback"


class TrialHyperparameters(TrialHyperparametersImpl, pl.Callback, metaclass=TreeTwin):
    __doc__ = TrialHyperparametersImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "TrialHyperparameters"


class TrialConfigLogged(TrialConfigLoggedImpl, pl.Callback, metaclass=TreeTwin):
    __doc__ = TrialConfigLoggedImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "TrialConfigLogged"


class TrialMLFlowLogger(TrialMLFlowLoggerImpl, pl.loggers.MLFlowLogger, metaclass=TreeTwin):
    __doc__ = TrialMLFlowLoggerImpl.__doc__
    lightning_tree = PYTORCH_LIGHTNING
    family = "TrialMLFlowLogger"
