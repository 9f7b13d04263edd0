"""Every searcher and scheduler by name on the digits example, and PBT that changes the lr."""

import pytest

from lightning_tune import tune_lightning
from lightning_tune.examples import DigitsClassifier, DigitsDataModule

pytestmark = pytest.mark.timeout(300)

SPACES = {
    "random": "optimizers",
    "optuna": "optimizers",  # conditional momentum: Optuna samples it only for SGD
    "hyperopt": "adamw",
    "grid": {"lr": {"distribution": "grid", "values": [3e-3, 3e-2]}, "hidden_size": 32},
}


@pytest.mark.parametrize("scheduler", ["asha", "fifo"])
@pytest.mark.parametrize("search_alg", ["random", "grid", "optuna", "hyperopt"])
def test_each_searcher_with_each_scheduler(ray_cluster, tmp_path, search_alg, scheduler):
    result = tune_lightning(DigitsClassifier, SPACES[search_alg], datamodule=DigitsDataModule,
                            num_samples=1 if search_alg == "grid" else 3, max_epochs=2,
                            search_alg=search_alg, scheduler=scheduler, seed=0,
                            storage_path=str(tmp_path), verbose=0)
    frame = result.dataframe
    assert len(frame) == (2 if search_alg == "grid" else 3)
    assert (frame["status"] == "TERMINATED").all()
    if scheduler == "fifo":
        assert (frame["training_iteration"] == 2).all()
    assert 1e-4 <= result.best_config["lr"] <= 1e-1
    if search_alg in ("random", "optuna"):
        for _, row in frame.iterrows():  # the conditional parameter only where it applies
            assert (row["momentum"] is None or row["momentum"] != row["momentum"]) == (
                row["optimizer"] != "sgd")
    # trial directories are named by their sampled values
    assert all("lr=" in result_.path.rsplit("/", 1)[-1] for result_ in result.result_grid)
    assert result.best_metrics["val_loss"] < 2.3


@pytest.mark.parametrize("scheduler", ["hyperband", "median"])
def test_hyperband_and_median(ray_cluster, tmp_path, scheduler):
    result = tune_lightning(DigitsClassifier, "adam", datamodule=DigitsDataModule, num_samples=3,
                            max_epochs=2, scheduler=scheduler, seed=1,
                            storage_path=str(tmp_path), verbose=0)
    assert len(result.dataframe) == 3 and result.best_metrics["val_loss"] < 2.3


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
