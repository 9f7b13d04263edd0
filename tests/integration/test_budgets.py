"""A search that ends at its time budget and is resumed; stopping rules; which
hyperparameters mattered, read back from the experiment folder (digits, local Ray)."""

import os

import pytest
from ray import tune

from lightning_tune import load_result, resume, tune_lightning
from lightning_tune.cli import main as cli_main
from lightning_tune.errors import ExperimentNotFoundError, InvalidArgumentError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.informed_hyperopt import InformedHyperOptSearch
from tests.models import SlowEpochClassifier

pytestmark = pytest.mark.timeout(400)

EPOCHS = 8
SPACE = {"lr": tune.loguniform(3e-3, 1e-1), "hidden_size": tune.choice([16, 64]),
         "epoch_sleep": 1.5}


@pytest.fixture(scope="module")
def ray_cpus():
    return 2


@pytest.fixture(scope="module")
def budgeted(ray_cluster, tmp_path_factory):
    """4 trials of 8 slow epochs, 2 at a time, a 12 s budget; then resumed without one."""
    storage = tmp_path_factory.mktemp("budget")
    first = tune_lightning(SlowEpochClassifier, SPACE, datamodule=DigitsDataModule,
                           num_samples=4, max_epochs=EPOCHS, scheduler="fifo",
                           max_concurrent_trials=2, time_budget_s=12, seed=0,
                           storage_path=str(storage), name="budget", verbose=0)
    first_frame = first.dataframe.copy()
    histories = {trial.metrics_dataframe["trial_id"].iloc[-1]: trial.metrics_dataframe.copy()
                 for trial in first.result_grid if trial.metrics_dataframe is not None}
    checkpoints = {trial.metrics_dataframe["trial_id"].iloc[-1]: trial.checkpoint
                   for trial in first.result_grid if trial.metrics_dataframe is not None}
    read_back = load_result(first.experiment_path).interrupted
    resumed = resume(first.experiment_path)
    return first, first_frame, histories, checkpoints, resumed, read_back


def test_the_budget_ends_the_search_with_everything_reported_kept(budgeted):
    first, frame, histories, checkpoints, _, read_back = budgeted
    assert "the time budget of 12 s ran out" in first.summary()
    interrupted = frame[frame["status"] == "INTERRUPTED"]["trial_id"].tolist()
    assert interrupted, frame  # 8 epochs of 1.5 s each cannot fit in 12 s
    assert sorted(interrupted) == sorted(first.interrupted)
    for trial_id in interrupted:
        history = histories[trial_id]
        epochs = history["training_iteration"].tolist()
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) < EPOCHS
        # the last report's checkpoint is the trial's latest: nothing reported was dropped
        assert os.path.basename(checkpoints[trial_id].path) == \
            history["checkpoint_dir_name"].iloc[-1]
    # read back from the folder, the cut-short trials are still told apart
    assert sorted(read_back) == sorted(interrupted)
    assert first.best_metrics["val_loss"] == pytest.approx(min(
        history["val_loss"].min() for history in histories.values()))


def test_resume_continues_the_cut_short_trials_and_runs_the_rest(budgeted):
    _, frame, histories, _, resumed, _ = budgeted
    final = resumed.dataframe
    assert len(final) == 4 and (final["status"] == "TERMINATED").all(), final
    assert "time budget" not in resumed.summary()
    for trial in resumed.result_grid:
        history = trial.metrics_dataframe
        trial_id = history["trial_id"].iloc[-1]
        assert history["training_iteration"].tolist() == list(range(1, EPOCHS + 1))
        assert (history["epoch_seen"] == history["training_iteration"] - 1).all()
        done_before = len(histories.get(trial_id, []))
        if trial_id in frame[frame["status"] == "INTERRUPTED"]["trial_id"].tolist():
            # it went on from its checkpoint: the process after the resume began past epoch 0
            assert history["first_epoch_here"].iloc[-1] >= done_before - 1 > -1


def test_importance_of_the_finished_search_and_from_its_folder(budgeted, tmp_path, capsys):
    resumed = budgeted[4]
    shares = resumed.importance()
    assert set(shares) == {"lr", "hidden_size"}  # epoch_sleep is a constant, not searched
    assert sum(shares.values()) == pytest.approx(1.0)
    again = load_result(resumed.experiment_path)
    assert again.importance() == pytest.approx(shares)  # fANOVA is seeded
    assert set(again.importance(evaluator="ped-anova")) == {"lr", "hidden_size"}
    assert set(again.importance(metric="val_acc", mode="max")) == {"lr", "hidden_size"}
    assert cli_main(["report", resumed.experiment_path, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "hyperparameter importance for val_loss (fANOVA" in printed
    assert f"importance: {tmp_path / 'importance.png'}" in printed
    assert (tmp_path / "importance.png").stat().st_size > 5000


def test_a_trial_stops_once_it_reaches_a_threshold(ray_cluster, tmp_path):
    result = tune_lightning(DigitsClassifier, {"lr": tune.loguniform(3e-2, 1e-1)},
                            datamodule=DigitsDataModule, num_samples=2, max_epochs=10,
                            scheduler="fifo", stop={"val_acc": 0.9}, seed=0,
                            storage_path=str(tmp_path), verbose=0)
    for trial in result.result_grid:
        accuracy = trial.metrics_dataframe["val_acc"].tolist()
        assert accuracy[-1] >= 0.9 and all(value < 0.9 for value in accuracy[:-1])
        assert len(accuracy) < 10


def test_a_threshold_on_a_metric_never_logged_is_named_after_the_first_report(
        ray_cluster, tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"\['val_accuracy'\].*'val_acc'"):
        tune_lightning(DigitsClassifier, {"lr": 3e-2}, datamodule=DigitsDataModule,
                       num_samples=1, max_epochs=3, scheduler="fifo",
                       stop={"val_accuracy": 0.9}, storage_path=str(tmp_path), name="typo",
                       verbose=0)
    reported = [folder for folder in os.listdir(tmp_path / "typo")
                if os.path.exists(tmp_path / "typo" / folder / "result.json")]
    assert reported  # the first report is kept in the experiment


def test_a_second_search_builds_on_the_first(budgeted, tmp_path, caplog):
    earlier = budgeted[4].experiment_path
    space = {"lr": tune.loguniform(3e-3, 1e-1), "hidden_size": tune.choice([16, 64])}
    with pytest.raises(InvalidArgumentError, match=r"only here: \['dropout'\]"):
        tune_lightning(DigitsClassifier, {**space, "dropout": tune.uniform(0.0, 0.5)},
                       search_alg="optuna", warm_start=earlier, storage_path=str(tmp_path),
                       name="mismatch", verbose=0)
    assert not (tmp_path / "mismatch").exists()  # refused before the search began
    with pytest.raises(ExperimentNotFoundError, match="warm_start: .* not an experiment"):
        tune_lightning(DigitsClassifier, space, search_alg="optuna",
                       warm_start=str(tmp_path), storage_path=str(tmp_path), verbose=0)
    narrower = {"lr": tune.loguniform(1e-2, 1e-1), "hidden_size": tune.choice([16, 64])}
    result = tune_lightning(DigitsClassifier, narrower, datamodule=DigitsDataModule,
                            search_alg="optuna", warm_start=budgeted[4], num_samples=2,
                            max_epochs=1, scheduler="fifo", seed=0, storage_path=str(tmp_path),
                            name="second", verbose=0)
    assert len(result.dataframe) == 2  # the earlier trials are told, not run again
    inside = sum(1e-2 <= trial.config["lr"] <= 1e-1 for trial in budgeted[4].result_grid)
    told = [record.getMessage() for record in caplog.records
            if record.name == "lightning_tune.warm_start"]
    assert told == [f"warm_start: the searcher starts from {inside} finished trials of "
                    f"{earlier}" + (f" ({4 - inside} outside this search's ranges left out)."
                                    if inside < 4 else ".")]
    caplog.clear()  # HyperOpt too, its history saved with the searcher's state
    result = tune_lightning(DigitsClassifier, narrower, datamodule=DigitsDataModule,
                            search_alg="hyperopt", warm_start=earlier, num_samples=1,
                            max_epochs=1, scheduler="fifo", seed=0,
                            storage_path=str(tmp_path), name="hyperopt", verbose=0)
    assert len(result.dataframe) == 1 and told[0] in caplog.text
    searcher_state = list((tmp_path / "hyperopt").glob("searcher-state-*.pkl"))
    assert len(searcher_state) == 1
    restored = InformedHyperOptSearch([], [])
    restored.restore(str(searcher_state[0]))
    history = restored.get_state()["hyperopt_trials"]
    assert len(history.trials) == inside + 1  # the told trials, then the one it ran
    caplog.clear()
    tune_lightning(DigitsClassifier, narrower, datamodule=DigitsDataModule,
                   warm_start=earlier, num_samples=1, max_epochs=1, scheduler="fifo",
                   storage_path=str(tmp_path), name="random", verbose=0)
    assert "does not learn from earlier trials" in caplog.text
