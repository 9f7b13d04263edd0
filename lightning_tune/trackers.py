"""Experiment trackers per trial: Lightning's own loggers, named after the trial, fed by rank 0.

``loggers=`` on ``tune_lightning`` / ``lightning_trainable`` picks them: tracker names
(``"tensorboard"``, ``"csv"``, ``"mlflow"``), ``False`` for none, or a function that takes a
:class:`TrialInfo` and returns Lightning loggers. The default is TensorBoard (CSV where
neither ``tensorboard`` nor ``tensorboardX`` is installed).

- TensorBoard writes into the trial's folder itself, so ``tensorboard --logdir <experiment>``
  shows one run per trial, named after it; a restarted trial appends to its run.
- CSV writes ``csv/version_N/metrics.csv`` in the trial's folder (a restart starts a new
  version rather than overwrite the old file, which Lightning's CSV logger would do).
- MLflow logs one run per trial, tagged with the trial id, into the store
  ``MLFLOW_TRACKING_URI`` named when the search started, or else a SQLite store in the
  experiment folder (MLflow 3 refuses its old file store); a restarted or resumed trial
  finds its run by the tag and continues it.

Every logger receives the trial's config as hyperparameters (:class:`TrialConfigLogged`).
Lightning's loggers write on global rank 0 only, so other ranks make no runs of their own.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import lightning.pytorch as pl
from lightning_utilities.core.rank_zero import rank_zero_only

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError, MissingDependencyError
from lightning_tune.lightning_trees import LIGHTNING, PerTree, TreeTwin, tree_module

TRACKERS = ("tensorboard", "csv", "mlflow")
TRIAL_ID_TAG = "lightning_tune.trial_id"
MLFLOW_STORE = "mlflow.db"
LoggersArgument = Union[None, bool, str, List[str], Callable[["TrialInfo"], Any]]


@dataclass(frozen=True)
class TrialInfo:
    """What a ``loggers=`` function is told about the trial it makes loggers for."""

    name: str
    trial_id: str
    directory: str  # the trial's folder: Tune copies what is written here into the experiment
    experiment_name: str
    experiment_path: str
    config: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def current(cls, config: Mapping[str, Any], directory: str) -> "TrialInfo":
        """The trial this Tune trial process runs, whose folder is ``directory``."""
        from ray import tune

        context = tune.get_context()
        return cls(name=context.get_trial_name(), trial_id=context.get_trial_id(),
                   directory=directory,
                   experiment_name=context.get_experiment_name(),
                   experiment_path=context.get_storage().experiment_fs_path, config=dict(config))


def check_loggers(loggers: Any) -> LoggersArgument:
    """``loggers`` normalised (a name becomes a list of names), or a clear error."""
    if loggers is None or loggers is True:
        return None
    if loggers is False or callable(loggers):
        return loggers
    names = [loggers] if isinstance(loggers, str) else loggers
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise InvalidTypeError(
            f"loggers must be tracker names ({', '.join(TRACKERS)}), False for none, or a "
            f"function trial -> [Lightning loggers]; got {loggers!r}.")
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise InvalidArgumentError(
            f"loggers names unknown trackers {unknown}; choose from {', '.join(TRACKERS)}, or "
            "pass a function trial -> [Lightning loggers] for any other.")
    if "mlflow" in names:
        _import_mlflow()
    if "tensorboard" in names and not _tensorboard_installed():
        raise MissingDependencyError(
            "loggers=['tensorboard'] needs tensorboard or tensorboardX: pip install tensorboard "
            "(or choose 'csv').")
    return list(dict.fromkeys(names))


def loggers_in_effect(loggers: LoggersArgument, trainer_kwargs: Optional[Mapping[str, Any]]
                      ) -> LoggersArgument:
    """``loggers``, or False where ``trainer_kwargs`` set the Trainer's ``logger`` instead
    (None: ``trainer_kwargs`` could not be recorded, so which loggers ran is not known)."""
    if trainer_kwargs is None or (loggers is None and "logger" in trainer_kwargs):
        return False
    return loggers


def tracker_names(loggers: LoggersArgument) -> List[str]:
    """The trackers ``loggers`` names, the default resolved ([] for none or a function)."""
    if loggers is None:
        return ["tensorboard" if _tensorboard_installed() else "csv"]
    return list(loggers) if isinstance(loggers, list) else []


def trial_loggers(loggers: LoggersArgument, trial: TrialInfo, tree: str,
                  mlflow_uri: Optional[str] = None) -> Any:
    """The ``logger=`` of this trial's Trainer: a list of loggers, or False for none."""
    if loggers is False:
        return False
    if callable(loggers):
        made = loggers(trial)
        if made is None or made is False:
            return False
        return list(made) if isinstance(made, (list, tuple)) else [made]
    module = tree_module(tree).loggers
    made = []
    for name in tracker_names(loggers):
        if name == "tensorboard":
            made.append(module.TensorBoardLogger(save_dir=trial.directory, name="", version="",
                                                 default_hp_metric=False))
        elif name == "csv":
            made.append(module.CSVLogger(save_dir=trial.directory, name="csv"))
        else:
            made.append(_mlflow_logger(tree, trial, mlflow_uri))
    return made


def prepare_trackers(loggers: LoggersArgument, experiment_name: str, experiment_path: str,
                     mlflow_uri: Optional[str] = None) -> None:
    """Make the MLflow store and experiment before Ray starts: a bad ``MLFLOW_TRACKING_URI``
    fails here, and concurrent trials never race to create them."""
    if "mlflow" in tracker_names(loggers):
        mlflow_experiment(experiment_name, experiment_path, mlflow_uri)


def tracker_hints(loggers: LoggersArgument, experiment_path: str,
                  mlflow_uri: Optional[str] = None) -> List[str]:
    """How to look at what the trackers kept, for the end-of-search summary."""
    hints = []
    names = tracker_names(loggers)
    if "tensorboard" in names:
        hints.append(f"TensorBoard, one run per trial: tensorboard --logdir {experiment_path}")
    if "csv" in names:
        hints.append("Lightning's CSV logs: csv/version_N/metrics.csv in each trial's folder")
    if "mlflow" in names:
        hints.append(f"MLflow, one run per trial: mlflow ui --backend-store-uri "
                     f"{mlflow_store(experiment_path, mlflow_uri)}")
    return hints


# --- MLflow -------------------------------------------------------------------------------------
def search_mlflow_uri(loggers: LoggersArgument) -> Optional[str]:
    """The MLflow store a search names when it starts (``MLFLOW_TRACKING_URI`` in the driver),
    kept with its trials: on a cluster their processes do not see the driver's environment."""
    return os.environ.get("MLFLOW_TRACKING_URI") if "mlflow" in tracker_names(loggers) \
        else None


def mlflow_store(experiment_path: str, mlflow_uri: Optional[str] = None) -> str:
    """``mlflow_uri``, else ``MLFLOW_TRACKING_URI``, else a SQLite store in the experiment."""
    return mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        f"sqlite:///{os.path.join(experiment_path, MLFLOW_STORE)}"


def mlflow_experiment(experiment_name: str, experiment_path: str,
                      mlflow_uri: Optional[str] = None) -> Tuple[Any, str]:
    """A client of the search's MLflow store and the id of the experiment named after the
    search, made if missing (under a lock, so concurrent trials do not race to make it)."""
    from filelock import FileLock

    _import_mlflow()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = mlflow_store(experiment_path, mlflow_uri)
    local = uri.startswith("sqlite:///")
    if local:
        os.makedirs(experiment_path, exist_ok=True)
    lock = FileLock(os.path.join(experiment_path, f"{MLFLOW_STORE}.lock")) if local else None
    try:
        with lock if lock is not None else contextlib.nullcontext():
            client = MlflowClient(uri)
            found = client.get_experiment_by_name(experiment_name)
            if found is not None:
                return client, found.experiment_id
            artifacts = os.path.join(experiment_path, "mlartifacts") if local else None
            return client, client.create_experiment(experiment_name,
                                                    artifact_location=artifacts)
    except MlflowException as error:
        raise InvalidArgumentError(
            f"MLflow could not open the experiment {experiment_name!r} at {uri}: {error}. Set "
            "MLFLOW_TRACKING_URI to a store this machine can reach, or unset it to keep the "
            "runs in the experiment folder.") from error


def _mlflow_logger(tree: str, trial: TrialInfo, mlflow_uri: Optional[str]) -> Any:
    """This trial's MLflow logger: its earlier run (a restart, a resume) if it has one."""
    client, experiment_id = mlflow_experiment(trial.experiment_name, trial.experiment_path,
                                              mlflow_uri)
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial.trial_id}'",
        max_results=1)
    return TrialMLFlowLogger.make_for_tree(
        tree, experiment_name=trial.experiment_name, run_name=trial.name,
        tracking_uri=mlflow_store(trial.experiment_path, mlflow_uri),
        tags={TRIAL_ID_TAG: trial.trial_id}, run_id=runs[0].info.run_id if runs else None)


def _import_mlflow() -> None:
    try:
        importlib.import_module("mlflow")
    except ImportError as error:
        raise MissingDependencyError(
            "loggers=['mlflow'] needs MLflow: pip install 'lightning-tune[mlflow]' (or mlflow)."
        ) from error


def _tensorboard_installed() -> bool:
    return any(importlib.util.find_spec(name) is not None
               for name in ("tensorboard", "tensorboardX"))


# --- the trial's config as every logger's hyperparameters ------------------------------------
def _flat(config: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class TrialConfigLoggedImpl(PerTree):
    """Logs the trial's config as hyperparameters of every logger of the Trainer.

    TensorBoard's HParams view needs the metrics beside the config, so TensorBoard loggers get
    it when the first validation ends, with the metrics then known.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self._config = _flat(config)
        self._waiting: List[Any] = []

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank != 0:
            return
        tensorboard = tree_module(self.lightning_tree).loggers.TensorBoardLogger
        self._waiting = []
        for logger in trainer.loggers:
            if isinstance(logger, tensorboard):
                self._waiting.append(logger)
            else:
                logger.log_hyperparams(self._config)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not self._waiting:
            return
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                   if getattr(value, "numel", lambda: 1)() == 1}
        # the step Lightning just logged these metrics at, so they are not drawn twice
        step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
        for logger in self._waiting:
            logger.log_hyperparams(self._config, metrics=metrics or None, step=step)
        self._waiting = []


class TrialMLFlowLoggerImpl(PerTree):
    """Lightning's MLflow logger for a run that a restarted trial may continue.

    MLflow refuses to change a param a run has, and a restarted trial logs its params again
    (Lightning logs the model's saved hyperparameters at every fit), changed ones too when
    PBT mutated its config. The run keeps each param's first value; the trial's later configs
    are in Tune's results.
    """

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        params = _flat(vars(params) if isinstance(params, Namespace) else params)
        logged = self.experiment.get_run(self.run_id).data.params
        new = {key: value for key, value in params.items() if key not in logged}
        if new:
            super().log_hyperparams(new)


class TrialConfigLogged(TrialConfigLoggedImpl, pl.Callback, metaclass=TreeTwin):
    __doc__ = TrialConfigLoggedImpl.__doc__
    lightning_tree = LIGHTNING
    family = "TrialConfigLogged"


class TrialMLFlowLogger(TrialMLFlowLoggerImpl, pl.loggers.MLFlowLogger, metaclass=TreeTwin):
    __doc__ = TrialMLFlowLoggerImpl.__doc__
    lightning_tree = LIGHTNING
    family = "TrialMLFlowLogger"
