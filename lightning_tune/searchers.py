"""Search algorithms and trial schedulers, chosen by name or passed in as Tune objects.

Names map onto Tune's own implementations: "random" and "grid" (BasicVariantGenerator),
"optuna" (OptunaSearch with TPE), "hyperopt" (HyperOptSearch); "fifo", "asha", "hyperband",
"median" and "pbt". What a searcher cannot express in the space is refused here, before Ray
starts, naming the parameter and what would work instead.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

from ray.tune.schedulers import (ASHAScheduler, FIFOScheduler, HyperBandScheduler,
                                 MedianStoppingRule, PopulationBasedTraining, TrialScheduler)
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.sample import Domain

from lightning_tune.spaces import Parameter, SearchSpace
from lightning_tune.errors import InvalidArgumentError

SEARCH_ALGS = ("random", "grid", "optuna", "hyperopt")
# Random configs Optuna's TPE and HyperOpt draw before modelling: their defaults (10, 20)
# would leave a 16-trial search almost all random.
STARTUP_TRIALS = 5
SCHEDULERS = ("fifo", "asha", "hyperband", "median", "pbt", "mo-asha")
#: what a search of several objectives can run with
MULTI_OBJECTIVE_SEARCH_ALGS = ("optuna", "random", "grid")
MULTI_OBJECTIVE_SCHEDULERS = ("mo-asha", "fifo")
WARM_STUDY = "warm_start"  # the Optuna study a warm-started search of several objectives loads


def check_space_for_searcher(space: SearchSpace, search_alg: Any) -> None:
    """Refuse what ``search_alg`` cannot express, naming the parameter and an alternative."""
    if not isinstance(search_alg, str):
        return
    grids, sampled = space.grid_parameters(), space.sampled_parameters()
    if search_alg == "grid" and sampled:
        raise InvalidArgumentError(
            f"search_alg='grid' tries every combination of grid values, but {sampled} are "
            "sampled distributions. Give them 'grid' values (or tune.grid_search), or use "
            "search_alg='random'.")
    if search_alg in ("optuna", "hyperopt") and grids:
        raise InvalidArgumentError(
            f"Parameters {grids} are grids, which search_alg={search_alg!r} cannot express (it "
            "samples). Make them 'choice', or use search_alg='grid' or 'random'.")
    if search_alg == "hyperopt" and space.conditional:
        raise InvalidArgumentError(
            f"Parameters {space.conditional} are conditional ('when'), which "
            "search_alg='hyperopt' cannot express from a flat space. Use search_alg='optuna' "
            "(which samples them only when their condition holds) or 'random'.")
    if search_alg == "optuna":
        quantised_log = [name for name, p in space.parameters.items()
                         if p.distribution == "qloguniform"]
        if quantised_log:
            raise InvalidArgumentError(
                f"Parameters {quantised_log} are qloguniform, which search_alg='optuna' cannot "
                "express (Optuna's log scale takes no step). Use loguniform or quniform, or "
                "search_alg='hyperopt' or 'random'.")
        if space.conditional and any(isinstance(e, Domain) for e in space.entries.values()):
            raise InvalidArgumentError(
                "With conditional parameters, search_alg='optuna' needs every searched "
                "parameter as a spec dict ({'distribution': ...}), not a Tune domain.")


def make_search_alg(search_alg: Union[str, Searcher, SearchAlgorithm], space: SearchSpace,
                    metric: str, mode: str, seed: Optional[int] = None,
                    max_concurrent: Optional[int] = None,
                    evaluated: Tuple[List[Dict[str, Any]], List[float]] = ([], [])
                    ) -> Tuple[Union[Searcher, SearchAlgorithm], Dict[str, Any]]:
    """The search algorithm and the ``param_space`` to give Tune with it.

    ``evaluated``: configs already evaluated and their values (an earlier search's, see
    :mod:`lightning_tune.warm_start`; a list per config for several objectives), which Optuna
    takes as completed trials and HyperOpt as finished trials of its history.

    ``seed`` makes the sequence of configs repeatable for every named searcher.
    ``max_concurrent`` goes to the variant generator itself: Tune applies
    ``max_concurrent_trials`` only to the searchers it wraps, not to a generator passed in.
    """
    if isinstance(search_alg, (Searcher, SearchAlgorithm)):
        return search_alg, space.to_tune(seed)
    several = isinstance(metric, list)
    if several and search_alg not in MULTI_OBJECTIVE_SEARCH_ALGS:
        raise InvalidArgumentError(
            f"search_alg={search_alg!r} optimises one metric; with several objectives use one "
            f"of {MULTI_OBJECTIVE_SEARCH_ALGS} (Optuna's TPE samples for several at once).")
    if search_alg not in SEARCH_ALGS:
        raise InvalidArgumentError(f"search_alg must be one of {SEARCH_ALGS} or a ray.tune.search.Searcher "
                         f"instance, got {search_alg!r}.")
    check_space_for_searcher(space, search_alg)
    if search_alg in ("random", "grid"):
        return (BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent or 0),
                space.to_tune(seed))
    if search_alg == "hyperopt":
        from lightning_tune.informed_hyperopt import InformedHyperOptSearch

        return (InformedHyperOptSearch(*evaluated, random_state_seed=seed,
                                       n_initial_points=STARTUP_TRIALS), space.to_tune(seed))
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
    configs, values = evaluated
    if several:  # Optuna's multi-objective study: told the objectives and their directions
        told = _told_study(configs, values, space.to_tune(seed), mode) if configs else {}
        return (OptunaSearch(space=_DefineByRun(space) if space.conditional else None,
                             metric=metric, mode=mode, sampler=sampler, **told),
                constants_of(space) if space.conditional else space.to_tune(seed))
    if not space.conditional:
        return (OptunaSearch(sampler=sampler, points_to_evaluate=configs or None,
                             evaluated_rewards=values or None), space.to_tune(seed))
    return (OptunaSearch(space=_DefineByRun(space), metric=metric, mode=mode, sampler=sampler),
            constants_of(space))


def _told_study(configs: List[Dict[str, Any]], values: List[List[float]],
                param_space: Dict[str, Any], modes: List[str]) -> Dict[str, Any]:
    """An in-memory Optuna study holding evaluated trials of several objectives, which
    OptunaSearch loads by name (its evaluated_rewards take one value a trial)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    distributions = OptunaSearch.convert_search_space(  # the searched names only
        {name: entry for name, entry in param_space.items() if isinstance(entry, Domain)})
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=WARM_STUDY, directions=[
        "minimize" if mode == "min" else "maximize" for mode in modes])
    for config, trial_values in zip(configs, values):
        study.add_trial(optuna.trial.create_trial(params=config, values=trial_values,
                                                  distributions=distributions))
    return {"storage": storage, "study_name": WARM_STUDY}


def constants_of(space: SearchSpace) -> Dict[str, Any]:
    """The space's constants: Tune's param_space where Optuna samples the rest itself."""
    return {name: entry for name, entry in space.entries.items()
            if not isinstance(entry, Parameter)}


class _DefineByRun:
    """An Optuna define-by-run space: conditional parameters are suggested only when due.

    A class, not a closure: OptunaSearch pickles it with its state.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.parameters = space.parameters
        conditions = {name for parameter in self.parameters.values() for name in parameter.when}
        # only the constants a condition reads: the searcher's saved state holds these
        self.constants = {name: entry for name, entry in space.entries.items()
                          if name not in self.parameters and name in conditions}

    def __call__(self, trial: Any) -> Dict[str, Any]:
        inactive: Dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            known = {**self.constants, **trial.params}
            if any(known.get(other) != wanted for other, wanted in parameter.when.items()):
                inactive[name] = None
                continue
            kind = parameter.distribution
            if kind == "choice":
                trial.suggest_categorical(name, parameter.values)
            elif kind == "randint":
                trial.suggest_int(name, int(parameter.low), int(parameter.high) - 1)
            else:
                trial.suggest_float(name, parameter.low, parameter.high,
                                    log=kind == "loguniform",
                                    step=parameter.q if kind == "quniform" else None)
        return inactive


def make_scheduler(scheduler: Union[None, str, TrialScheduler], max_epochs: int,
                   space: Optional[SearchSpace] = None, search_alg: Any = "random",
                   metric: Union[str, List[str]] = "val_loss",
                   mode: Union[str, List[str]] = "min") -> TrialScheduler:
    """A Tune trial scheduler; every one counts time in ``training_iteration`` (epochs).

    "pbt" mutates the space's sampled parameters (not grids, not conditional ones) every
    quarter of ``max_epochs``; a mutated trial continues from its donor's checkpoint. It is
    synchronous: trials are ranked when all have reached the same epoch, so a small population
    on a busy machine still exploits, instead of depending on which trial reported first.
    """
    if isinstance(scheduler, TrialScheduler):
        return scheduler
    several = isinstance(metric, list)
    if scheduler is None:  # ASHA, across the objectives when there are several
        scheduler = "mo-asha" if several else "asha"
    if several and scheduler not in MULTI_OBJECTIVE_SCHEDULERS:
        raise InvalidArgumentError(
            f"scheduler={scheduler!r} ranks trials by one metric; with several objectives use "
            f"one of {MULTI_OBJECTIVE_SCHEDULERS} ('mo-asha' stops trials early by Pareto "
            "rank, then crowding distance).")
    if scheduler == "mo-asha":
        if not several:
            raise InvalidArgumentError("scheduler='mo-asha' is ASHA across several objectives; "
                                       "give metric and mode as lists, or use 'asha'.")
        from lightning_tune.multi_objective_asha import MultiObjectiveASHA

        return MultiObjectiveASHA(metric, mode, max_t=max_epochs)
    if scheduler not in SCHEDULERS:
        raise InvalidArgumentError(f"scheduler must be one of {SCHEDULERS} or a ray.tune.schedulers."
                         f"TrialScheduler instance, got {scheduler!r}.")
    if scheduler == "fifo":
        return FIFOScheduler()
    # stop_last_trials=False: a trial that reaches max_epochs ends by itself. Stopped by the
    # scheduler at that last report instead, it would count as cut short, and its warm
    # workers would be killed rather than kept for the next trial.
    if scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=max_epochs, grace_period=1,
                             reduction_factor=2, stop_last_trials=False)
    if scheduler == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=max_epochs,
                                  reduction_factor=2, stop_last_trials=False)
    if scheduler == "median":
        return MedianStoppingRule(time_attr="training_iteration", grace_period=1,
                                  min_samples_required=2)
    if search_alg not in ("random", None):
        raise InvalidArgumentError("scheduler='pbt' explores by mutating running trials, so it needs "
                         f"search_alg='random', not {search_alg!r}.")
    mutations = pbt_mutations(space) if space is not None else {}
    if not mutations:
        raise InvalidArgumentError("scheduler='pbt' needs at least one sampled parameter in the space "
                         "to mutate (a distribution or choice, not a constant or grid).")
    return PopulationBasedTraining(time_attr="training_iteration",
                                   perturbation_interval=max(1, max_epochs // 4),
                                   hyperparam_mutations=mutations, quantile_fraction=0.25,
                                   synch=True)


def pbt_mutations(space: SearchSpace) -> Dict[str, Any]:
    """The parameters PBT may resample or perturb, as Tune domains."""
    mutations: Dict[str, Any] = {}
    for name, entry in space.entries.items():
        if isinstance(entry, Parameter) and entry.distribution != "grid" and not entry.when:
            mutations[name] = entry.domain()
        elif isinstance(entry, Domain):
            mutations[name] = entry
    return mutations
