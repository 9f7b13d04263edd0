"""When a search or its trials stop early: a time budget for the whole search, and stopping
rules for each trial (metric thresholds, a plateau of the searched metric, or a Tune Stopper).

The time budget ends a search the way Ctrl-C does, so that ``resume`` can continue it. Tune's
own ``time_budget_s`` cannot: it marks every trial finished, the running ones included, and
tells the searcher it is done, so a resumed search has nothing left to run. Here, once the
budget is spent, each trial that was running reports once more (its newest metrics and
checkpoint are kept), then the search ends: running trials stay "running" in Tune's state and
continue from that checkpoint on ``resume``, and trials not yet started are started then.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import signal
import threading
import time
from numbers import Real
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Union

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper, TrialPlateauStopper

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError
from lightning_tune.results import NOT_METRICS

log = logging.getLogger(__name__)

StopArgument = Union[None, str, Mapping[str, Any], Stopper]
#: reports a trial's searched metric must stay flat over before ``"plateau"`` stops it
PLATEAU_PATIENCE = 4
#: how much the searched metric may vary over those reports (standard deviation)
PLATEAU_STD = 0.01
#: once the time budget is spent, how long past 1.5 x the longest gap between two reports a
#: trial's next report is waited for (a trial restarted from a checkpoint starts up first)
GRACE_S = 60.0

_RESTORED_BUDGET: contextvars.ContextVar[Optional["SearchTimeBudget"]] = \
    contextvars.ContextVar("restored_budget", default=None)


def check_time_budget(seconds: Any) -> Optional[float]:
    """``time_budget_s`` as a number of seconds > 0, or None (no budget)."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, Real) or not seconds > 0 \
            or math.isinf(seconds):
        raise InvalidArgumentError(
            f"time_budget_s must be a number of seconds > 0 (e.g. 600 for ten minutes), got "
            f"{seconds!r}. Leave it out to run every trial to its end.")
    return float(seconds)


def trial_stopper(stop: StopArgument, metric: Union[str, List[str]],
                  mode: Union[str, List[str]]) -> Optional["TrialStopRules"]:
    """The Tune Stopper for ``stop``, checked before Ray starts.

    ``stop`` is a Tune ``Stopper``; ``"plateau"`` (stop a trial once its ``metric`` has stayed
    flat over ``PLATEAU_PATIENCE`` reports); or a dict of thresholds, e.g.
    ``{"val_loss": 0.05, "training_iteration": 20}``: a trial stops once any is reached. The
    searched metrics are reached in their direction (``val_loss <= 0.05`` when minimising);
    any other key, as in Tune, when the value is at least the threshold. The dict may also hold
    ``"plateau": PATIENCE``.
    """
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return TrialStopRules([stop])
    if stop == "plateau":
        return TrialStopRules([plateau_stopper(metric, mode, PLATEAU_PATIENCE)])
    example = metric if isinstance(metric, str) else metric[0]  # one name, for several too
    if not isinstance(stop, Mapping):
        raise InvalidTypeError(
            f"stop must be a dict of metric thresholds (e.g. {{{example!r}: 0.05}}), "
            f"\"plateau\", or a ray.tune.Stopper; got {stop!r}.")
    thresholds = dict(stop)
    patience = thresholds.pop("plateau", None)
    for key, value in thresholds.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidArgumentError(
                f"stop maps metric names to numbers (e.g. {{{example!r}: 0.05}}); "
                f"{key!r}: {value!r} is not one.")
    stoppers: List[Stopper] = []
    if thresholds:
        stoppers.append(MetricThresholds(thresholds, metric, mode))
    if patience is not None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 2:
            raise InvalidArgumentError(
                f"stop's \"plateau\" is the number of reports the metric must stay flat over, "
                f"an integer >= 2; got {patience!r}.")
        stoppers.append(plateau_stopper(metric, mode, patience))
    if not stoppers:
        raise InvalidArgumentError("stop is an empty dict: name a metric threshold, or leave "
                                   "stop out.")
    return TrialStopRules(stoppers)


def plateau_stopper(metric: Union[str, List[str]], mode: Union[str, List[str]],
                    patience: int) -> Stopper:
    """Tune's plateau stopper on ``metric`` (the first of several): flat over ``patience``
    reports, after as many."""
    metrics, modes = _as_lists(metric, mode)
    return TrialPlateauStopper(metrics[0], std=PLATEAU_STD, num_results=patience,
                               grace_period=patience, mode=modes[0])


def _as_lists(metric: Union[str, List[str]], mode: Union[str, List[str]]) -> tuple:
    return ([metric], [mode]) if isinstance(metric, str) else (list(metric), list(mode))


class TrialStopRules(Stopper):
    """The rules ``stop`` names: a trial stops when one says so. A threshold on a metric the
    trials do not report ends the search (gracefully, so that the reports are kept), and
    ``error`` is then raised by the search."""

    def __init__(self, rules: List[Stopper]) -> None:
        self.rules = rules

    @property
    def error(self) -> Optional[InvalidArgumentError]:
        return next((rule.error for rule in self.rules
                     if isinstance(rule, MetricThresholds) and rule.error), None)

    def __call__(self, trial_id: str, result: Dict[str, Any]) -> bool:
        return any([rule(trial_id, result) for rule in self.rules])  # each sees every report

    def stop_all(self) -> bool:
        return self.error is not None or any(rule.stop_all() for rule in self.rules)


class MetricThresholds(Stopper):
    """Stops a trial once one of its reported metrics reaches its threshold.

    A name a trial does not report at its first report is an ``error`` then (a typo would
    otherwise never stop anything), and the search is stopped.
    """

    def __init__(self, thresholds: Mapping[str, float], metric: Union[str, List[str]],
                 mode: Union[str, List[str]]) -> None:
        self.thresholds = dict(thresholds)
        #: each searched metric's direction ("min" or "max")
        self.directions = dict(zip(*_as_lists(metric, mode)))
        self.error: Optional[InvalidArgumentError] = None
        self._checked: Set[str] = set()

    def reached(self, name: str, value: Any) -> bool:
        threshold = self.thresholds[name]
        if self.directions.get(name) == "min":
            return value <= threshold
        return value >= threshold

    def __call__(self, trial_id: str, result: Dict[str, Any]) -> bool:
        if trial_id not in self._checked:
            self._checked.add(trial_id)
            missing = [name for name in self.thresholds if name not in result]
            if missing:
                logged = sorted(name for name in result if name not in NOT_METRICS)
                self.error = self.error or InvalidArgumentError(
                    f"stop names {missing}, which trial {trial_id} did not report: it logged "
                    f"{logged} (with self.log in the model), and Tune counts "
                    "training_iteration and time_total_s. Name one of those. The search "
                    "stopped there; what its trials reported is kept in the experiment folder.")
                log.error("%s", self.error)
                return True
        return any(self.reached(name, result[name]) for name in self.thresholds
                   if isinstance(result.get(name), Real))

    def stop_all(self) -> bool:
        return self.error is not None


class SearchTimeBudget(Callback, Stopper):
    """Ends the search ``seconds`` after its first step, resumably (see the module's notes).

    Restored by ``Tuner.restore`` (``resume``), it has the budget :func:`restored_budget` sets,
    counted from the resumed search's start; without one it never ends a search.
    """

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self._reset()

    def _reset(self) -> None:
        self._ran_out = False
        self._cut_short: List[str] = []
        self._restored: List["SearchTimeBudget"] = []  # what Tune unpickled from this one
        self._deadline: Optional[float] = None
        self._waiting: Optional[Set[str]] = None  # running at the deadline, not reported since
        self._grace_end = math.inf
        self._longest_gap = 0.0
        self._last_report: Dict[str, float] = {}
        self._reported_late: Set[str] = set()  # reported since the deadline
        self._ended = False
        self._stop_all = False

    def __getstate__(self) -> Dict[str, Any]:
        return {"seconds": self.seconds}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        template = _RESTORED_BUDGET.get()
        self.seconds = None if template is None else template.seconds
        self._reset()
        if template is not None:
            template._restored.append(self)

    @property
    def ran_out(self) -> bool:
        """The budget was spent and ended the search (here or in a copy Tune restored)."""
        return self._ran_out or any(copy.ran_out for copy in self._restored)

    @property
    def cut_short(self) -> List[str]:
        """The trials the budget ended before their end (``resume`` continues them)."""
        return self._cut_short + [trial for copy in self._restored for trial in copy.cut_short]

    def on_trial_result(self, iteration: int, trials: List[Trial], trial: Trial,
                        result: Dict[str, Any], **info: Any) -> None:
        now = time.monotonic()
        last = self._last_report.get(trial.trial_id)
        if last is not None:
            self._longest_gap = max(self._longest_gap, now - last)
        self._last_report[trial.trial_id] = now
        if self._deadline is not None and now >= self._deadline:
            self._reported_late.add(trial.trial_id)
        if self._waiting is not None:
            self._waiting.discard(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: List[Trial], trial: Trial,
                          **info: Any) -> None:
        if self._waiting is not None:
            self._waiting.discard(trial.trial_id)

    on_trial_error = on_trial_complete

    def on_step_end(self, iteration: int, trials: List[Trial], **info: Any) -> None:
        if self.seconds is None or self._ended:
            return
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.seconds
        # a search with nothing reported yet has no result to give: it waits for one
        if now < self._deadline or not self._last_report:
            return
        if self._waiting is None:
            self._ran_out = True
            self._waiting = {trial.trial_id for trial in trials if trial.status == Trial.RUNNING
                             and trial.trial_id not in self._reported_late}
            # a trial that hangs must not hold the search past its budget for ever
            self._grace_end = now + 1.5 * self._longest_gap + GRACE_S
            log.warning("The search's time budget of %g s is spent: each running trial reports "
                        "once more, then the search ends (resume continues it).", self.seconds)
        # a report's checkpoint is registered by a save task one step later: wait for it too
        if not self._waiting and not any(trial.is_saving for trial in trials) \
                or now >= self._grace_end:
            self._cut_short = [trial.trial_id for trial in trials
                               if trial.status in (Trial.RUNNING, Trial.PENDING, Trial.PAUSED)]
            self._end_search()

    def _end_search(self) -> None:
        """Ctrl-C's path: Tune's handler for SIGUSR1 ends the loop and saves its state."""
        handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if threading.current_thread() is threading.main_thread() and \
                "signal_interrupt_tune_run" in getattr(handler, "__qualname__", ""):
            signal.raise_signal(signal.SIGUSR1)
        else:  # not the main thread: Tune catches no signal; it stops every trial instead
            log.warning("The search is not run from the main thread, so the time budget stops "
                        "every trial as finished: resume will not continue them.")
            self._stop_all = True
        self._ended = True

    def __call__(self, trial_id: str, result: Dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._stop_all


@contextlib.contextmanager
def restored_budget(seconds: Optional[float]) -> Iterator[SearchTimeBudget]:
    """The time budget a :class:`SearchTimeBudget` restored here takes (``resume``'s); the
    budget yielded tells whether a restored one ran out."""
    template = SearchTimeBudget(seconds)
    token = _RESTORED_BUDGET.set(template)
    try:
        yield template
    finally:
        _RESTORED_BUDGET.reset(token)


def budget_notes(budget: SearchTimeBudget, result_grid: Any) -> List[str]:
    """The summary's lines on a search its time budget ended (none otherwise)."""
    if not budget.ran_out:
        return []
    return [f"the time budget of {budget.seconds:g} s ran out: {len(budget.cut_short)} of "
            f"{len(result_grid)} trials were cut short after their last report; resume "
            "continues them from their last checkpoint and runs the trials not started yet"]
