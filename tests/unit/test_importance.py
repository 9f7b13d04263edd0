"""Importance of hyperparameters from Optuna's evaluators, over trials built here (no Ray)."""

import math
import random
from types import SimpleNamespace

import pandas as pd
import pytest

from lightning_tune.errors import InvalidArgumentError
from lightning_tune.importance import (importance_lines, importance_study, param_importances,
                                       plot_importance)

pytestmark = pytest.mark.timeout(120)


_IDS = iter(range(10 ** 6))


def trial(config, losses, error=None):
    trial_id = f"abc_{next(_IDS):05d}"
    history = pd.DataFrame({"val_loss": losses, "val_acc": [1 - loss for loss in losses],
                            "trial_id": trial_id})
    return SimpleNamespace(config=config, metrics_dataframe=history, error=error,
                           metrics={"trial_id": trial_id})


def search(trials, searched=("lr", "batch_size", "dropout"), metric="val_loss", mode="min"):
    """What importance reads of a TuneLightningResult."""
    return SimpleNamespace(result_grid=trials, searched=list(searched), metric=metric, mode=mode)


def lr_decides(count=30, seed=0):
    """Trials whose loss depends on lr alone (best near 3e-3); the others are noise."""
    rng = random.Random(seed)
    trials = []
    for _ in range(count):
        config = {"lr": 10 ** rng.uniform(-4, -1), "batch_size": rng.choice([16, 32, 64]),
                  "dropout": rng.uniform(0.0, 0.5), "max_epochs": 3}
        best = (math.log10(config["lr"]) + 2.5) ** 2 + rng.uniform(0, 0.01)
        trials.append(trial(config, [best + 1.0, best + 0.5, best]))
    return trials


@pytest.mark.parametrize("evaluator", ["fanova", "ped-anova"])
def test_the_parameter_that_decides_the_metric_comes_first(evaluator):
    shares = param_importances(search(lr_decides()), evaluator=evaluator)
    assert list(shares)[0] == "lr"
    assert set(shares) == {"lr", "batch_size", "dropout"}  # constants are not searched
    assert sum(shares.values()) == pytest.approx(1.0)
    if evaluator == "fanova":
        assert shares["lr"] > 0.8


def test_the_study_holds_each_finished_trial_with_its_best_value():
    trials = lr_decides(count=6)
    trials.append(trial({"lr": 1e-3, "batch_size": 16, "dropout": 0.1}, [9.0], error="boom"))
    trials.append(SimpleNamespace(config={"lr": 1e-3}, metrics_dataframe=None, error=None,
                                  metrics={}))
    study = importance_study(search(trials))
    assert len(study.trials) == 6  # the failed trial and the one that never reported: out
    assert sorted(t.value for t in study.trials) == sorted(
        t.metrics_dataframe["val_loss"].min() for t in trials[:6])
    lr = study.trials[0].distributions["lr"]
    assert lr.log  # 1e-4 .. 1e-1 spans decades
    assert type(study.trials[0].distributions["batch_size"]).__name__ == "IntDistribution"


def test_another_metric_needs_its_mode_and_uses_its_direction():
    result = search(lr_decides(count=8))
    with pytest.raises(InvalidArgumentError, match="mode='min' or mode='max'"):
        param_importances(result, metric="val_acc")
    study = importance_study(result, metric="val_acc", mode="max")
    # each trial's best val_acc is its highest, 1 - its lowest loss
    assert sorted(t.value for t in study.trials) == pytest.approx(sorted(
        1 - t.metrics_dataframe["val_loss"].min() for t in result.result_grid))


def test_too_few_finished_trials_are_refused_clearly():
    with pytest.raises(InvalidArgumentError, match="at least 4 finished trials.*has 3"):
        param_importances(search(lr_decides(count=3)))


def test_a_search_where_nothing_varied_is_refused():
    same = [trial({"lr": 1e-3, "batch_size": 32, "dropout": 0.1}, [1.0 + i]) for i in range(5)]
    with pytest.raises(InvalidArgumentError, match="took more than one value"):
        param_importances(search(same))


def test_the_order_trials_are_listed_in_does_not_change_the_answer():
    trials = lr_decides(count=12)
    assert param_importances(search(trials)) == pytest.approx(
        param_importances(search(trials[::-1])))


def test_strings_and_conditional_parameters():
    rng = random.Random(1)
    trials = []
    for _ in range(20):
        optimizer = rng.choice(["adam", "sgd"])
        config = {"optimizer": optimizer, "lr": 10 ** rng.uniform(-4, -1),
                  "momentum": rng.uniform(0.5, 0.99) if optimizer == "sgd" else None}
        trials.append(trial(config, [(0.0 if optimizer == "adam" else 1.0) + rng.random() / 100]))
    shares = param_importances(search(trials, searched=["optimizer", "lr", "momentum"]))
    assert list(shares)[0] == "optimizer"
    assert "momentum" not in shares  # only SGD trials have it: Optuna leaves it out


def test_the_plot_and_the_report_lines(tmp_path):
    result = search(lr_decides())
    figure = plot_importance(result, path=str(tmp_path / "importance.png"))
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert set(labels) == {"lr", "batch_size", "dropout"}
    assert (tmp_path / "importance.png").stat().st_size > 5000
    lines = importance_lines(result)
    assert lines[0].startswith("hyperparameter importance for val_loss (fANOVA")
    assert lines[1].split()[0] == "lr"
    assert "at least 4" in importance_lines(search(lr_decides(count=2)))[0]


def test_an_unknown_evaluator_names_the_choices():
    with pytest.raises(InvalidArgumentError, match="fanova.*ped-anova"):
        param_importances(search(lr_decides(count=5)), evaluator="shap")
