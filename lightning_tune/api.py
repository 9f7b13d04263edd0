"""``tune_lightning``: the one call that runs a search over a LightningModule."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional, Sequence, Union

import ray
from ray import tune
from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import SearchAlgorithm, Searcher

from lightning_tune.errors import AllTrialsFailedError
from lightning_tune.resources import check_cluster_can_hold
from lightning_tune.results import TuneLightningResult
from lightning_tune.searchers import make_scheduler, make_search_alg
from lightning_tune.trainable import lightning_trainable

log = logging.getLogger(__name__)


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def ensure_ray() -> None:
    """Join the running Ray (or ``RAY_ADDRESS``); otherwise start a local one."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)


def tune_lightning(
    model_cls: type,
    space: Dict[str, Any],
    *,
    datamodule: Any = None,
    metric: str = "val_loss",
    mode: str = "min",
    num_samples: int = 10,
    max_epochs: int = 10,
    strategy: Optional[str] = None,
    num_workers: int = 1,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    search_alg: Union[str, Searcher, SearchAlgorithm] = "random",
    scheduler: Union[str, TrialScheduler] = "asha",
    max_concurrent_trials: Optional[int] = None,
    trainer_kwargs: Optional[Dict[str, Any]] = None,
    callbacks: Optional[Sequence[Any]] = None,
    storage_path: Optional[str] = None,
    name: Optional[str] = None,
    max_failures: int = 0,
    seed: Optional[int] = None,
    verbose: int = 1,
) -> TuneLightningResult:
    """Search ``space`` for the best hyperparameters of ``model_cls`` with Ray Tune.

    Every argument is checked before Ray starts. ``space`` maps names to Tune domains
    (``tune.loguniform(...)``, ``tune.choice([...])``, ``tune.grid_search([...])``) or constants;
    each name must be a parameter of ``model_cls`` or of the datamodule class. With
    ``strategy="ddp"`` every trial trains on ``num_workers`` Ray actors of its own.
    """
    trainable = lightning_trainable(
        model_cls, datamodule=datamodule, metric=metric, mode=mode, max_epochs=max_epochs,
        strategy=strategy, num_workers=num_workers, cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker, trainer_kwargs=trainer_kwargs, callbacks=callbacks)
    if not isinstance(space, dict):
        raise TypeError(f"space must be a dict of parameter names to Tune domains or values, "
                        f"got {type(space).__name__}.")
    trainable.routing.check_keys(space)
    _check_positive_int("num_samples", num_samples)
    _check_positive_int("max_failures", max_failures, minimum=-1)
    if max_concurrent_trials is not None:
        _check_positive_int("max_concurrent_trials", max_concurrent_trials)
    search = make_search_alg(search_alg, space, seed)
    trial_scheduler = make_scheduler(scheduler, max_epochs)

    ensure_ray()
    check_cluster_can_hold(trainable._resources.bundles,
                           placement_strategy=trainable._resources.strategy,
                           what=f"Each trial (strategy={strategy!r}, num_workers={num_workers})")
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=TuneConfig(metric=metric, mode=mode, search_alg=search,
                               scheduler=trial_scheduler, num_samples=num_samples,
                               max_concurrent_trials=max_concurrent_trials),
        run_config=RunConfig(
            name=name or f"{model_cls.__name__}_{time.strftime('%Y-%m-%d_%H-%M-%S')}",
            storage_path=storage_path, verbose=verbose,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=metric,
                                               checkpoint_score_order=mode)),
    )
    result_grid = tuner.fit()
    return _result_or_error(result_grid, trainable.routing, metric, mode)


def _result_or_error(result_grid: tune.ResultGrid, routing: Any, metric: str,
                     mode: str) -> TuneLightningResult:
    errors = result_grid.errors
    if errors and len(errors) == len(result_grid):
        raise AllTrialsFailedError(
            f"All {len(result_grid)} trials failed; the first error:\n{errors[0]}") from errors[0]
    if errors:
        log.warning("%d of %d trials failed; the best result comes from the others. First "
                    "error: %s", len(errors), len(result_grid), errors[0])
    return TuneLightningResult(result_grid, routing, metric, mode)
