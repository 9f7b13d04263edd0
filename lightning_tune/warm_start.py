"""Build on an earlier search: its finished trials are told to the searcher before it proposes.

Each finished trial of the earlier experiment becomes an evaluated point: its searched values
and its last report of this search's metric (of each one, for several objectives), as a
searcher is told a trial's result when it ends. Optuna takes them as completed trials of
its study, HyperOpt as finished trials of its history (see
:mod:`lightning_tune.informed_hyperopt`); they count towards TPE's random start-up trials, so
with enough of them it models them from the first proposal on. A random or grid search cannot
learn from them, and says it ignores them. Checked before Ray starts: the earlier experiment
must have searched the same parameters; its trials this search could not draw are left out.
"""

from __future__ import annotations

import logging
import math
import os
from numbers import Real
from typing import TYPE_CHECKING, Any, Dict, List, Tuple, Union

from ray.tune.search.sample import Categorical, Domain, Float, Integer, Quantized

from lightning_tune.errors import ExperimentNotFoundError, InvalidArgumentError, InvalidTypeError
from lightning_tune.searchers import check_space_for_searcher
from lightning_tune.results import TuneLightningResult
from lightning_tune.spaces import Parameter, SearchSpace

if TYPE_CHECKING:
    WarmStartArgument = Union[None, str, os.PathLike, TuneLightningResult]

log = logging.getLogger(__name__)

#: the named searchers that learn from evaluated points
LEARNING_SEARCHERS = ("optuna", "hyperopt")


def evaluated_points(warm_start: Any, space: SearchSpace, metric: Any, search_alg: Any
                     ) -> Tuple[List[Dict[str, Any]], List[Any]]:
    """The earlier search's finished trials as (configs, values) for this search's searcher
    (a value is a list of the objectives' values for several).

    Empty where the searcher cannot use them (random, grid: it is logged).
    """
    if warm_start is None:
        return [], []
    _check_searcher(space, search_alg)  # what holds whatever the earlier search was, first
    earlier = _earlier_result(warm_start)
    searched = space.sampled_parameters() + space.grid_parameters()
    only_there = [name for name in earlier.searched if name not in searched]
    only_here = [name for name in searched if name not in earlier.searched]
    if only_there or only_here:
        raise InvalidArgumentError(
            f"warm_start: the earlier search at {earlier.experiment_path} searched "
            f"{earlier.searched}, this one searches {searched}; they differ in "
            + "; ".join(part for part in (
                f"only there: {only_there}" if only_there else "",
                f"only here: {only_here}" if only_here else "") if part)
            + ". Warm-start from a search of the same parameters (their ranges may differ).")
    if search_alg not in LEARNING_SEARCHERS:
        log.warning("warm_start: search_alg=%r does not learn from earlier trials, so the %d "
                    "trials of %s are ignored. search_alg='optuna' or 'hyperopt' builds on "
                    "them.",
                    search_alg, len(earlier.result_grid), earlier.experiment_path)
        return [], []
    return _points(earlier, space, searched, metric)


def _check_searcher(space: SearchSpace, search_alg: Any) -> None:
    """Refuse a searcher, or a space, that cannot be told earlier trials."""
    check_space_for_searcher(space, search_alg)  # what the searcher cannot run at all
    if not isinstance(search_alg, str):
        raise InvalidArgumentError(
            "warm_start works with the named searchers; for your own Searcher, give it the "
            "earlier trials yourself (for one metric: OptunaSearch(points_to_evaluate=..., "
            "evaluated_rewards=...), or lightning_tune.informed_hyperopt.InformedHyperOptSearch).")
    if search_alg not in LEARNING_SEARCHERS:
        return  # it ignores them, whatever the space
    if space.nested_parameters():
        raise InvalidArgumentError(
            f"warm_start tells the searcher earlier trials of a flat space, but "
            f"{space.nested_parameters()} hold parameters inside them. Give each parameter "
            "its own name in the space, or search without warm_start.")
    if space.conditional:
        raise InvalidArgumentError(
            f"warm_start cannot tell {search_alg} earlier trials of a space with conditional "
            f"parameters {space.conditional} (Ray's searchers take none with them). Make "
            "them unconditional, or search without warm_start.")


def _earlier_result(warm_start: Any) -> TuneLightningResult:
    if isinstance(warm_start, TuneLightningResult):
        return warm_start
    if isinstance(warm_start, (str, os.PathLike)):
        from lightning_tune.api import load_result  # the api imports this module

        try:
            return load_result(os.fspath(warm_start))
        except ExperimentNotFoundError as error:
            raise ExperimentNotFoundError(f"warm_start: {error}") from None
    raise InvalidTypeError(
        f"warm_start must be an earlier experiment's folder or the result tune_lightning "
        f"returned for it, got {type(warm_start).__name__}.")


def _points(earlier: TuneLightningResult, space: SearchSpace, searched: List[str],
            metric: Any) -> Tuple[List[Dict[str, Any]], List[Any]]:
    domains = {name: _domain(space.entries[name]) for name in searched}
    configs: List[Dict[str, Any]] = []
    values: List[Any] = []
    outside = 0
    for trial in earlier.result_grid:
        value = _value_of(trial.metrics_dataframe, metric) if not trial.error else None
        if value is None:
            continue
        config = {name: (trial.config or {}).get(name) for name in searched}
        if not all(can_draw(domains[name], value) for name, value in config.items()):
            outside += 1
            continue
        configs.append(config)
        values.append(value)
    if not configs:
        raise InvalidArgumentError(
            f"warm_start: no finished trial of {earlier.experiment_path} reported {metric!r} "
            f"inside this search's ranges ({outside} lie outside them), so there is nothing to "
            "build on.")
    log.warning("warm_start: the searcher starts from %d finished trials of %s%s.",
                len(configs), earlier.experiment_path,
                f" ({outside} outside this search's ranges left out)" if outside else "")
    return configs, values


def _value_of(history: Any, metric: Any) -> Any:
    """A trial's result as the searcher is told one at a trial's end: its last report of the
    metric (a list of them all, for several objectives)."""
    names = [metric] if isinstance(metric, str) else list(metric)
    if history is None or not all(name in history for name in names):
        return None
    complete = history[names].dropna()
    if not len(complete):
        return None
    last = [float(value) for value in complete.iloc[-1]]
    return last[0] if isinstance(metric, str) else last


def _domain(entry: Any) -> Any:
    return entry.domain() if isinstance(entry, Parameter) else entry


def can_draw(domain: Any, value: Any) -> bool:
    """Whether ``value`` is one the Tune ``domain`` could draw (and a searcher accepts)."""
    if isinstance(domain, Categorical):
        return value in domain.categories
    if not isinstance(domain, (Float, Integer)):
        return not isinstance(domain, Domain)  # a grid or a constant: not searched
    if isinstance(value, bool) or not isinstance(value, Real):  # numpy's numbers too
        return False
    if domain.lower is None or domain.upper is None:  # a normal distribution: unbounded
        return True
    sampler = domain.get_sampler()
    step = sampler.q if isinstance(sampler, Quantized) else None
    # randint's and lograndint's upper bound is excluded; a quantized one's, as a float's, not
    below_upper = value <= domain.upper if isinstance(domain, Float) or step else \
        value < domain.upper
    on_step = step is None or math.isclose((value - domain.lower) / step,
                                           round((value - domain.lower) / step), abs_tol=1e-6)
    return domain.lower <= value and below_upper and on_step
