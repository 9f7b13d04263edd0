"""What a search gives back: the best config, its metrics, checkpoint and model."""

from __future__ import annotations

import json
import os
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Union)

import pandas as pd
import torch
from ray import tune
from ray.tune import ResultGrid
from ray.tune.result import AUTO_RESULT_KEYS

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.lightning_cli import CONFIG_FILENAME as TRIAL_CONFIG_FILE
from lightning_tune.rank_logs import model_warnings
from lightning_tune.sharded_checkpoints import is_sharded_checkpoint, load_model_weights
from lightning_tune.shared_data import with_constants

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: what Tune adds to every report, and the bridge's own keys: not metrics of the model
NOT_METRICS = frozenset(AUTO_RESULT_KEYS) | {"trial_id", "done", "should_checkpoint"}


def best_of(values: pd.Series, mode: str) -> Any:
    """The index of the best value in ``values`` ("min" or "max"), NaN skipped."""
    return values.idxmin() if mode == "min" else values.idxmax()


def trial_id_of(trial: Any) -> Optional[str]:
    """A Tune result's trial id: from its own reported rows, else from its last metrics.

    (After a PBT exploit at the last report, the last metrics are the donor's, id included.)
    """
    history = trial.metrics_dataframe
    if history is not None and "trial_id" in history and len(history):
        return str(history["trial_id"].iloc[-1])
    trial_id = (trial.metrics or {}).get("trial_id")
    return None if trial_id is None else str(trial_id)


def best_score_by_trial(trials: Iterable[Any], metric: str, mode: str) -> Dict[str, float]:
    """Each trial's best value of ``metric`` over its reported rows, by trial id."""
    scores: Dict[str, float] = {}
    for trial in trials:
        history, trial_id = trial.metrics_dataframe, trial_id_of(trial)
        if history is None or metric not in history or trial_id is None:
            continue
        values = history[metric].dropna()
        if len(values):
            scores[trial_id] = float(values[best_of(values, mode)])
    return scores


def _config_of(result: Any) -> Dict[str, Any]:
    """A trial's config; for a trial that never reported, Tune keeps it only in params.json."""
    if result.config:
        return dict(result.config)
    params = os.path.join(str(result.path or ""), "params.json")
    if result.path and os.path.exists(params):
        with open(params) as handle:
            return json.load(handle)
    return {}


class TuneLightningResult:
    """The outcome of :func:`tune_lightning`, over Tune's own ``ResultGrid``.

    The best trial is the one whose best reported ``metric`` (over all its epochs) is best;
    ``best_metrics`` and ``best_checkpoint`` are from that epoch.
    """

    def __init__(self, result_grid: ResultGrid, build_model: Callable[[Dict[str, Any]], Any],
                 metric: Union[str, Sequence[str]], mode: Union[str, Sequence[str]],
                 checkpoint_filename: Optional[str] = "checkpoint",
                 searched: Sequence[str] = (), tracker_hints: Sequence[str] = (),
                 notes: Sequence[str] = (), interrupted: Sequence[str] = (),
                 constants: Optional[Dict[str, Any]] = None) -> None:
        self.result_grid = result_grid
        #: the space's large constants, which configs hold as a SharedConstant (see shared_data)
        self.constants = dict(constants or {})
        #: how the search ended, where that needs saying (a time budget that ran out)
        self.notes = list(notes)
        #: ids of the trials the search ended before their end (``resume`` continues them)
        self.interrupted = list(interrupted)
        #: where the trials' experiment trackers are and how to open them (summary lines)
        self.tracker_hints = list(tracker_hints)
        #: the objectives and their modes; the first one picks the best trial and checkpoint
        self.metrics = [metric] if isinstance(metric, str) else list(metric)
        self.modes = [mode] if isinstance(mode, str) else list(mode)
        self.metric, self.mode = self.metrics[0], self.modes[0]
        metric, mode = self.metric, self.mode
        #: the searched parameter names (sampled or grid), in the space's order
        self.searched = list(searched)
        #: the checkpoint file inside each reported checkpoint (None: trials report none)
        self.checkpoint_filename = checkpoint_filename
        self._build_model = build_model
        self._best = result_grid.get_best_result(metric=metric, mode=mode, scope="all")
        # none registered: the search ended before Tune took the trial's first checkpoint
        self.best_checkpoint: Optional[tune.Checkpoint] = self._best.get_best_checkpoint(
            metric, mode) if self._best.best_checkpoints else None
        self.best_metrics: Dict[str, Any] = self._metrics_of(self.best_checkpoint)

    def _metrics_of(self, checkpoint: Optional[tune.Checkpoint]) -> Dict[str, Any]:
        for candidate, metrics in self._best.best_checkpoints or []:
            if checkpoint is not None and candidate.path == checkpoint.path:
                return dict(metrics)
        history = self._best.metrics_dataframe
        if history is not None and self.metric in history:
            return history.loc[best_of(history[self.metric], self.mode)].to_dict()
        return dict(self._best.metrics or {})

    def best_score_by_trial(self, metric: Optional[str] = None) -> Dict[str, float]:
        """Each trial's best reported ``metric`` (default: the searched one), by trial id.

        Trials that never reported it are left out.
        """
        return best_score_by_trial(self.result_grid, metric or self.metric, self.mode)

    @property
    def best_config(self) -> Dict[str, Any]:
        return dict(self._best.config)

    @property
    def experiment_path(self) -> str:
        return self.result_grid.experiment_path

    @property
    def best_config_file(self) -> Optional[str]:
        """The best trial's resolved LightningCLI config (``config.yaml`` in its folder), which
        ``python main.py fit --config`` re-runs alone; None for a search of a model class."""
        path = os.path.join(self._best.path, TRIAL_CONFIG_FILE)
        return path if os.path.isfile(path) else None

    @property
    def dataframe(self) -> pd.DataFrame:
        """One row per trial: its id, searched values (plain names), status, metrics.

        The status is TERMINATED, ERROR, or INTERRUPTED for a trial a time budget cut short.
        A trial that failed before its first report has a row too (status ERROR, no metrics),
        which Tune's own dataframe leaves out.
        """
        frame = self.result_grid.get_dataframe()
        unreported = [{"trial_id": trial_id_of(result),
                       **{f"config/{key}": value for key, value in _config_of(result).items()}}
                      for result in self.result_grid
                      if result.metrics_dataframe is None or result.metrics_dataframe.empty]
        if unreported:
            frame = pd.concat([frame, pd.DataFrame(unreported)], ignore_index=True)
        frame = frame.rename(columns={f"config/{name}": name for name in self.searched})
        statuses = {trial_id_of(result): "ERROR" if result.error else "INTERRUPTED"
                    if trial_id_of(result) in self.interrupted else "TERMINATED"
                    for result in self.result_grid}
        if "trial_id" in frame:
            frame.insert(1, "status", [statuses.get(trial_id, "") for trial_id in frame["trial_id"]])
        leading = [c for c in ["trial_id", "status", *self.searched, self.metric,
                               "training_iteration"] if c in frame]
        return frame[leading + [c for c in frame.columns if c not in leading]]

    def load_best_model(self, trial: Optional[str] = None,
                        constants: Optional[Dict[str, Any]] = None) -> Any:
        """The model class built from the best config, with the best checkpoint's weights;
        with ``trial`` (a trial id, e.g. a ``pareto_front`` row's), that trial's config and
        latest checkpoint instead. ``constants``: the space's large constants, which a result
        read back from its folder does not hold (Ray's object store kept them).

        A sharded checkpoint (FSDP's ``state_dict_type="sharded"``) is consolidated here, in
        this process; every checkpoint is read as data only.
        """
        config, checkpoint = self.best_config, self.best_checkpoint
        if trial is not None:
            from lightning_tune.multi_objective import trial_result

            chosen = trial_result(self, trial)
            config, checkpoint = dict(chosen.config), chosen.checkpoint
        if checkpoint is None or self.checkpoint_filename is None:
            raise InvalidArgumentError(
                "The trial saved no checkpoint (it was reported with TuneReportCallback, "
                "not TuneReportCheckpointCallback).")
        model = self._build_model(with_constants(config, dict(self.constants, **constants or {})))
        with checkpoint.as_directory() as directory:
            path = os.path.join(directory, self.checkpoint_filename)
            if not os.path.exists(path):
                raise InvalidArgumentError(
                    f"The checkpoint {checkpoint.path} holds no file "
                    f"{self.checkpoint_filename!r} (it holds {sorted(os.listdir(directory))}).")
            # as data only: a tampered checkpoint fails to load instead of running code
            if is_sharded_checkpoint(path):  # FSDP's folder of shards, consolidated here
                weights = load_model_weights(path)
            else:
                weights = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(weights)
        model.eval()
        return model

    # Plots live in lightning_tune.plots; imported on use, so results load without matplotlib.
    def plot_optimisation_history(self, path: Optional[str] = None) -> "Figure":
        """Each trial's best ``metric`` in trial order, with the best so far as a step line.

        ``path``: also save the figure there (PNG, 100 dpi).
        """
        from lightning_tune import plots

        return plots.optimisation_history(self, path=path)

    def plot_parallel_coordinates(self, params: Optional[Sequence[str]] = None,
                                  path: Optional[str] = None) -> "Figure":
        """One line per trial across ``params`` (default: the searched ones) and the metric.

        Lines are coloured by the metric; numeric axes spanning over a decade are log scale,
        strings and booleans sit at evenly spaced ticks.
        """
        from lightning_tune import plots

        return plots.parallel_coordinates(self, params=params, path=path)

    def plot_learning_curves(self, metric: Optional[str] = None,
                             path: Optional[str] = None) -> "Figure":
        """``metric`` (default: the one the search optimised) per epoch, one line per trial."""
        from lightning_tune import plots

        return plots.learning_curves(self, metric=metric, path=path)

    def importance(self, metric: Optional[str] = None, mode: Optional[str] = None,
                   evaluator: str = "fanova") -> Dict[str, float]:
        """Which searched hyperparameters mattered for ``metric`` (default: the searched one;
        another needs its ``mode``): each one's share, summing to 1, most important first.

        Optuna's ``evaluator`` ("fanova" or "ped-anova") over the finished trials, each with its
        best reported value; at least 4 are needed. See :mod:`lightning_tune.importance`.
        """
        from lightning_tune import importance

        return importance.param_importances(self, metric, mode, evaluator)

    def plot_importance(self, metric: Optional[str] = None, mode: Optional[str] = None,
                        evaluator: str = "fanova", path: Optional[str] = None) -> "Figure":
        """:meth:`importance` as Optuna's bar chart; ``path``: also save it there (PNG)."""
        from lightning_tune import importance

        return importance.plot_importance(self, metric, mode, evaluator, path=path)

    @property
    def pareto_front(self) -> pd.DataFrame:
        """A search of several objectives: the trials no other beats on every objective, each
        with its searched values, final objectives and latest checkpoint."""
        from lightning_tune import multi_objective

        return multi_objective.pareto_front(self)

    def plot_pareto_front(self, path: Optional[str] = None) -> "Figure":
        """The trials' objectives with the front marked: a scatter for 2, parallel coordinates
        for more; ``path``: also save it (PNG)."""
        from lightning_tune import multi_objective

        return multi_objective.plot_pareto_front(self, path=path)

    def save_plots(self, directory: str) -> Dict[str, str]:
        """Write the three plots as PNG into ``directory``; returns their paths by plot name."""
        from lightning_tune import plots

        return plots.save_plots(self, directory)

    def summary(self) -> str:
        """What a finished search comes to, and where to look next, as printed after it."""
        trial_id = self.best_metrics.get("trial_id")
        epoch = self.best_metrics.get("training_iteration")
        lines = []
        if trial_id is not None:
            lines.append(f"best trial: {trial_id}"
                         + (f" (epoch {epoch})" if epoch is not None else ""))
        lines += [*self.notes, f"best config: {self.best_config}",
                  f"best {self.metric}: {self.best_metrics.get(self.metric)}"]
        if self.best_config_file:
            lines.append(f"best trial's config: {self.best_config_file} (re-run it alone: "
                         f"python main.py fit --config {self.best_config_file})")
        path = self.experiment_path
        lines += [f"experiment: {path}",
                  "each trial's folder there holds its rank logs (rank_N.log) and its "
                  f"trackers' logs; plots and the trials table: lightning-tune report {path}",
                  *self.tracker_hints,
                  *([f"Pareto front over {self.metrics}: result.pareto_front; a model from "
                     "it: result.load_best_model(trial=...)"] if len(self.metrics) > 1 else []),
                  f"continue it if interrupted: lightning_tune.resume({path!r}) or "
                  f"lightning-tune resume {path}",
                  *_listed("warnings the trials logged, each once (all are in the rank logs)",
                           model_warnings([trial.path for trial in self.result_grid]))]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"TuneLightningResult(trials={len(self.result_grid)}, best {self.metric}="
                f"{self.best_metrics.get(self.metric)!r}, best_config={self.best_config!r})")


def _listed(title: str, items: List[str]) -> List[str]:
    return [f"{title}:", *(f"  - {item}" for item in items)] if items else []
