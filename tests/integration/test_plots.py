"""Plots of a search and reading an experiment back, over one real digits search.

The search: lr on a grid over two decades (so its axis is log scale), the optimizer sampled
(a categorical axis), and one trial with a negative lr that fails before its first report.
"""

import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from ray import tune

from lightning_tune import TuneLightningResult, load_result, plots, tune_lightning
from lightning_tune.results import best_score_by_trial
from lightning_tune.examples.digits import DigitsClassifier, DigitsDataModule

pytestmark = pytest.mark.timeout(300)

GOOD_LRS = [3e-4, 3e-3, 3e-2]
FAILING_LR = -1.0  # the optimizer refuses it when training starts: an errored trial, no rows


@pytest.fixture(scope="module")
def result(ray_cluster, tmp_path_factory) -> TuneLightningResult:
    storage = tmp_path_factory.mktemp("plots")
    return tune_lightning(
        DigitsClassifier,
        {"lr": tune.grid_search(GOOD_LRS + [FAILING_LR]),
         "optimizer": tune.choice(["adam", "sgd"])},
        datamodule=DigitsDataModule, num_samples=1, max_epochs=2, scheduler="fifo",
        storage_path=str(storage), name="plots", seed=0, verbose=0)


def reporting_trials(result):
    """(lr, optimizer, rows) of each trial that reported, in Tune's trial order."""
    trials = [trial for trial in result.result_grid
              if trial.metrics_dataframe is not None and len(trial.metrics_dataframe)]
    trials.sort(key=lambda trial: trial.metrics["trial_id"])
    return [(t.config["lr"], t.config["optimizer"], t.metrics_dataframe) for t in trials]


def assert_png(path):
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def labels(texts):
    return [text.get_text() for text in texts]


def test_the_search_has_one_errored_trial_without_rows(result):
    statuses = dict(zip(result.dataframe["lr"], result.dataframe["status"]))
    assert statuses == {**{lr: "TERMINATED" for lr in GOOD_LRS}, FAILING_LR: "ERROR"}
    assert [lr for lr, _, _ in reporting_trials(result)] == GOOD_LRS


def test_optimisation_history(result, tmp_path):
    figure = result.plot_optimisation_history(path=str(tmp_path / "history.png"))
    assert figure._repr_png_().startswith(b"\x89PNG")  # a notebook shows it without pyplot
    assert_png(tmp_path / "history.png")
    axes = figure.axes[0]
    assert axes.get_ylabel() == "val_loss" and axes.get_xlabel() == "trial"
    best = [rows["val_loss"].min() for _, _, rows in reporting_trials(result)]
    points = axes.collections[0].get_offsets()
    assert list(points[:, 0]) == [0, 1, 2]  # the failed trial (the last) is left out
    np.testing.assert_allclose(points[:, 1], best)
    (running,) = [line for line in axes.lines if line.get_drawstyle().startswith("steps")]
    np.testing.assert_allclose(running.get_ydata(), np.minimum.accumulate(best))
    assert min(best) == pytest.approx(result.best_metrics["val_loss"])


def test_parallel_coordinates(result, tmp_path):
    figure = result.plot_parallel_coordinates(path=str(tmp_path / "parallel.png"))
    assert_png(tmp_path / "parallel.png")
    host = figure.axes[0]
    assert sorted(result.searched) == ["lr", "optimizer"]
    assert labels(host.get_xticklabels()) == result.searched + ["val_loss"]
    assert len(host.lines) == 3  # one per trial that reported
    by_name = {axes.get_label(): axes for axes in figure.axes}
    assert by_name["lr"].get_yscale() == "log"  # the values span two decades
    low, high = by_name["lr"].get_ylim()
    assert low < min(GOOD_LRS) < max(GOOD_LRS) < high
    optimizers = sorted({optimizer for _, optimizer, _ in reporting_trials(result)})
    assert labels(by_name["optimizer"].get_yticklabels()) == optimizers
    assert "val_loss" in by_name  # the metric has its own axis
    assert [axes.get_ylabel() for axes in figure.axes].count("val_loss") == 1  # the colour bar

    only_lr = result.plot_parallel_coordinates(params=["lr"])
    assert labels(only_lr.axes[0].get_xticklabels()) == ["lr", "val_loss"]
    with pytest.raises(ValueError, match=r"\['nope'\].*configs have \['lr', 'optimizer'\]"):
        result.plot_parallel_coordinates(params=["lr", "nope"])
    with pytest.raises(TypeError, match=r"params=\['lr'\]"):
        result.plot_parallel_coordinates(params="lr")


def test_learning_curves(result, tmp_path):
    figure = result.plot_learning_curves(path=str(tmp_path / "curves.png"))
    assert_png(tmp_path / "curves.png")
    axes = figure.axes[0]
    assert axes.get_ylabel() == "val_loss" and "training_iteration" in axes.get_xlabel()
    trials = reporting_trials(result)
    assert len(axes.lines) == len(trials) == 3
    for line, (_, _, rows) in zip(axes.lines, trials):
        assert list(line.get_xdata()) == [1, 2]  # one point per epoch
        np.testing.assert_allclose(line.get_ydata(), rows["val_loss"])
    names = labels(axes.get_legend().get_texts())
    assert len(names) == 3 and all(f"lr={lr:.3g}" in name for lr, name in zip(GOOD_LRS, names))

    accuracy = result.plot_learning_curves(metric="val_acc")
    assert accuracy.axes[0].get_ylabel() == "val_acc"
    with pytest.raises(ValueError, match=r"'val_accuracy'.*Reported metrics: \[.*'val_acc'"):
        result.plot_learning_curves(metric="val_accuracy")


def test_save_plots_writes_the_three_pngs(result, tmp_path):
    paths = result.save_plots(str(tmp_path / "figures"))
    assert paths == {name: str(tmp_path / "figures" / f"{name}.png") for name in
                     ("optimisation_history", "parallel_coordinates", "learning_curves")}
    for path in paths.values():
        assert_png(path)


def test_load_result_reads_the_experiment_back(result, tmp_path):
    loaded = load_result(result.experiment_path)
    assert loaded.metric == "val_loss" and loaded.mode == "min"
    assert loaded.searched == result.searched and sorted(loaded.searched) == ["lr", "optimizer"]
    assert loaded.best_config == result.best_config
    assert loaded.best_metrics["val_loss"] == pytest.approx(result.best_metrics["val_loss"])
    assert sorted(loaded.dataframe["trial_id"]) == sorted(result.dataframe["trial_id"])
    assert dict(zip(loaded.dataframe["lr"], loaded.dataframe["status"]))[FAILING_LR] == "ERROR"
    model, original = loaded.load_best_model(), result.load_best_model()
    assert isinstance(model, DigitsClassifier)
    for name, tensor in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    history = loaded.plot_optimisation_history().axes[0].collections[0].get_offsets()
    assert list(history[:, 0]) == [0, 1, 2]  # trial order comes from the trial ids

    with pytest.raises(FileNotFoundError, match="not an experiment started by tune_lightning"
                                                ".*storage_path/name"):
        load_result(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="It holds these experiments: plots"):
        load_result(os.path.dirname(result.experiment_path))  # storage_path, not storage_path/name
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_result(str(tmp_path / "no_such_experiment"))


class _CreatesAFileWhenUnpickled:
    """What a tampered checkpoint could hold: unpickling it calls open(path, "w")."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_best_model_loads_a_tampered_checkpoint_as_data_only(result, tmp_path):
    import pickle
    import shutil

    copy = str(tmp_path / "plots")
    shutil.copytree(result.experiment_path, copy)
    loaded = load_result(copy)
    assert loaded.best_checkpoint.path.startswith(copy)
    checkpoint_file = os.path.join(loaded.best_checkpoint.path, "checkpoint")
    state = torch.load(checkpoint_file, weights_only=True)
    marker = tmp_path / "code_ran"
    state["extra"] = _CreatesAFileWhenUnpickled(str(marker))
    torch.save(state, checkpoint_file)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        loaded.load_best_model()
    assert not marker.exists(), "loading the best model ran code its checkpoint carried"


def made_up_result(configs, curves, mode="min", searched=()):
    """A stand-in for a result, shaped like Tune's, for cases no small search produces."""
    grid = [SimpleNamespace(metrics={"trial_id": f"abcde_{index:05d}"}, config=config,
                            path=f"/nowhere/abcde_{index:05d}_trial",
                            metrics_dataframe=pd.DataFrame(
                                {"training_iteration": range(1, len(curve) + 1),
                                 "val_loss": curve}))
            for index, (config, curve) in enumerate(zip(configs, curves))]
    return SimpleNamespace(
        result_grid=grid, metric="val_loss", mode=mode, searched=list(searched),
        best_score_by_trial=lambda metric=None: best_score_by_trial(grid, metric or "val_loss",
                                                                    mode))


def test_many_trials_cap_the_legend_to_the_best():
    curves = [[2.0 - index * 0.1, 1.9 - index * 0.1] for index in range(15)]
    figure = plots.learning_curves(made_up_result([{}] * 15, curves))
    legend = figure.axes[0].get_legend()
    assert len(figure.axes[0].lines) == 15
    assert legend.get_title().get_text() == "best 10 of 15 trials"
    assert labels(legend.get_texts()) == [f"abcde_{index:05d}_trial" for index in range(5, 15)]


def test_unsampled_conditional_values_and_booleans_on_parallel_axes():
    configs = [{"optimizer": "sgd", "momentum": 0.9, "batch_norm": True},
               {"optimizer": "adam", "momentum": None, "batch_norm": False},
               {"optimizer": "sgd", "momentum": 0.5, "batch_norm": True}]
    result = made_up_result(configs, [[0.5], [0.7], [0.6]], mode="max",
                            searched=["optimizer", "momentum", "batch_norm"])
    figure = plots.parallel_coordinates(result)
    by_name = {axes.get_label(): axes for axes in figure.axes}
    assert labels(by_name["batch_norm"].get_yticklabels()) == ["False", "True"]
    assert by_name["momentum"].get_yscale() == "linear"
    heights = {line.get_label(): line.get_ydata() for line in figure.axes[0].lines}
    assert np.isnan(heights["abcde_00001_trial"][1])  # adam has no momentum: the line breaks
    assert heights["abcde_00000_trial"][1] == pytest.approx(1.0)  # the largest momentum: top
    assert heights["abcde_00001_trial"][3] == pytest.approx(1.0)  # max mode: 0.7 is best, top
