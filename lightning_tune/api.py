"""The user's entry points: ``tune_lightning`` runs a search, ``resume`` continues one,
``load_result`` reads one back.

``tune_lightning`` keeps the order of a search: everything it is given is checked and turned
into a trial spec and a search space before Ray starts; then the Tuner runs the trainable
made from the spec; then the result grid becomes a :class:`TuneLightningResult`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional, Sequence, Union

from ray import tune
from ray.tune import TuneConfig
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher

from lightning_tune.cluster import ensure_ray
from lightning_tune.errors import (AllTrialsFailedError, ExperimentExistsError,
                                   ExperimentNotFoundError, InvalidArgumentError)
from lightning_tune.lightning_cli import LightningCliConfig
from lightning_tune.record import check_experiment_state, read_record, write_record
from lightning_tune.resources import check_cluster_can_hold
from lightning_tune.results import TuneLightningResult
from lightning_tune.run_settings import run_config, tune_environment
from lightning_tune.searchers import make_scheduler, make_search_alg
from lightning_tune.shared_data import (constant_references, resupplied_constants,
                                        share_large_constants, shared_constant_names)
from lightning_tune.spaces import SearchSpace, load_space
from lightning_tune.spec import TrialSpec
from lightning_tune.stopping import (SearchTimeBudget, StopArgument, budget_notes,
                                     check_time_budget, restored_budget, trial_stopper)
from lightning_tune.trackers import (LoggersArgument, check_loggers, loggers_in_effect,
                                     prepare_trackers, search_mlflow_uri, tracker_hints)
from lightning_tune.trainable import trainable_for
from lightning_tune.trial_names import TrialNamer
from lightning_tune.warm_start import evaluated_points

log = logging.getLogger(__name__)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def tune_lightning(
    model_cls: type,
    space: Union[Dict[str, Any], str, SearchSpace],
    *,
    datamodule: Any = None,
    metric: Union[str, Sequence[str]] = "val_loss",
    mode: Union[str, Sequence[str]] = "min",
    num_samples: int = 10,
    max_epochs: int = 10,
    strategy: Optional[str] = None,
    num_workers: int = 1,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    search_alg: Union[str, Searcher, SearchAlgorithm] = "random",
    scheduler: Union[None, str, TrialScheduler] = None,
    max_concurrent_trials: Optional[int] = None,
    trainer_kwargs: Optional[Dict[str, Any]] = None,
    callbacks: Optional[Sequence[Any]] = None,
    storage_path: Optional[str] = None,
    name: Optional[str] = None,
    max_failures: int = 0,
    seed: Optional[int] = None,
    verbose: int = 1,
    resume: bool = False,
    worker_timeout_s: Optional[float] = None,
    reuse_workers: bool = True,
    strategy_kwargs: Optional[Dict[str, Any]] = None,
    lightning_cli: Optional[LightningCliConfig] = None,
    loggers: LoggersArgument = None,
    time_budget_s: Optional[float] = None,
    stop: StopArgument = None,
    warm_start: Any = None,
) -> TuneLightningResult:
    """Search ``space`` for the best hyperparameters of ``model_cls`` with Ray Tune.

    Every argument is checked before Ray starts. ``space`` is a dict of Tune domains
    (``tune.loguniform(...)``, ``tune.choice([...])``, ``tune.grid_search([...])``) and
    constants, a spec dict (see :mod:`lightning_tune.spaces`), a YAML file or the name of a
    curated space in ``search_spaces``; each name must be a parameter of ``model_cls`` or of
    the datamodule class. ``search_alg``: "random", "grid", "optuna", "hyperopt" or a Tune
    Searcher; ``scheduler``: "fifo", "asha" (the default), "hyperband", "median", "pbt" or a
    TrialScheduler. ``metric`` and ``mode`` as lists: several objectives, searched by "random",
    "grid" or "optuna", scheduled by "mo-asha" (the default then) or "fifo"; the result has a
    ``pareto_front``. With
    ``strategy="ddp"``, ``"fsdp"`` or ``"horovod"`` every trial trains on ``num_workers`` Ray
    actors of its own; ``strategy_kwargs`` go to that strategy (e.g. FSDP's
    ``state_dict_type="sharded"``).
    ``reuse_workers`` (Tune's ``reuse_actors``): a finished trial's process, and its worker
    actors, start the next trial of the same shape instead of new ones being started.
    ``lightning_cli``: trials build everything from this LightningCLI config instead (see
    :func:`tune_lightning_cli`, which makes it). ``loggers``: each trial's experiment trackers
    ("tensorboard" by default, "csv", "mlflow", False, or a function trial -> [loggers]; see
    :mod:`lightning_tune.trackers`). ``time_budget_s``: after this many seconds each running
    trial reports once more, then the search ends and returns its result; ``resume`` continues
    it. ``stop``: when a trial stops early: a dict of metric thresholds, ``"plateau"``, or a
    Tune Stopper (see :func:`lightning_tune.stopping.trial_stopper`). ``warm_start``: an
    earlier experiment's folder or result, whose finished trials Optuna or HyperOpt starts from
    (see :mod:`lightning_tune.warm_start`).
    """
    budget = SearchTimeBudget(check_time_budget(time_budget_s))
    mlflow_uri = search_mlflow_uri(check_loggers(loggers))
    spec = TrialSpec.from_arguments(locals())  # every trial setting, checked
    metric, mode = spec.metric, spec.mode  # lists, for several objectives
    stopper = trial_stopper(stop, metric, mode)
    search_space = load_space(space)
    spec.routing.check_keys(search_space.names())
    if spec.lightning_cli is not None:  # each value as the project's LightningCLI parses it
        spec.lightning_cli.check_values(search_space.candidate_values())
    _check_positive_int("num_samples", num_samples)
    _check_positive_int("max_failures", max_failures, minimum=-1)
    if max_concurrent_trials is not None:
        _check_positive_int("max_concurrent_trials", max_concurrent_trials)
    search, param_space = make_search_alg(
        search_alg, search_space, metric, mode, seed, max_concurrent_trials,
        evaluated=evaluated_points(warm_start, search_space, metric, search_alg))
    trial_scheduler = make_scheduler(scheduler, max_epochs, search_space, search_alg, metric,
                                     mode)

    searched = search_space.sampled_parameters() + search_space.grid_parameters()
    namer = TrialNamer(searched)
    name = name or f"{model_cls.__name__}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    storage_path = os.path.abspath(os.path.expanduser(storage_path or "~/ray_results"))
    experiment_path = os.path.join(storage_path, name)
    if tune.Tuner.can_restore(experiment_path):
        if resume:
            return _resume_experiment(experiment_path, callbacks=callbacks,
                                      datamodule=datamodule, trainer_kwargs=trainer_kwargs,
                                      strategy_kwargs=strategy_kwargs, loggers=loggers,
                                      constants=param_space)
        raise ExperimentExistsError(
            f"An experiment named {name!r} already exists at {experiment_path}. Continue it with "
            f"tune_lightning(..., resume=True) or lightning_tune.resume({experiment_path!r}), or "
            "choose another name.")

    prepare_trackers(spec.loggers, name, experiment_path, spec.mlflow_uri)
    ensure_ray()
    resources = spec.trial_resources()
    check_cluster_can_hold(resources.bundles, placement_strategy=resources.strategy,
                           what=f"Each trial (strategy={strategy!r}, num_workers={num_workers})")
    shared_space, references = share_large_constants(param_space)  # big data once
    constants = {name: param_space[name] for name in shared_constant_names(shared_space)}
    write_record(experiment_path, spec, searched, search={
        "time_budget_s": budget.seconds, "stop": stop if isinstance(stop, (str, dict)) else
        None if stop is None else f"{type(stop).__module__}.{type(stop).__qualname__}",
        "shared_constants": list(constants)})
    tuner = tune.Tuner(
        trainable_for(spec, references),
        param_space=shared_space,
        # several objectives: the searcher and scheduler were told them; Tune takes one
        tune_config=TuneConfig(metric=None if spec.several else metric,
                               mode=None if spec.several else mode, search_alg=search,
                               scheduler=trial_scheduler, num_samples=num_samples,
                               # a variant generator limits itself; Tune would only warn
                               max_concurrent_trials=None if isinstance(
                                   search, BasicVariantGenerator) else max_concurrent_trials,
                               trial_name_creator=namer, trial_dirname_creator=namer,
                               reuse_actors=reuse_workers),
        run_config=run_config(name=name, storage_path=storage_path, verbose=verbose,
                              max_failures=max_failures, metric=spec.metrics[0],
                              mode=spec.modes[0],
                              scheduler=scheduler, budget=budget, stop=stopper),
    )
    with tune_environment():
        result_grid = tuner.fit()
    if stopper is not None and stopper.error is not None:
        raise stopper.error  # a stopping rule named a metric the trials do not log
    result = _result_or_error(result_grid, spec, searched, experiment_path, budget, constants)
    if verbose >= 1:
        print(f"\n{result.summary()}")
    return result


def resume(experiment_path: str, *, resume_errored: bool = False,
           callbacks: Optional[Sequence[Any]] = None, datamodule: Any = None,
           trainer_kwargs: Optional[Dict[str, Any]] = None,
           strategy_kwargs: Optional[Dict[str, Any]] = None,
           loggers: LoggersArgument = None, time_budget_s: Optional[float] = None,
           constants: Optional[Dict[str, Any]] = None) -> TuneLightningResult:
    """Continue an interrupted ``tune_lightning`` experiment from its directory alone.

    Finished trials are not run again; trials that were running continue from their last
    checkpoint (their epoch count goes on); errored trials are retried only with
    ``resume_errored=True``. The model and datamodule classes are imported by the names the
    directory recorded. What was not plain data (callbacks, a datamodule instance,
    trainer_kwargs or strategy_kwargs holding objects, a loggers function) cannot be recorded
    and must be given again. A trial's trackers continue its runs (the same TensorBoard folder,
    the same MLflow run). ``time_budget_s``: a budget for this continuation (the search's
    first budget is not carried over; without one, the search runs to its end). ``constants``:
    the space's large constants by name, which the search kept in Ray's object store only.
    """
    experiment_path = os.path.abspath(os.path.expanduser(experiment_path))
    record = read_record(experiment_path)
    given = {"callbacks": callbacks, "datamodule": datamodule, "trainer_kwargs": trainer_kwargs,
             "strategy_kwargs": strategy_kwargs, "loggers": loggers}
    missing = [name for name in record.must_resupply if given[name] is None]
    if missing:
        raise InvalidArgumentError(
            f"This experiment was started with {', '.join(missing)} that cannot be recorded as "
            "plain data: pass them again, e.g. resume(path, "
            + ", ".join(f"{name}=..." for name in missing) + ").")
    shared = resupplied_constants(record.shared_constants, constants)
    seconds = check_time_budget(time_budget_s)
    if seconds is not None and record.search is None:
        raise InvalidArgumentError(
            f"The experiment at {experiment_path} was started by an older lightning-tune, "
            "which could not give a resumed search a time budget: resume it without "
            "time_budget_s.")
    spec = record.trial_spec(**given)
    if not tune.Tuner.can_restore(experiment_path):
        raise ExperimentNotFoundError(
            f"{experiment_path} holds no Tune experiment state to resume (the search stopped "
            "before Tune saved any).")
    check_experiment_state(experiment_path)
    prepare_trackers(spec.loggers, os.path.basename(experiment_path), experiment_path,
                     spec.mlflow_uri)
    ensure_ray()
    with restored_budget(seconds) as budget:
        tuner = tune.Tuner.restore(experiment_path,
                                   trainable_for(spec, constant_references(shared)),
                                   resume_unfinished=True, resume_errored=resume_errored,
                                   restart_errored=False)
    # an experiment recorded before the search named Tune's loggers keeps Tune's defaults
    with tune_environment(own_loggers="loggers" in record.settings):
        return _result_or_error(tuner.fit(), spec, record.searched, experiment_path, budget,
                                shared)


_resume_experiment = resume  # tune_lightning's own ``resume`` flag hides the function


def load_result(experiment_path: str) -> TuneLightningResult:
    """A finished or interrupted experiment, read from its directory; nothing is run.

    Tune's own state gives the trials (through ``ExperimentAnalysis``); the record
    tune_lightning wrote gives the metric, mode and searched names. Ray need not be running.
    The model class is imported only by ``load_best_model()``, so the results of a search can
    be read (tables, plots) where the model's code is not installed.
    """
    experiment_path = os.path.abspath(os.path.expanduser(experiment_path))
    record = read_record(experiment_path)
    if not tune.Tuner.can_restore(experiment_path):
        raise ExperimentNotFoundError(
            f"{experiment_path} holds no Tune experiment state yet (the search stopped before "
            "Tune saved any): there is nothing to load.")
    metric, mode = record.metric, record.mode  # lists, for several objectives
    if not isinstance(metric, str):
        metric, mode = metric[0], mode[0]  # the first one picks the best trial
    analysis = tune.ExperimentAnalysis(experiment_path, default_metric=metric, default_mode=mode)
    result_grid = tune.ResultGrid(analysis)
    reported = [trial for trial in result_grid
                if trial.metrics_dataframe is not None and metric in trial.metrics_dataframe]
    if not reported:
        raise InvalidArgumentError(
            f"No trial of the experiment at {experiment_path} has reported {metric!r} yet "
            f"({len(result_grid)} trials): there is no result to load.")
    loggers = False if "loggers" in record.must_resupply else loggers_in_effect(
        record.settings.get("loggers"), record.settings.get("trainer_kwargs", {}))
    mlflow_uri = record.settings.get("mlflow_uri")
    return TuneLightningResult(result_grid, record.build_model, record.metric,
                               record.mode, checkpoint_filename=record.checkpoint_filename,
                               searched=record.searched,
                               tracker_hints=tracker_hints(loggers, experiment_path, mlflow_uri),
                               # left running or pending in Tune's state: a budget or Ctrl-C
                               interrupted=[trial.trial_id for trial in analysis.trials
                                            if trial.status not in ("TERMINATED", "ERROR")])


def _result_or_error(result_grid: tune.ResultGrid, spec: TrialSpec, searched: Sequence[str],
                     experiment_path: str, budget: SearchTimeBudget,
                     constants: Dict[str, Any]) -> TuneLightningResult:
    errors = result_grid.errors
    if errors and len(errors) == len(result_grid):
        raise AllTrialsFailedError(
            f"All {len(result_grid)} trials failed; the first error:\n{errors[0]}") from errors[0]
    if errors:
        log.warning("%d of %d trials failed; the best result comes from the others. First "
                    "error: %s", len(errors), len(result_grid), errors[0])
    return TuneLightningResult(result_grid, spec.routing.build_model, spec.metric, spec.mode,
                               checkpoint_filename=spec.checkpoint_filename, searched=searched,
                               tracker_hints=tracker_hints(
                                   loggers_in_effect(spec.loggers, spec.trainer_kwargs),
                                   experiment_path, spec.mlflow_uri),
                               notes=budget_notes(budget, result_grid),
                               interrupted=budget.cut_short, constants=constants)
