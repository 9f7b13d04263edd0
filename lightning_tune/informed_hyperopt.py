"""HyperOpt's TPE told earlier trials and their results before it proposes anything.

Ray's ``HyperOptSearch`` takes ``points_to_evaluate`` only as configs to run again. HyperOpt
itself models whatever finished trials its ``Trials`` history holds, so this searcher writes
each earlier trial into that history as done, with its loss, once the space is known. TPE then
counts them towards its random start-up trials, and once they are as many, models them from
its first proposal. Saved and restored with the searcher's state like any trial HyperOpt ran itself.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from hyperopt import JOB_STATE_DONE, STATUS_OK
from hyperopt.fmin import generate_trial
from hyperopt.utils import coarse_utcnow
from ray.tune.search.hyperopt import HyperOptSearch
from ray.tune.search.sample import Categorical, Domain

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.spaces import holds_domain


class InformedHyperOptSearch(HyperOptSearch):
    """A ``HyperOptSearch`` whose history starts with ``evaluated_points`` and their
    ``evaluated_rewards`` (values of the metric, in the search's own direction)."""

    def __init__(self, evaluated_points: Sequence[Dict[str, Any]],
                 evaluated_rewards: Sequence[float], **kwargs: Any) -> None:
        if len(evaluated_points) != len(evaluated_rewards):
            raise InvalidArgumentError(f"{len(evaluated_points)} evaluated points but "
                                       f"{len(evaluated_rewards)} rewards: give one reward a "
                                       "point.")
        self.evaluated = list(zip(evaluated_points, evaluated_rewards))
        super().__init__(**kwargs)
        if self.domain is not None and self.evaluated:  # set up from a space given here
            self._tell(kwargs["space"])

    def set_search_properties(self, metric: Optional[str], mode: Optional[str],
                              config: Dict, **spec: Any) -> bool:
        if not super().set_search_properties(metric, mode, config, **spec):
            return False  # already set up (or restored): its history holds the points
        self._tell(config)
        return True

    def _tell(self, config: Dict[str, Any]) -> None:
        domains = {name: domain for name, domain in config.items() if isinstance(domain, Domain)}
        nested = [name for name, value in config.items() if holds_domain(value)
                  and not isinstance(value, Domain)]
        missing = sorted({name for point, _ in self.evaluated for name in domains
                          if name not in point})
        if nested or not domains or missing:
            raise InvalidArgumentError(
                "InformedHyperOptSearch tells HyperOpt earlier trials of a flat space of Tune "
                f"domains, each trial giving every parameter; here {_problem(nested, missing)}.")
        history = self.get_state()["hyperopt_trials"]
        tids: List[int] = history.new_trial_ids(len(self.evaluated))
        docs = []
        for tid, (point, reward) in zip(tids, self.evaluated):
            doc = generate_trial(tid, {name: _hyperopt_value(domain, point[name])
                                       for name, domain in domains.items()})
            doc.update(state=JOB_STATE_DONE, book_time=coarse_utcnow(),
                       refresh_time=coarse_utcnow(),
                       result={"loss": self.metric_op * float(reward), "status": STATUS_OK})
            docs.append(doc)
        history.insert_trial_docs(docs)
        history.refresh()


def _problem(nested: List[str], missing: List[str]) -> str:
    if nested:
        return f"{nested} hold parameters inside them"
    if missing:
        return f"earlier trials lack {missing}"
    return "the space holds no Tune domain (a HyperOpt space cannot be told trials)"


def _hyperopt_value(domain: Domain, value: Any) -> Any:
    """``value`` as HyperOpt records it: a choice by its index, a number as itself."""
    if isinstance(domain, Categorical):
        return domain.categories.index(value)
    return value
