"""Every searcher and scheduler by name on the digits example, and PBT that changes the lr."""

import pytest

from ray import tune

from lightning_tune import tune_lightning
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from tests.models import LaggingClassifier

pytestmark = pytest.mark.timeout(300)

SPACES = {
    "random": "optimizers",
    "optuna": "optimizers",  # conditional momentum: Optuna samples it only for SGD
    "hyperopt": "adamw",
    "grid": {"lr": {"distribution": "grid", "values": [3e-3, 3e-2]}, "hidden_size": 32},
}


# every searcher once, each scheduler by name with random search (and early stopping itself
# in test_schedulers_stop_lagging_trials_early): the suite's time goes where it proves most
@pytest.mark.parametrize("search_alg, scheduler", [
    ("random", "asha"), ("random", "fifo"), ("grid", "fifo"), ("optuna", "asha"),
    ("hyperopt", "asha")])
def test_each_searcher_with_a_scheduler(ray_cluster, tmp_path, search_alg, scheduler):
    result = tune_lightning(DigitsClassifier, SPACES[search_alg], datamodule=DigitsDataModule,
                            num_samples=1 if search_alg == "grid" else 3, max_epochs=2,
                            search_alg=search_alg, scheduler=scheduler, seed=0,
                            storage_path=str(tmp_path), verbose=0)
    frame = result.dataframe
    assert len(frame) == (2 if search_alg == "grid" else 3)
    assert (frame["status"] == "TERMINATED").all()
    if scheduler == "fifo":
        assert (frame["training_iteration"] == 2).all()
    if search_alg in ("random", "optuna"):
        for _, row in frame.iterrows():  # the conditional parameter only where it applies
            assert (row["momentum"] is None or row["momentum"] != row["momentum"]) == (
                row["optimizer"] != "sgd")
    # trial directories are named by their sampled values
    assert all("lr=" in result_.path.rsplit("/", 1)[-1] for result_ in result.result_grid)
    # chance is 0.1 (ten digits): the best trial's model learned
    assert result.best_metrics["val_acc"] > 0.3


# (lags in trial order, max_epochs, trials at a time, epochs each trial must end with).
# Good trials (lag 0) all report the very same losses; bad ones 5 more.
STOPPING = {
    # ASHA, rungs at 1 and 2 epochs, one trial at a time, good ones first: a bad trial is
    # cut at its first rung, ties go on
    "asha": ([0, 0, 5, 5], 4, 1, [4, 4, 1, 1]),
    # median stopping, after 1 epoch and 2 other trials: worse than their median, cut
    "median": ([0, 0, 5, 5], 4, 1, [4, 4, 1, 1]),
    # HyperBand, max_t 2: its first bracket (trials 0 and 1) runs to max_t, the second
    # (trials 2 and 3) halves after 1 epoch. It pauses trials until their bracket catches
    # up, so all run at once (one at a time, a paused trial would wait for trials never
    # started)
    "hyperband": ([0, 0, 0, 5], 2, None, [2, 2, 2, 1]),
}


@pytest.mark.parametrize("scheduler", sorted(STOPPING))
def test_schedulers_stop_lagging_trials_early(ray_cluster, tmp_path, scheduler):
    lags, max_epochs, at_a_time, expected = STOPPING[scheduler]
    space = {"trial": tune.grid_search(list(range(len(lags)))),
             "lag": tune.sample_from(lambda config: lags[config["trial"]])}
    result = tune_lightning(LaggingClassifier, space, datamodule=DigitsDataModule,
                            max_epochs=max_epochs, num_samples=1, search_alg="random", seed=0,
                            scheduler=scheduler, max_concurrent_trials=at_a_time,
                            storage_path=str(tmp_path), verbose=0)
    epochs = {trial.config["trial"]: len(trial.metrics_dataframe) for trial in result.result_grid}
    assert [epochs[index] for index in range(len(lags))] == expected
    assert result.best_metrics["val_loss"] == pytest.approx(1.0 / max_epochs)


def test_random_search_with_a_seed_repeats_its_configs(ray_cluster, tmp_path):
    def configs(run):
        result = tune_lightning(DigitsClassifier, "optimizers", datamodule=DigitsDataModule,
                                num_samples=3, max_epochs=1, scheduler="fifo", seed=7,
                                storage_path=str(tmp_path / run), verbose=0)
        return sorted((r.config["optimizer"], r.config["lr"], r.config["momentum"] or 0.0)
                      for r in result.result_grid)

    assert configs("first") == configs("second")


def test_pbt_mutations_really_change_the_learning_rate(ray_cluster, tmp_path):
    """After an exploit the trial continues from the donor's checkpoint with its new lr:
    the lr the optimizer trained with (logged by the model) equals the trial's new config."""
    space = {"lr": {"distribution": "loguniform", "low": 1e-4, "high": 1e-1}}
    result = tune_lightning(DigitsClassifier, space, datamodule=DigitsDataModule, num_samples=4,
                            max_epochs=3, scheduler="pbt", seed=3, max_concurrent_trials=4,
                            storage_path=str(tmp_path), verbose=0)
    changed = 0
    for trial in result.result_grid:
        history = trial.metrics_dataframe.dropna(subset=["lr_used"])
        for _, row in history.iterrows():
            assert row["lr_used"] == pytest.approx(row["config/lr"], rel=1e-6)
        changed += history["config/lr"].nunique() > 1
    assert changed >= 1, "PBT mutated no trial's lr: the test proved nothing"
