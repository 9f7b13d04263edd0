"""Stopping rules and the search's time budget, driven here as Tune would drive them (no Ray)."""

import pickle
import signal
import time
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial
from ray.tune.stopper import MaximumIterationStopper, TrialPlateauStopper

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError
from lightning_tune.stopping import (MetricThresholds, SearchTimeBudget, budget_notes,
                                     check_time_budget, restored_budget, trial_stopper)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("bad", [0, -5, True, "600", float("inf"), float("nan")])
def test_a_time_budget_must_be_positive_seconds(bad):
    with pytest.raises(InvalidArgumentError, match="time_budget_s must be a number of seconds"):
        check_time_budget(bad)


def test_a_time_budget_in_seconds():
    assert check_time_budget(None) is None
    assert check_time_budget(90) == 90.0


def test_thresholds_are_reached_in_the_searched_direction():
    stopper = trial_stopper({"val_loss": 0.1, "val_acc": 0.9, "training_iteration": 5},
                            "val_loss", "min")
    report = {"val_loss": 0.5, "val_acc": 0.5, "training_iteration": 1}
    assert not stopper("t1", report)
    assert stopper("t1", {**report, "val_loss": 0.09})  # a loss reaches 0.1 from above
    assert stopper("t1", {**report, "val_acc": 0.9})  # others, as in Tune: at least
    assert stopper("t1", {**report, "training_iteration": 5})
    maximised = trial_stopper({"val_acc": 0.9}, "val_acc", "max")
    assert not maximised("t1", {"val_acc": 0.89}) and maximised("t1", {"val_acc": 0.95})
    assert not stopper.stop_all()


def test_a_threshold_no_trial_reports_ends_the_search_with_an_error():
    stopper = trial_stopper({"val_accuracy": 0.9}, "val_loss", "min")
    report = {"val_loss": 0.5, "val_acc": 0.5, "training_iteration": 1, "time_total_s": 3.0,
              "config": {}, "pid": 1, "trial_id": "t1"}
    assert stopper.error is None and not stopper.stop_all()
    assert stopper("t1", report)  # that trial stops, and with it the search (gracefully)
    assert stopper.stop_all()
    message = str(stopper.error)
    assert "['val_accuracy']" in message and "['val_acc', 'val_loss']" in message
    assert "pid" not in message  # Tune's own keys are not offered as metrics
    # later reports of a trial already checked are not: a metric logged every other epoch
    stopper = MetricThresholds({"val_acc": 0.9}, "val_loss", "min")
    assert not stopper("t2", {"val_acc": 0.5})
    assert not stopper("t2", {"val_loss": 0.4})
    assert stopper.error is None


def test_plateau_is_tunes_plateau_stopper_on_the_searched_metric():
    stopper = trial_stopper("plateau", "val_acc", "max")
    assert isinstance(stopper.rules[0], TrialPlateauStopper)
    flat = [{"val_acc": 0.9} for _ in range(4)]
    assert [stopper("t", report) for report in flat] == [False, False, False, True]
    combined = trial_stopper({"plateau": 2, "val_acc": 0.99}, "val_acc", "max")
    assert [type(rule) for rule in combined.rules] == [MetricThresholds, TrialPlateauStopper]
    assert not combined("u", {"val_acc": 0.5}) and combined("u", {"val_acc": 0.5})
    assert combined("v", {"val_acc": 0.995})  # the threshold alone
    user = MaximumIterationStopper(3)
    assert trial_stopper(user, "val_loss", "min").rules == [user]


@pytest.mark.parametrize("bad, error, words", [
    (5, InvalidTypeError, "dict of metric thresholds"),
    ("plateu", InvalidTypeError, "\"plateau\""),
    ({"val_loss": "low"}, InvalidArgumentError, "maps metric names to numbers"),
    ({"plateau": 1}, InvalidArgumentError, "integer >= 2"),
    ({}, InvalidArgumentError, "empty dict"),
])
def test_bad_stop_arguments_say_what_would_do(bad, error, words):
    with pytest.raises(error, match=words):
        trial_stopper(bad, "val_loss", "min")


def test_the_example_names_one_metric_when_there_are_several():
    with pytest.raises(InvalidArgumentError, match=r"e\.g\. \{'val_loss': 0\.05\}"):
        trial_stopper({"val_loss": "low"}, ["val_loss", "kparams"], ["min", "min"])


def test_bad_stop_and_budget_are_refused_before_ray_starts(ray_must_not_start, tmp_path):
    from lightning_tune import tune_lightning
    from lightning_tune.examples import DigitsClassifier

    with pytest.raises(InvalidArgumentError, match="time_budget_s"):
        tune_lightning(DigitsClassifier, {"lr": 1e-3}, time_budget_s=0,
                       storage_path=str(tmp_path))
    with pytest.raises(InvalidArgumentError, match="empty dict"):
        tune_lightning(DigitsClassifier, {"lr": 1e-3}, stop={}, storage_path=str(tmp_path))


@pytest.fixture(autouse=True)
def no_tune_signal_handler():
    """Tune leaves its SIGUSR1 handler installed after a search in this process; here the
    budget must find none, unless a test installs one."""
    before = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGUSR1, before)


def test_the_budget_ends_the_search_through_tunes_signal_handler():
    calls = []

    def signal_interrupt_tune_run(sig, frame):  # named as Tune's handler is
        calls.append(sig)

    signal.signal(signal.SIGUSR1, signal_interrupt_tune_run)
    budget = SearchTimeBudget(0.01)
    budget.on_step_end(0, [])
    budget.on_trial_result(0, [], SimpleNamespace(trial_id="a"), {})
    time.sleep(0.05)
    budget.on_step_end(1, [])  # nothing running: it ends at once
    assert calls == [signal.SIGUSR1]
    assert not budget.stop_all()  # Tune's loop ends as on Ctrl-C: no trial is stopped
    budget.on_step_end(2, [])
    assert calls == [signal.SIGUSR1]  # once


def running(*ids, saving=()):
    return [SimpleNamespace(trial_id=i, status=Trial.RUNNING, is_saving=i in saving)
            for i in ids]


def test_the_budget_waits_for_one_more_report_and_its_checkpoint():
    budget = SearchTimeBudget(0.05)
    trials = running("a", "b")
    budget.on_step_end(0, trials)  # the clock starts at the search's first step
    budget.on_trial_result(0, trials, trials[0], {})
    assert not budget.ran_out
    time.sleep(0.1)
    budget.on_step_end(1, trials)
    assert budget.ran_out and not budget.stop_all()  # both still owe a report
    budget.on_trial_result(2, trials, trials[0], {})
    budget.on_step_end(2, trials)
    assert not budget.stop_all()
    budget.on_trial_result(3, trials, trials[1], {})
    saving = running("a", "b", saving=("b",))
    budget.on_step_end(3, saving)
    assert not budget.stop_all()  # b's checkpoint is not registered yet
    budget.on_step_end(4, trials)
    # not Tune's main-thread loop here, so no signal to send: every trial is stopped instead
    assert budget.stop_all()
    assert budget.cut_short == ["a", "b"]
    assert "2 of 3 trials were cut short" in budget_notes(budget, [1, 2, 3])[0]
    assert budget_notes(SearchTimeBudget(None), [1, 2, 3]) == []


@pytest.fixture
def clock(monkeypatch):
    """The budget's clock, moved by the test: ``clock[0] += seconds``."""
    import lightning_tune.stopping as stopping

    now = [100.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: now[0])
    return now


def test_a_hanging_trial_does_not_hold_the_search_for_ever(clock):
    budget = SearchTimeBudget(10)
    trials = running("a", "b")
    budget.on_step_end(0, trials)
    budget.on_trial_result(0, trials, trials[0], {})
    clock[0] += 4
    budget.on_trial_result(0, trials, trials[0], {})  # reports come 4 s apart
    clock[0] += 7
    budget.on_step_end(1, trials)
    assert budget.ran_out and not budget.stop_all()
    clock[0] += 65  # within 1.5 x the longest gap (4 s) + 60 s of the deadline
    budget.on_step_end(2, trials)
    assert not budget.stop_all()
    clock[0] += 2  # past it: b hangs, and the search ends without it
    budget.on_step_end(3, trials)
    assert budget.stop_all()


def test_a_restored_budget_is_the_one_resume_gives():
    budget = SearchTimeBudget(600)
    copy = pickle.loads(pickle.dumps(budget))
    assert copy.seconds is None  # resume without a budget: the search runs to its end
    copy.on_step_end(0, running("a"))
    assert not copy.ran_out and not copy.stop_all()
    with restored_budget(0.01) as resumed:
        copy = pickle.loads(pickle.dumps(budget))
    assert copy.seconds == 0.01
    trials = running("a")
    copy.on_step_end(0, trials)
    time.sleep(0.05)
    copy.on_trial_result(1, trials, trials[0], {})  # its first report, after the deadline
    copy.on_step_end(1, trials)  # the one running trial has reported since: it ends at once
    assert resumed.ran_out and copy.stop_all()


def test_a_budget_spent_before_any_report_waits_for_the_first(clock):
    budget = SearchTimeBudget(5)
    trials = running("a", "b")
    budget.on_step_end(0, trials)
    clock[0] += 100  # the trials are still starting (a busy machine)
    budget.on_step_end(1, trials)
    assert not budget.ran_out  # nothing to give back yet
    budget.on_trial_result(2, trials, trials[1], {})
    budget.on_step_end(2, trials)
    assert budget.ran_out and not budget.stop_all()  # b has reported since; a still owes one
    budget.on_trial_result(3, trials, trials[0], {})
    budget.on_step_end(3, trials)
    assert budget.stop_all()
