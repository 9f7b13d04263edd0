"""Search algorithms and trial schedulers, chosen by name or passed in as Tune objects."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.sample import Domain

SEARCH_ALGS = ("random", "grid")
SCHEDULERS = ("fifo", "asha")


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def make_search_alg(search_alg: Union[str, Searcher, SearchAlgorithm], space: Dict[str, Any],
                    seed: Optional[int] = None) -> SearchAlgorithm:
    """A Tune search algorithm for ``search_alg``; ``seed`` makes sampled configs repeatable."""
    if isinstance(search_alg, (Searcher, SearchAlgorithm)):
        return search_alg
    if search_alg not in SEARCH_ALGS:
        raise ValueError(f"search_alg must be one of {SEARCH_ALGS} or a ray.tune.search.Searcher "
                         f"instance, got {search_alg!r}.")
    if search_alg == "grid":
        sampled = [name for name, value in space.items() if isinstance(value, Domain)]
        if sampled:
            raise ValueError(
                f"search_alg='grid' tries every combination of tune.grid_search([...]) values, "
                f"but {sampled} are sampled distributions. Make them tune.grid_search lists, "
                "or use search_alg='random'.")
    return BasicVariantGenerator(random_state=seed)


def make_scheduler(scheduler: Union[str, TrialScheduler], max_epochs: int) -> TrialScheduler:
    """A Tune trial scheduler; ASHA stops trials on ``training_iteration`` (one per epoch)."""
    if isinstance(scheduler, TrialScheduler):
        return scheduler
    if scheduler == "fifo":
        return FIFOScheduler()
    if scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", max_t=max_epochs, grace_period=1,
                             reduction_factor=2)
    raise ValueError(f"scheduler must be one of {SCHEDULERS} or a ray.tune.schedulers."
                     f"TrialScheduler instance, got {scheduler!r}.")
