"""Which hyperparameters mattered: Optuna's importance evaluators over a finished search.

Whatever searcher ran the search, its finished trials are handed to Optuna as a study kept in
memory: each trial's searched values and its best reported value of the metric. Optuna then
does the estimating: fANOVA (how much of the metric's variance a random forest fitted to the
trials puts on each parameter) by default, or PED-ANOVA (how differently a parameter is
distributed in the best trials than in all of them). The ranges Optuna is told are the
ranges the trials took; one spanning over a decade is on a log scale, as in the plots.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from numbers import Real
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                  FloatDistribution, IntDistribution)

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.results import best_of, trial_id_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lightning_tune.results import TuneLightningResult

EVALUATORS = ("fanova", "ped-anova")
#: fewer finished trials than this say nothing about which parameter mattered
MIN_TRIALS = 4


def evaluator_for(name: str, seed: int = 0) -> optuna.importance.BaseImportanceEvaluator:
    """Optuna's evaluator by name: "fanova" or "ped-anova"."""
    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    if name == "ped-anova":
        with warnings.catch_warnings():  # Optuna marks it experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.importance.PedAnovaImportanceEvaluator()
    raise InvalidArgumentError(f"evaluator must be one of {list(EVALUATORS)}, got {name!r}.")


def importance_study(result: "TuneLightningResult", metric: Optional[str] = None,
                     mode: Optional[str] = None) -> optuna.Study:
    """The search's finished trials as an in-memory Optuna study, for Optuna's tools.

    A finished trial is one that did not fail and reported ``metric``; its value is its best
    reported one (so trials a scheduler stopped early count with what they reached).
    """
    metric, mode = _metric_and_mode(result, metric, mode)
    rows = []
    # in trial id order: a search read back from its folder lists its trials in another order,
    # and the forest fANOVA fits depends on the order (the seed alone does not fix it)
    for trial in sorted(result.result_grid, key=lambda trial: str(trial_id_of(trial))):
        history = trial.metrics_dataframe
        if trial.error or history is None or metric not in history:
            continue
        values = history[metric].dropna()
        if len(values):
            rows.append((dict(trial.config or {}), float(values[best_of(values, mode)])))
    if len(rows) < MIN_TRIALS:
        raise InvalidArgumentError(
            f"Importance needs at least {MIN_TRIALS} finished trials that reported {metric!r}; "
            f"this search has {len(rows)}. Run more trials (resume continues a search, or "
            "search again with a larger num_samples).")
    distributions = {name: _distribution([config.get(name) for config, _ in rows])
                     for name in result.searched}
    distributions = {name: found for name, found in distributions.items() if found is not None}
    if not distributions:
        raise InvalidArgumentError(
            f"None of the searched parameters {result.searched} took more than one value over "
            "the finished trials, so there is no importance to tell.")
    with quiet_optuna():
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
        study.add_trials([optuna.trial.create_trial(
            params={name: _as_choice(config[name], found)
                    for name, found in distributions.items() if config.get(name) is not None},
            distributions={name: found for name, found in distributions.items()
                           if config.get(name) is not None},
            value=value) for config, value in rows])
    return study


def param_importances(result: "TuneLightningResult", metric: Optional[str] = None,
                      mode: Optional[str] = None, evaluator: str = "fanova",
                      seed: int = 0) -> Dict[str, float]:
    """Each searched parameter's share of importance (they sum to 1), most important first.

    A parameter only some trials have (a conditional one) is left out, as Optuna does.
    """
    study = importance_study(result, metric, mode)
    with quiet_optuna():
        shares = optuna.importance.get_param_importances(
            study, evaluator=evaluator_for(evaluator, seed))
    return {name: float(share) for name, share in shares.items()}


def plot_importance(result: "TuneLightningResult", metric: Optional[str] = None,
                    mode: Optional[str] = None, evaluator: str = "fanova", seed: int = 0,
                    path: Optional[str] = None) -> "Figure":
    """Optuna's bar chart of :func:`param_importances`; ``path``: also save it there (PNG)."""
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_param_importances

    study = importance_study(result, metric, mode)
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = plot_param_importances(study, evaluator=evaluator_for(evaluator, seed),
                                      target_name=metric or result.metric)
    figure = axes.figure
    plt.close(figure)  # Optuna drew it through pyplot: hand it back without pyplot's hold
    if path:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure


def importance_lines(result: "TuneLightningResult") -> List[str]:
    """What ``lightning-tune report`` prints: the fANOVA importances, or why there are none."""
    try:
        shares = param_importances(result)
    except InvalidArgumentError as error:
        return [f"hyperparameter importance: none ({error})"]
    width = max(len(name) for name in shares)
    return [f"hyperparameter importance for {result.metric} (fANOVA, share of variance):",
            *(f"  {name:<{width}}  {share:.3f}" for name, share in shares.items())]


def _metric_and_mode(result: "TuneLightningResult", metric: Optional[str],
                     mode: Optional[str]) -> tuple:
    if metric is None or metric == result.metric:
        return result.metric, mode or result.mode
    if mode not in ("min", "max"):
        raise InvalidArgumentError(
            f"importance of {metric!r}, which the search did not optimise, needs its mode: "
            f"mode='min' or mode='max' (got {mode!r}).")
    return metric, mode


def _distribution(values: List[Any]) -> Optional[BaseDistribution]:
    """The Optuna distribution the trials' values of one parameter span; None if one value."""
    present = [value for value in values if value is not None]
    numbers = [value for value in present if isinstance(value, Real)
               and not isinstance(value, bool) and math.isfinite(value)]
    if present and len(numbers) == len(present):
        low, high = min(numbers), max(numbers)
        if low == high:
            return None
        log = low > 0 and high / low > 10
        if all(isinstance(value, int) for value in numbers):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    choices = list(dict.fromkeys(_as_choice(value, None) for value in present))
    return CategoricalDistribution(choices) if len(choices) > 1 else None


def _as_choice(value: Any, distribution: Optional[BaseDistribution]) -> Any:
    """A value as Optuna takes it: categories are plain scalars (others by their repr)."""
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        return value
    return value if isinstance(value, (str, int, float, bool)) else repr(value)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs each study it creates; these studies are ours, not the user's."""
    optuna_log = logging.getLogger("optuna")
    level = optuna_log.level
    optuna_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        optuna_log.setLevel(level)
