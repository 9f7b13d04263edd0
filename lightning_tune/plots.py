"""Figures of a finished search: how it converged, where the good configs lie, how trials trained.

Each function takes a :class:`~lightning_tune.results.TuneLightningResult` and returns a
``matplotlib.figure.Figure`` built with the object-oriented API: no pyplot state is touched
and no backend is chosen, so the figures work the same in scripts, notebooks and the CLI.
Trials that reported nothing (errored at start-up) are left out rather than failing a plot.

This module is longer than 300 lines on purpose: the three figures share one reading of the
trials and the axis helpers; split apart, they would reach into each other's privates.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError
from lightning_tune.results import NOT_METRICS, trial_id_of

if TYPE_CHECKING:
    from lightning_tune.results import TuneLightningResult

PLOT_FILES = {"optimisation_history": "optimisation_history.png",
              "parallel_coordinates": "parallel_coordinates.png",
              "learning_curves": "learning_curves.png"}
DPI = 100
# Beyond this many trials the learning-curve legend names only the best ones.
LEGEND_MAX_TRIALS = 10
_PAD = 0.05  # margin above and below each vertical axis, as a fraction of its span


@dataclass(frozen=True)
class _Trial:
    """One trial that reported at least one row."""

    index: int  # position in Tune's trial order, from 0 like the trial ids' suffix
    trial_id: str
    name: str  # its directory name: trial id and searched values
    config: Dict[str, Any]
    history: pd.DataFrame


def _in_creation_order(results: Sequence[Any]) -> List[Any]:
    """Tune's trial ids end in a counter of created trials (``ef65c_00003``); an experiment
    read back from disk lists its trials in another order, so the counter decides."""
    def counter(item: Tuple[int, Any]) -> int:
        position, trial = item
        suffix = str((trial.metrics or {}).get("trial_id", "")).rpartition("_")[2]
        return int(suffix) if suffix.isdigit() else position

    return [trial for _, trial in sorted(enumerate(results), key=counter)]


def _trials(result: "TuneLightningResult") -> List[_Trial]:
    trials = []
    for index, trial in enumerate(_in_creation_order(list(result.result_grid))):
        history = trial.metrics_dataframe
        if history is None or history.empty:
            continue  # errored before its first report: nothing to draw
        name = os.path.basename(str(trial.path)) if trial.path else f"trial {index}"
        trials.append(_Trial(index, trial_id_of(trial) or name, name, dict(trial.config or {}),
                             history))
    return trials


def _reported_metrics(result: "TuneLightningResult") -> List[str]:
    """The numeric metrics any trial reported (Tune's own bookkeeping columns left out)."""
    names: Dict[str, None] = {}
    for trial in _trials(result):
        for column in trial.history.columns:
            if (column not in NOT_METRICS and not column.startswith("config/")
                    and pd.api.types.is_numeric_dtype(trial.history[column])
                    and not pd.api.types.is_bool_dtype(trial.history[column])):
                names[column] = None
    return list(names)


def _curve(trial: _Trial, metric: str) -> pd.DataFrame:
    """The trial's (training_iteration, metric) rows where the metric was reported."""
    if metric not in trial.history:
        return pd.DataFrame(columns=["training_iteration", metric])
    frame = trial.history[["training_iteration", metric]].dropna()
    return frame.sort_values("training_iteration")


def _scores(result: "TuneLightningResult", metric: str) -> List[Tuple[_Trial, float]]:
    """Each trial's best value of ``metric`` over its epochs, for trials that reported it."""
    best = result.best_score_by_trial(metric)
    scores = [(trial, best[trial.trial_id]) for trial in _trials(result)
              if trial.trial_id in best]
    if not scores:
        raise InvalidArgumentError(f"No trial reported the metric {metric!r}, so there is nothing to "
                         f"plot. Reported metrics: {_reported_metrics(result)}.")
    return scores


def _spans_decades(values: Sequence[float]) -> bool:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 10


class _Figure(Figure):
    """A Figure a notebook shows as a PNG by itself, ``%matplotlib inline`` or not.

    Jupyter draws a figure returned by a cell only through the inline backend, which is
    switched on by pyplot; these figures never touch pyplot, so they bring their own PNG.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


def _finish(figure: Figure, path: Optional[str]) -> Figure:
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        figure.savefig(path, dpi=DPI)  # PNG unless the file name asks for another format
    return figure


def optimisation_history(result: "TuneLightningResult", path: Optional[str] = None) -> Figure:
    """Each trial's best metric in trial order, and the best so far: did the search converge?"""
    metric = result.metric
    scores = _scores(result, metric)
    order = [trial.index for trial, _ in scores]
    values = np.array([value for _, value in scores])
    running = (np.minimum if result.mode == "min" else np.maximum).accumulate(values)
    figure = _Figure(figsize=(7, 4.2), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(order, values, zorder=3, label=f"trial's best {metric}")
    axes.step(order, running, where="post", color="tab:red", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if _spans_decades(values):
        axes.set_yscale("log")
    axes.set_title(f"Optimisation history ({result.mode} {metric})")
    axes.legend()
    return _finish(figure, path)


@dataclass(frozen=True)
class _Axis:
    """One vertical axis of the parallel coordinates: how its values map onto [0, 1].

    ``low`` and ``high`` are in scaled units: the value, its log10, or a category's index.
    """

    name: str
    kind: str  # "linear", "log" or "category"
    low: float
    high: float
    categories: Tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, values: Sequence[Any]) -> "_Axis":
        present = [v for v in values if v is not None]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
        finite = [v for v in present if numeric and math.isfinite(v)]  # a diverged inf is off-axis
        if not finite:
            labels = {str(v) for v in values}
            ordered = (("False", "True") if labels <= {"False", "True"} else sorted(labels))
            return cls(name, "category", 0.0, float(len(ordered) - 1), tuple(ordered))
        kind = "log" if _spans_decades(finite) else "linear"
        scaled = np.log10(finite) if kind == "log" else np.asarray(finite, dtype=float)
        low, high = float(np.min(scaled)), float(np.max(scaled))
        return cls(name, kind, low, high)

    def _span(self) -> Tuple[float, float]:
        if self.high > self.low:
            return self.low, self.high
        half = abs(self.low) * 0.1 if self.kind == "linear" and self.low else 0.5
        return self.low - half, self.high + half  # one value: drawn mid-axis

    def scaled(self, value: Any) -> float:
        if self.kind == "category":
            return float(self.categories.index(str(value)))
        if value is None:
            return math.nan  # a conditional parameter not sampled: the line breaks here
        return math.log10(value) if self.kind == "log" else float(value)

    def unit(self, value: Any) -> float:
        low, high = self._span()
        return (self.scaled(value) - low) / (high - low)

    def limits(self) -> Tuple[float, float]:
        """The data limits whose axis lines up with the unit positions, margins included."""
        low, high = self._span()
        pad = _PAD * (high - low)
        low, high = low - pad, high + pad
        return (10 ** low, 10 ** high) if self.kind == "log" else (low, high)


def _default_params(result: "TuneLightningResult", trials: List[_Trial]) -> List[str]:
    if result.searched:
        return list(result.searched)
    # a result without its searched names (e.g. from an old record): the keys that vary
    keys = {key for trial in trials for key in trial.config}
    return sorted(key for key in keys
                  if len({repr(trial.config.get(key)) for trial in trials}) > 1)


def parallel_coordinates(result: "TuneLightningResult", params: Optional[Sequence[str]] = None,
                         path: Optional[str] = None) -> Figure:
    """One line per trial across its hyperparameters and metric: where do good configs lie?"""
    metric = result.metric
    scores = _scores(result, metric)
    trials = [trial for trial, _ in scores]
    if params is None:
        params = _default_params(result, trials)
    elif isinstance(params, str):
        raise InvalidTypeError(f"params must be a list of parameter names, got the string {params!r}; "
                        f"write params=[{params!r}].")
    known = sorted({key for trial in trials for key in trial.config})
    unknown = [name for name in params if name not in known]
    if unknown:
        raise InvalidArgumentError(f"Unknown parameter(s) {unknown} for the parallel coordinates plot; the "
                         f"trials' configs have {known}.")
    values = [value for _, value in scores]
    axes_ = [_Axis.of(name, [trial.config.get(name) for trial in trials]) for name in params]
    axes_.append(_Axis.of(metric, values))

    figure = _Figure(figsize=(max(6.0, 1.7 * len(axes_) + 2), 4.8), layout="constrained")
    host = figure.add_subplot()
    positions = np.arange(len(axes_))
    colour_norm = (LogNorm if axes_[-1].kind == "log" else Normalize)(*axes_[-1].limits())
    # the best trials are drawn darkest and last, on top of the others
    colour_map = colormaps["viridis" if result.mode == "min" else "viridis_r"]
    ranked = sorted(zip(trials, values), key=lambda item: item[1], reverse=result.mode == "min")
    for trial, value in ranked:
        heights = [axis.unit(trial.config.get(axis.name)) for axis in axes_[:-1]]
        heights.append(axes_[-1].unit(value))
        host.plot(positions, heights, color=colour_map(colour_norm(value)), marker="o",
                  markersize=3, linewidth=1.5, alpha=0.85, label=trial.name)
    figure.colorbar(ScalarMappable(norm=colour_norm, cmap=colour_map), ax=host, label=metric,
                    pad=0.02)
    host.set_ylim(-_PAD, 1 + _PAD)
    host.set_xlim(*((0, len(axes_) - 1) if len(axes_) > 1 else (-0.5, 0.5)))
    host.set_xticks(positions, labels=[axis.name for axis in axes_])
    host.tick_params(axis="x", length=0)
    host.set_yticks([])
    host.spines[:].set_visible(False)
    left, right = host.get_xlim()
    for position, axis in zip(positions, axes_):
        _draw_vertical_axis(host, axis, (position - left) / (right - left), first=position == 0)
    host.set_title(f"Parallel coordinates ({len(trials)} trials, coloured by {metric})")
    return _finish(figure, path)


def _draw_vertical_axis(host: Any, axis: _Axis, where: float, first: bool) -> None:
    """A twin of the host whose own scale and ticks show ``axis``'s values at ``where``."""
    twin = host.twinx()
    twin.set_label(axis.name)
    side = "left" if first else "right"
    for name, spine in twin.spines.items():
        spine.set_visible(name == side)
    twin.spines[side].set_position(("axes", where))
    twin.yaxis.set_ticks_position(side)
    if axis.kind == "log":
        twin.set_yscale("log")
    twin.set_ylim(*axis.limits())
    if axis.kind == "category":
        twin.set_yticks(range(len(axis.categories)), labels=list(axis.categories))
    twin.tick_params(axis="y", labelsize="small")


def learning_curves(result: "TuneLightningResult", metric: Optional[str] = None,
                    path: Optional[str] = None) -> Figure:
    """``metric`` per epoch, one line per trial: did trials still improve when they stopped?"""
    metric = metric or result.metric
    trials = _trials(result)
    curves = [(trial, _curve(trial, metric)) for trial in trials]
    curves = [(trial, curve) for trial, curve in curves if len(curve)]
    if not curves:
        raise InvalidArgumentError(f"No trial reported the metric {metric!r}, so there are no learning "
                         f"curves to plot. Reported metrics: {_reported_metrics(result)}.")
    pick = min if result.mode == "min" else max
    ranked = sorted(curves, key=lambda item: pick(item[1][metric]),
                    reverse=result.mode == "max")
    named = {trial.index for trial, _ in ranked[:LEGEND_MAX_TRIALS]}
    figure = _Figure(figsize=(9, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for trial, curve in curves:
        # matplotlib leaves labels starting with "_" out of the legend
        label = _short(trial.name) if trial.index in named else f"_{trial.name}"
        axes.plot(curve["training_iteration"], curve[metric], marker="o", markersize=3,
                  label=label)
    axes.set_xlabel("epoch (training_iteration)")
    axes.set_ylabel(metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if _spans_decades([value for _, curve in curves for value in curve[metric]]):
        axes.set_yscale("log")
    title = (f"best {len(named)} of {len(curves)} trials" if len(curves) > len(named)
             else "trial")
    axes.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.set_title(f"Learning curves: {metric} per epoch")
    return _finish(figure, path)


def _short(name: str, limit: int = 60) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def save_plots(result: "TuneLightningResult", directory: str) -> Dict[str, str]:
    """The three figures as PNG files in ``directory``; their paths by plot name."""
    os.makedirs(directory, exist_ok=True)
    makers = {"optimisation_history": optimisation_history,
              "parallel_coordinates": parallel_coordinates, "learning_curves": learning_curves}
    paths = {}
    for name, make in makers.items():
        paths[name] = os.path.join(directory, PLOT_FILES[name])
        make(result, path=paths[name])
    return paths
