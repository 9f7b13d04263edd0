"""The Pareto front of a search's trials and its figures, from trials built here (no Ray)."""

from types import SimpleNamespace

import pandas as pd
import pytest

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.multi_objective import pareto_front, plot_pareto_front, trial_result

pytestmark = pytest.mark.timeout(60)


def trial(trial_id, hidden_size, rows, error=None):
    """``rows``: (val_loss, val_acc, kparams) per epoch."""
    history = pd.DataFrame(rows, columns=["val_loss", "val_acc", "kparams"])
    history["training_iteration"] = range(1, len(rows) + 1)
    history["trial_id"] = trial_id
    return SimpleNamespace(config={"hidden_size": hidden_size, "lr": 0.01}, error=error,
                           metrics_dataframe=history, metrics={"trial_id": trial_id},
                           checkpoint=SimpleNamespace(path=f"/ckpt/{trial_id}"))


TRIALS = [
    # its best loss was at epoch 1, but it ends worse: the final report counts
    trial("t0", 8, [(0.4, 0.80, 0.6), (0.9, 0.70, 0.6)]),
    trial("t1", 32, [(0.5, 0.85, 2.4)]),
    trial("t2", 128, [(0.3, 0.95, 9.6)]),
    trial("t3", 128, [(0.35, 0.90, 9.6)]),  # t2 beats it on both
    trial("t4", 8, [(0.2, 0.99, 0.6)], error="died"),  # failed: left out
]


def search(metrics, modes):
    return SimpleNamespace(result_grid=TRIALS, metrics=metrics, modes=modes, metric=metrics[0],
                           mode=modes[0], searched=["hidden_size", "lr"])


def test_the_front_holds_the_trials_no_other_beats_at_their_end():
    front = pareto_front(search(["val_loss", "kparams"], ["min", "min"]))
    assert list(front["trial_id"]) == ["t2", "t1", "t0"]  # by val_loss
    assert list(front.columns) == ["trial_id", "hidden_size", "lr", "val_loss", "kparams",
                                   "training_iteration", "checkpoint"]
    assert front.iloc[2].to_dict() == {"trial_id": "t0", "hidden_size": 8, "lr": 0.01,
                                       "val_loss": 0.9, "kparams": 0.6,
                                       "training_iteration": 2, "checkpoint": "/ckpt/t0"}
    # accuracy maximised, size minimised: t1 (0.85, 2.4) is beaten by nobody either
    maximised = pareto_front(search(["val_acc", "kparams"], ["max", "min"]))
    assert list(maximised["trial_id"]) == ["t2", "t1", "t0"]


def test_one_metric_has_no_front():
    with pytest.raises(InvalidArgumentError, match="best trial, not a Pareto front"):
        pareto_front(search(["val_loss"], ["min"]))
    with pytest.raises(InvalidArgumentError, match="no Pareto front to draw"):
        plot_pareto_front(search(["val_loss"], ["min"]))


def test_the_figures_for_two_and_three_objectives(tmp_path):
    two = plot_pareto_front(search(["val_loss", "kparams"], ["min", "min"]),
                            path=str(tmp_path / "two.png"))
    assert (two.axes[0].get_xlabel(), two.axes[0].get_ylabel()) == ("val_loss", "kparams")
    three = plot_pareto_front(search(["val_loss", "val_acc", "kparams"], ["min", "max", "min"]),
                              path=str(tmp_path / "three.png"))
    axes = three.axes[0]
    labels = [label.get_text() for label in axes.get_xticklabels()]
    assert [label.split("\n")[0] for label in labels] == ["val_loss", "val_acc", "kparams"]
    assert "max: 0.95 .. 0.7" in labels[1]  # best .. worst of the finished trials
    named = sorted(line.get_label() for line in axes.get_lines()
                   if not line.get_label().startswith("_"))
    assert named == ["t0", "t1", "t2"]  # t3 is dominated: grey, unnamed
    assert (tmp_path / "two.png").exists() and (tmp_path / "three.png").exists()


def test_a_trial_by_its_id():
    result = search(["val_loss", "kparams"], ["min", "min"])
    assert trial_result(result, "t3") is TRIALS[3]
    with pytest.raises(InvalidArgumentError, match=r"No trial 'nope'.*'t0', 't1'"):
        trial_result(result, "nope")
