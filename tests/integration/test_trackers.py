"""Experiment trackers of a real DDP search: one MLflow run per trial, read back with MLflow's
own client, that a restarted trial continues; Lightning's CSV logs and the rank logs of both
attempts kept in the trial's folder."""

import glob
import os
import re

import pytest
from ray import tune

from lightning_tune import lightning_trainable, load_result, tune_lightning
from tests.models import DigitsDataModule, FailOnceClassifier

pytestmark = pytest.mark.timeout(300)
EPOCHS = 2


@pytest.fixture(scope="module")
def search(ray_cluster, tmp_path_factory):
    storage = tmp_path_factory.mktemp("trackers")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    # the first trial to reach epoch 1 fails there once and is restarted from its checkpoint
    space = {"lr": tune.grid_search([0.01, 0.02]), "marker_path": str(storage / "failed_once"),
             "fail_at_epoch": 1}
    result = tune_lightning(FailOnceClassifier, space, datamodule=DigitsDataModule,
                            strategy="ddp", num_workers=2, max_epochs=EPOCHS, scheduler="fifo",
                            num_samples=1, max_failures=1, storage_path=str(storage),
                            name="tracked", verbose=0, loggers=["mlflow", "csv"])
    return result


@pytest.fixture(scope="module")
def runs(search):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{search.experiment_path}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "tracked"]
    return client, client.search_runs([experiment.experiment_id])


def trial_folder(search, trial_id):
    (folder,) = glob.glob(os.path.join(search.experiment_path, f"{trial_id}_*"))
    return folder


def restarted_trial(search):
    (trial_id,) = [trial.metrics["trial_id"] for trial in search.result_grid
                   if os.path.exists(os.path.join(trial.path, "error.txt"))]
    return trial_id


def test_one_mlflow_run_per_trial_named_after_it_with_its_config(search, runs):
    client, found = runs
    by_trial = {run.data.tags["lightning_tune.trial_id"]: run for run in found}
    trials = {trial.metrics["trial_id"]: trial for trial in search.result_grid}
    assert sorted(by_trial) == sorted(trials)  # rank 1 made no run of its own
    for trial_id, run in by_trial.items():
        assert run.info.run_name == os.path.basename(trial_folder(search, trial_id))
        assert float(run.data.params["lr"]) == trials[trial_id].config["lr"]
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert len(history) == EPOCHS and len({point.step for point in history}) == EPOCHS
        # the last epoch's value is what the trial reported to Tune
        assert history[-1].value == pytest.approx(trials[trial_id].metrics["val_loss"], rel=1e-5)


def test_a_restarted_trial_continues_its_run_and_keeps_both_attempts_logs(search, runs):
    client, found = runs
    trial_id = restarted_trial(search)
    (run,) = [run for run in found if run.data.tags["lightning_tune.trial_id"] == trial_id]
    # epoch 0 from the first attempt, epoch 1 from the restart, in the one run
    first_epochs = client.get_metric_history(run.info.run_id, "first_epoch_here")
    assert sorted(point.value for point in first_epochs) == [0.0, 1.0]
    folder = trial_folder(search, trial_id)
    versions = sorted(glob.glob(os.path.join(folder, "csv", "version_*", "metrics.csv")))
    assert len(versions) == 2  # Lightning's CSV logger would have overwritten one file
    with open(versions[1]) as handle:
        assert handle.readline().startswith("epoch,") and handle.readline().startswith("1,")
    for rank in (0, 1):  # the experiment's copy holds the restart's output too
        with open(os.path.join(folder, f"rank_{rank}.log")) as handle:
            starts = re.findall(r"^--- \d{4}-\d\d-\d\d [\d:]+ pid \d+$", handle.read(), re.M)
        assert len(starts) == 2


def test_the_summary_says_how_to_open_the_runs(search):
    again = load_result(search.experiment_path)
    store = f"sqlite:///{search.experiment_path}/mlflow.db"
    for result in (search, again):
        assert f"mlflow ui --backend-store-uri {store}" in result.summary()
        assert "tensorboard --logdir" not in result.summary()


def csv_named_after(trial):
    """A user's loggers= function: Lightning's CSV logger, in a folder named by the trial id."""
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(trial.directory, name=f"{trial.experiment_name}-{trial.trial_id}")


def test_a_loggers_function_gets_each_trial_in_a_users_own_tuner(ray_cluster, tmp_path):
    trainable = lightning_trainable(FailOnceClassifier, datamodule=DigitsDataModule,
                                    max_epochs=1, loggers=csv_named_after)
    grid = tune.Tuner(trainable, param_space={"lr": 0.03, "marker_path": str(tmp_path / "no")},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name="own",
                                                verbose=0)).fit()
    (trial,) = list(grid)
    assert trial.error is None
    (hparams,) = glob.glob(os.path.join(trial.path, f"own-{trial.metrics['trial_id']}",
                                        "version_0", "hparams.yaml"))
    with open(hparams) as handle:
        assert "lr: 0.03" in handle.read()  # the trial's config, as hyperparameters
