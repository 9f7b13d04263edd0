"""Pareto fronts, crowding, and the multi-objective ASHA's promotions, worked out by hand."""

import math
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.multi_objective_asha import MultiObjectiveASHA
from lightning_tune.pareto import best_first, crowding_distances, front_ranks

pytestmark = pytest.mark.timeout(60)

MIN_MIN = ["min", "min"]


def test_fronts_follow_domination_in_each_objectives_direction():
    # (val_loss, latency_ms): a and c trade off; b is beaten by a; d by everything on the front
    points = [(0.5, 10), (0.6, 12), (0.4, 20), (0.7, 25)]
    assert front_ranks(points, MIN_MIN) == [0, 1, 0, 2]
    # maximising accuracy instead of minimising loss turns the first objective round
    assert front_ranks([(0.9, 10), (0.8, 12), (0.95, 20)], ["max", "min"]) == [0, 1, 0]
    assert front_ranks([(0.5, math.nan), (0.5, 10)], MIN_MIN) == [1, 0]  # NaN is worst
    assert front_ranks([(1, 1), (1, 1)], MIN_MIN) == [0, 0]  # equal points: neither dominates


def test_crowding_distance_prefers_the_sparse_parts_of_a_front():
    front = [(0.5, 10), (0.4, 20), (0.45, 15), (0.7, 5)]
    distances = crowding_distances(front, MIN_MIN)
    assert distances[1] == distances[3] == math.inf  # the extremes
    # loss span 0.3, latency span 15: (0.7-0.45)/0.3 + (15-5)/15, (0.5-0.4)/0.3 + (20-10)/15
    assert distances[0] == pytest.approx(0.25 / 0.3 + 10 / 15)
    assert distances[2] == pytest.approx(0.1 / 0.3 + 10 / 15)
    assert best_first(front, MIN_MIN) == [1, 3, 0, 2]


def report(scheduler, trial_id, epoch, loss, latency):
    trial = SimpleNamespace(trial_id=trial_id)
    return scheduler.on_trial_result(None, trial, {"training_iteration": epoch,
                                                   "val_loss": loss, "latency_ms": latency})


def test_promotions_at_each_rung():
    scheduler = MultiObjectiveASHA(["val_loss", "latency_ms"], MIN_MIN, max_t=4)
    assert sorted(scheduler.rungs) == [1, 2]  # 4 is max_t: trials end there by themselves
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    # rung 1, keeping the best half (rounded up) of the trials recorded so far
    assert report(scheduler, "A", 1, 0.5, 10) == go  # alone
    assert report(scheduler, "B", 1, 0.6, 12) == stop  # A dominates it; 1 of 2 goes on
    assert report(scheduler, "C", 1, 0.4, 20) == go  # front {A, C}; 2 of 3 go on
    # D is on the front too, but between A and C: its crowding distance, 2, loses to the
    # extremes' infinity, and 2 of 4 go on. ASHA on val_loss alone keeps D (0.45 is the
    # second best loss), though A has the better latency.
    assert report(scheduler, "D", 1, 0.45, 15) == stop
    # E has the best latency: an extreme of the front {A, C, D, E}, so among the 3 of 5
    assert report(scheduler, "E", 1, 0.7, 5) == go
    assert report(scheduler, "A", 2, 0.3, 10) == go  # rung 2: alone
    assert report(scheduler, "C", 2, 0.35, 25) == stop  # A dominates it at rung 2
    assert report(scheduler, "A", 3, 0.2, 9) == go  # between rungs
    assert report(scheduler, "A", 4, 0.2, 9) == go  # max_t
    assert report(scheduler, "E", 1, 0.7, 5) == go  # each rung judges a trial once
    assert sorted(scheduler.rungs[1]) == ["A", "B", "C", "D", "E"]


def test_the_same_reports_under_single_objective_asha_keep_d():
    asha = ASHAScheduler(metric="val_loss", mode="min", max_t=4, grace_period=1,
                         reduction_factor=2)
    decisions = {}
    for trial_id, loss in [("A", 0.5), ("B", 0.6), ("C", 0.4), ("D", 0.45)]:
        trial = SimpleNamespace(trial_id=trial_id, config={}, evaluated_params={})
        asha.on_trial_add(None, trial)
        decisions[trial_id] = asha.on_trial_result(
            None, trial, {"training_iteration": 1, "val_loss": loss, "latency_ms": 0})
    assert decisions["D"] == TrialScheduler.CONTINUE


@pytest.mark.parametrize("kwargs, words", [
    ({"metrics": ["val_loss"], "modes": ["min"]}, "two or more metrics"),
    ({"metrics": ["a", "b"], "modes": ["min"]}, "one mode each"),
    ({"metrics": ["a", "b"], "modes": ["min", "low"]}, "'min' or 'max'"),
    ({"metrics": ["a", "b"], "modes": MIN_MIN, "grace_period": 5}, "grace_period <= max_t"),
])
def test_bad_settings_are_named(kwargs, words):
    with pytest.raises(InvalidArgumentError, match=words):
        MultiObjectiveASHA(**{"max_t": 4, **kwargs})
