"""lightning-tune: Ray Tune hyperparameter search for PyTorch Lightning, each trial data-parallel.

The public names are imported on first use (PEP 562), so ``import lightning_tune`` and the
``lightning-tune`` command's help and input errors do not wait for torch, Lightning and Ray.

A search, in the order the modules follow it: ``api`` (``tune_lightning``, ``resume``,
``load_result``) checks its input into a ``spec`` (the trial spec) and a ``spaces`` search
space, and hands Tune the trainable that ``trainable`` makes; each trial builds a Trainer
whose strategy (``strategies``) has its ranks started by ``launchers``; rank 0's
``callbacks`` report over the ``bridge``; ``results`` and ``plots`` read what came back.
``rank_logs`` keeps what each rank prints in its trial folder (``trial_folder`` says which
folder), ``trackers`` gives each trial its experiment trackers (TensorBoard, CSV, MLflow) and
``run_settings`` the RunConfig and Tune defaults a search runs with, with ``stopping`` (time
budget, stopping rules) and ``warm_start`` (an earlier search told to the searcher; HyperOpt
through ``informed_hyperopt``); ``importance`` asks Optuna which hyperparameters mattered;
``pareto`` and ``multi_objective_asha`` rank trials on several objectives, and
``multi_objective`` gives their Pareto front; ``shared_data`` puts a datamodule instance and
the space's large constants in the object store once.
A LightningCLI project's config
is searched by ``lightning_cli_search`` (``tune_lightning_cli``), which reads it through
``lightning_cli`` and, in each trial, ``trial_cli``. The ``pytorch_lightning`` twins of the
strategies and callbacks are in ``lightning_tune.pytorch_lightning``.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_tune.api import load_result, resume, tune_lightning
    from lightning_tune.lightning_cli_search import tune_lightning_cli
    from lightning_tune.callbacks import TuneReportCallback, TuneReportCheckpointCallback
    from lightning_tune.errors import LightningTuneError
    from lightning_tune.resources import get_tune_resources
    from lightning_tune.results import TuneLightningResult
    from lightning_tune.spec import TrialSpec
    from lightning_tune.strategies import RayDDPStrategy, RayFSDPStrategy, RayHorovodStrategy
    from lightning_tune.trainable import lightning_trainable

_HOME = {
    "tune_lightning": "api", "resume": "api", "load_result": "api",
    "tune_lightning_cli": "lightning_cli_search",
    "TuneReportCallback": "callbacks", "TuneReportCheckpointCallback": "callbacks",
    "LightningTuneError": "errors", "get_tune_resources": "resources",
    "TuneLightningResult": "results", "TrialSpec": "spec",
    "RayDDPStrategy": "strategies", "RayFSDPStrategy": "strategies",
    "RayHorovodStrategy": "strategies",
    "lightning_trainable": "trainable",
}
__all__ = sorted(_HOME)
__version__ = "0.2.0"

# Note which Lightning trees the user imported before any module of ours imports one: a
# strategy built from code that names no tree follows that (see lightning_trees).
import_module("lightning_tune.lightning_trees")


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'lightning_tune' has no attribute {name!r}")
    value = getattr(import_module(f"lightning_tune.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
