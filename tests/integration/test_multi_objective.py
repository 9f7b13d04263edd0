"""A search of two objectives, loss against size, on digits: its Pareto front, a model from
it, its figure, and its record read back (local Ray)."""

import pickle
from pathlib import Path

import pytest
import torch
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from lightning_tune import load_result, resume, tune_lightning
from lightning_tune.examples import DigitsDataModule
from lightning_tune.pareto import dominates
from tests.models import SizedClassifier

pytestmark = pytest.mark.timeout(400)

OBJECTIVES = ["val_loss", "kparams"]


@pytest.fixture(scope="module")
def ray_cpus():
    return 2


@pytest.fixture(scope="module")
def searched(ray_cluster, tmp_path_factory):
    space = {"lr": tune.loguniform(3e-3, 1e-1), "hidden_size": tune.choice([8, 32, 128])}
    return tune_lightning(SizedClassifier, space, datamodule=DigitsDataModule,
                          metric=OBJECTIVES, mode=["min", "min"], search_alg="optuna",
                          num_samples=5, max_epochs=2, seed=0, max_concurrent_trials=2,
                          storage_path=str(tmp_path_factory.mktemp("pareto")),
                          name="pareto", verbose=0)


def finals(result):
    """Each trial's final (val_loss, kparams), by trial id."""
    return {trial.metrics_dataframe["trial_id"].iloc[-1]:
            tuple(trial.metrics_dataframe[name].iloc[-1] for name in OBJECTIVES)
            for trial in result.result_grid}


def test_the_front_is_exactly_the_trials_no_other_beats(searched):
    front = searched.pareto_front
    points = finals(searched)
    assert len(points) == 5 and len(front)
    on_front = set(front["trial_id"])
    for trial_id, point in points.items():
        beaten = any(dominates(other, point) for other in points.values())
        assert beaten == (trial_id not in on_front)
    for _, row in front.iterrows():
        assert (row["val_loss"], row["kparams"]) == points[row["trial_id"]]
        assert row["checkpoint"] and row["hidden_size"] in (8, 32, 128)
    assert list(front["val_loss"]) == sorted(front["val_loss"])
    # Optuna was told both objectives (its study is multi-objective)
    searcher = OptunaSearch()
    searcher.restore_from_dir(searched.experiment_path)
    assert (searcher.metric, searcher.mode) == (OBJECTIVES, ["min", "min"])
    assert "Pareto front over ['val_loss', 'kparams']" in searched.summary()


def test_a_model_from_any_front_member(searched):
    for _, row in searched.pareto_front.iterrows():
        model = searched.load_best_model(trial=row["trial_id"])
        assert model.hparams.hidden_size == row["hidden_size"]
        assert sum(p.numel() for p in model.parameters()) / 1000.0 == pytest.approx(
            row["kparams"])
        with torch.no_grad():  # its trained weights: better than chance on held-out digits
            images, labels = next(iter(_held_out()))
            assert (model(images).argmax(1) == labels).float().mean() > 0.5


def _held_out():
    data = DigitsDataModule()
    data.setup("test")
    return data.test_dataloader()


def test_the_figure_and_the_record_read_back(searched, tmp_path):
    figure = searched.plot_pareto_front(path=str(tmp_path / "front.png"))
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("val_loss", "kparams")
    assert (tmp_path / "front.png").stat().st_size > 5000
    again = load_result(searched.experiment_path)
    assert again.metrics == OBJECTIVES and again.modes == ["min", "min"]
    assert list(again.pareto_front["trial_id"]) == list(searched.pareto_front["trial_id"])
    resumed = resume(searched.experiment_path)  # finished: nothing runs again
    assert list(resumed.pareto_front["trial_id"]) == list(searched.pareto_front["trial_id"])
    # importance per objective (5 trials are too few to trust which comes first)
    shares = again.importance(metric="kparams", mode="min")
    assert set(shares) == {"lr", "hidden_size"} and sum(shares.values()) == pytest.approx(1)


def test_a_second_search_of_both_objectives_builds_on_the_first(searched, tmp_path):
    space = {"lr": tune.loguniform(3e-3, 1e-1), "hidden_size": tune.choice([8, 32, 128])}
    second = tune_lightning(SizedClassifier, space, datamodule=DigitsDataModule,
                            metric=OBJECTIVES, mode=["min", "min"], search_alg="optuna",
                            warm_start=searched.experiment_path, num_samples=1, max_epochs=1,
                            seed=0, storage_path=str(tmp_path), name="second", verbose=0)
    assert len(second.dataframe) == 1
    # its saved study holds the first search's five trials, each as it ended, then its own
    (state_file,) = Path(second.experiment_path).glob("searcher-state-*.pkl")
    with open(state_file, "rb") as handle:  # OptunaSearch saves its attributes so
        study = pickle.load(handle)["_ot_study"]
    told = sorted(tuple(trial.values) for trial in study.trials[:5])
    assert told == sorted(finals(searched).values()) and len(study.trials) == 6
