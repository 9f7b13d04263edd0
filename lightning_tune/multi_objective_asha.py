"""ASHA over several objectives: early stopping for a search that trades objectives off.

Tune's ASHA ranks the trials at a rung by one metric. Here the trials recorded at a rung are
ranked by Pareto front, then by crowding distance (:mod:`lightning_tune.pareto`), and a trial
reaching the rung goes on only if it is among the best ``1 / reduction_factor`` of them, so a
multi-objective search stops its dominated trials early the way ASHA does for one metric. Like
Tune's ASHA, each trial is judged once per rung, when it reaches it, against the trials that
reached it before; a trial that reaches ``max_t`` ends by itself.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Set

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.pareto import best_first


class MultiObjectiveASHA(FIFOScheduler):
    """Asynchronous successive halving on ``metrics`` (each with its mode in ``modes``).

    Rungs are at ``grace_period * reduction_factor ** k`` of ``time_attr`` (epochs), below
    ``max_t``. Usable in a user's own ``tune.Tuner`` with a multi-objective searcher (e.g.
    ``OptunaSearch(metric=[...], mode=[...])``).
    """

    def __init__(self, metrics: Sequence[str], modes: Sequence[str], max_t: int,
                 grace_period: int = 1, reduction_factor: float = 2,
                 time_attr: str = "training_iteration") -> None:
        super().__init__()
        metrics, modes = list(metrics), list(modes)
        if len(metrics) < 2 or len(metrics) != len(modes):
            raise InvalidArgumentError(
                f"MultiObjectiveASHA needs two or more metrics and one mode each, got metrics="
                f"{metrics} and modes={modes}.")
        if any(mode not in ("min", "max") for mode in modes):
            raise InvalidArgumentError(f"each mode must be 'min' or 'max', got {modes}.")
        if not (1 <= grace_period <= max_t) or reduction_factor <= 1:
            raise InvalidArgumentError(
                f"MultiObjectiveASHA needs 1 <= grace_period <= max_t and reduction_factor > 1, "
                f"got grace_period={grace_period}, max_t={max_t}, "
                f"reduction_factor={reduction_factor}.")
        self.metrics, self.modes = metrics, modes
        self.max_t, self.reduction_factor, self.time_attr = max_t, reduction_factor, time_attr
        milestones: List[float] = []
        milestone = float(grace_period)
        while milestone < max_t:
            milestones.append(milestone)
            milestone *= reduction_factor
        #: each rung's milestone and the objectives of the trials recorded there, by trial id
        self.rungs: Dict[float, Dict[str, tuple]] = {m: {} for m in milestones}
        self._judged: Dict[str, Set[float]] = {}

    def set_search_properties(self, metric: Any, mode: Any, **spec: Any) -> bool:
        return True  # it ranks by its own metrics, whatever single one the Tuner names

    def on_trial_result(self, tune_controller: Any, trial: Any, result: Dict[str, Any]) -> str:
        reached = result.get(self.time_attr)
        if reached is None or reached >= self.max_t:
            return TrialScheduler.CONTINUE
        judged = self._judged.setdefault(trial.trial_id, set())
        for milestone in sorted(self.rungs, reverse=True):  # the highest rung reached
            if reached < milestone or milestone in judged:
                continue
            judged.add(milestone)
            recorded = self.rungs[milestone]
            recorded[trial.trial_id] = tuple(
                _number(result.get(metric)) for metric in self.metrics)
            return TrialScheduler.CONTINUE if self.goes_on(recorded, trial.trial_id) \
                else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def goes_on(self, recorded: Dict[str, tuple], trial_id: str) -> bool:
        """Whether ``trial_id`` is among the best ``1 / reduction_factor`` of ``recorded``."""
        ids = list(recorded)
        keep = math.ceil(len(ids) / self.reduction_factor)
        order = best_first([recorded[i] for i in ids], self.modes)
        return ids.index(trial_id) in order[:keep]

    def debug_string(self) -> str:
        counts = ", ".join(f"{m:g}: {len(r)}" for m, r in sorted(self.rungs.items()))
        return f"MultiObjectiveASHA on {self.metrics}: trials per rung {{{counts}}}"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
