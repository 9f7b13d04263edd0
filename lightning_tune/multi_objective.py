"""What a search of several objectives gives back: its Pareto front, drawn, and its trials.

Each trial counts with its final report (the model it ended with, whose checkpoint is its
latest), not with its best value per objective, which may come from different epochs. The
front is computed by :mod:`lightning_tune.pareto`; the figure is Optuna's, drawn from the
trials handed to it as an in-memory study.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import pandas as pd

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.importance import quiet_optuna
from lightning_tune.pareto import front_ranks
from lightning_tune.results import trial_id_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lightning_tune.results import TuneLightningResult


def final_objectives(result: "TuneLightningResult") -> List[Tuple[Any, List[float]]]:
    """Each finished trial (not failed, reported every objective) with its final values."""
    finished = []
    for trial in result.result_grid:
        history = trial.metrics_dataframe
        if trial.error or history is None or history.empty or any(
                metric not in history for metric in result.metrics):
            continue
        finished.append((trial, [float(history[metric].iloc[-1]) for metric in result.metrics]))
    return finished


def pareto_front(result: "TuneLightningResult") -> pd.DataFrame:
    """The non-dominated trials: id, searched values, final objectives, epochs, checkpoint."""
    if len(result.metrics) < 2:
        raise InvalidArgumentError(
            f"The search optimised one metric ({result.metric!r}): it has a best trial, not a "
            "Pareto front. Give metric and mode as lists to search several objectives.")
    finished = final_objectives(result)
    ranks = front_ranks([values for _, values in finished], result.modes)
    rows = []
    for (trial, values), rank in zip(finished, ranks):
        if rank:
            continue
        config = trial.config or {}
        rows.append({"trial_id": trial_id_of(trial),
                     **{name: config.get(name) for name in result.searched},
                     **dict(zip(result.metrics, values)),
                     "training_iteration": trial.metrics_dataframe["training_iteration"].iloc[-1]
                     if "training_iteration" in trial.metrics_dataframe else None,
                     "checkpoint": trial.checkpoint.path if trial.checkpoint else None})
    front = pd.DataFrame(rows, columns=["trial_id", *result.searched, *result.metrics,
                                        "training_iteration", "checkpoint"])
    return front.sort_values(result.metric, ascending=result.mode == "min", ignore_index=True)


def plot_pareto_front(result: "TuneLightningResult", path: Optional[str] = None) -> "Figure":
    """The finished trials' objectives with the front marked: Optuna's scatter for 2
    objectives, parallel coordinates (one axis per objective) for more."""
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import plot_pareto_front as optuna_plot

    if len(result.metrics) < 2:
        raise InvalidArgumentError(
            f"The search optimised one metric ({result.metric!r}): there is no Pareto front to "
            "draw. plot_optimisation_history shows how it converged.")
    finished = [(trial, values) for trial, values in final_objectives(result)
                if all(math.isfinite(value) for value in values)]
    if len(result.metrics) > 2:
        return _save(_objective_coordinates(result, finished), path)
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(directions=[
            "minimize" if mode == "min" else "maximize" for mode in result.modes])
        study.add_trials([optuna.trial.create_trial(values=values) for _, values in finished])
        axes = optuna_plot(study, target_names=result.metrics)
    ranks = front_ranks([values for _, values in finished], result.modes)
    front = sorted(values for (_, values), rank in zip(finished, ranks) if rank == 0)
    axes.plot([x for x, _ in front], [y for _, y in front], color="tab:red", alpha=0.5,
              # the edge of the region the front dominates, left to right
              drawstyle="steps-post" if result.modes[0] == "min" else "steps-pre",
              label="Pareto front")
    axes.legend()
    figure = axes.figure
    plt.close(figure)  # Optuna drew it through pyplot: hand it back without pyplot's hold
    return _save(figure, path)


def _objective_coordinates(result: "TuneLightningResult",
                           finished: List[Tuple[Any, List[float]]]) -> "Figure":
    """One vertical axis per objective (its best end up), one line per trial; the front's
    trials in colour and named, the others grey."""
    from matplotlib.figure import Figure

    ranks = front_ranks([values for _, values in finished], result.modes)
    lows = [min(values[i] for _, values in finished) for i in range(len(result.metrics))]
    highs = [max(values[i] for _, values in finished) for i in range(len(result.metrics))]

    def height(i: int, value: float) -> float:
        share = 0.5 if highs[i] == lows[i] else (value - lows[i]) / (highs[i] - lows[i])
        return 1 - share if result.modes[i] == "min" else share

    figure = Figure(figsize=(max(6.0, 2.0 * len(result.metrics)), 4.8), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(result.metrics)))
    for (trial, values), rank in sorted(zip(finished, ranks), key=lambda item: -item[1]):
        on_front = rank == 0
        axes.plot(positions, [height(i, value) for i, value in enumerate(values)],
                  color=None if on_front else "0.75", linewidth=2 if on_front else 1,
                  marker="o", label=trial_id_of(trial) if on_front else None)
    axes.set_xticks(positions, labels=[f"{name}\n({mode}: {best:.4g} .. {worst:.4g})"
                                       for name, mode, best, worst in zip(
                                           result.metrics, result.modes,
                                           *_best_and_worst(lows, highs, result.modes))])
    axes.set_yticks([0, 1], labels=["worst", "best"])
    axes.set_title(f"Objectives of {len(finished)} trials; the Pareto front in colour")
    axes.legend(title="Pareto front", fontsize="small")
    return figure


def _best_and_worst(lows: List[float], highs: List[float], modes: List[str]) -> tuple:
    best = [low if mode == "min" else high for low, high, mode in zip(lows, highs, modes)]
    worst = [high if mode == "min" else low for low, high, mode in zip(lows, highs, modes)]
    return best, worst


def _save(figure: "Figure", path: Optional[str]) -> "Figure":
    if path:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure


def trial_result(result: "TuneLightningResult", trial_id: str) -> Any:
    """The Tune result of the trial with ``trial_id``; an error naming the ids otherwise."""
    for trial in result.result_grid:
        if trial_id_of(trial) == str(trial_id):
            return trial
    known = sorted(str(trial_id_of(trial)) for trial in result.result_grid)
    raise InvalidArgumentError(f"No trial {trial_id!r} in this search; its trials: {known}.")
