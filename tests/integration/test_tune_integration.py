"""Trials inside Tune: workers in their trial's bundles, callbacks, restarts, tune_lightning."""

import glob
import json
import os

import pytest
import torch
from ray import tune
from ray.tune import FailureConfig, RunConfig, TuneConfig

from lightning_tune import (TuneReportCallback, TuneReportCheckpointCallback, lightning_trainable,
                            load_result, tune_lightning)
from lightning_tune.errors import AllTrialsFailedError, TrialShapeError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.examples.digits import held_out_accuracy
from tests.conftest import alive_actors
from tests.models import (EpochLoggingClassifier, FailOnceClassifier, RecordingClassifier,
                          WrongMetricClassifier)

pytestmark = pytest.mark.timeout(300)


def run_tuner(trainable, space, tmp_path, num_samples=1, max_failures=0, **tune_config):
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=TuneConfig(num_samples=num_samples, **tune_config),
        run_config=RunConfig(storage_path=str(tmp_path / "results"), name="exp", verbose=0,
                             failure_config=FailureConfig(max_failures=max_failures)))
    return tuner.fit()


def test_two_ddp_trials_keep_their_workers_in_their_own_bundles(ray_cluster, tmp_path):
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    trainable = lightning_trainable(RecordingClassifier, datamodule=DigitsDataModule,
                                    max_epochs=1, strategy="ddp", num_workers=2)
    grid = run_tuner(trainable, {"record_dir": str(record_dir),
                                 "trial_tag": tune.grid_search([0, 1])}, tmp_path)
    assert not grid.errors
    records = [json.load(open(path)) for path in glob.glob(str(record_dir / "fit_*.json"))]
    assert len(records) == 4
    groups = {tag: {r["placement_group"] for r in records if r["trial_tag"] == tag} for tag in (0, 1)}
    assert all(len(group) == 1 for group in groups.values())  # both ranks in one group
    assert groups[0] != groups[1]  # each trial its own
    table = ray_cluster.util.placement_group_table()
    assert len(table) == 2, "no placement group beyond the two trials' own"
    assert {group_id for group in groups.values() for group_id in group} == set(table)
    for tag in (0, 1):
        ranks = sorted(r["global_rank"] for r in records if r["trial_tag"] == tag)
        assert ranks == [0, 1]
    assert alive_actors("TrainingWorker") == []
    assert alive_actors("_BridgeQueue") == []


@pytest.mark.parametrize("metrics, expected, metric", [
    (["val_loss", "val_acc"], {"val_loss", "val_acc"}, "val_acc"),
    ({"loss": "val_loss", "accuracy": "val_acc"}, {"loss", "accuracy"}, "loss"),
    # every callback metric; train_loss joins from the second epoch's validation on
    (None, {"val_loss", "val_acc", "train_loss"}, "val_loss"),
])
def test_report_callback_metrics_over_the_ddp_bridge(ray_cluster, tmp_path, metrics, expected,
                                                      metric):
    callback = TuneReportCallback(metrics, on="validation_end")
    trainable = lightning_trainable(DigitsClassifier, datamodule=DigitsDataModule, max_epochs=2,
                                    metric=metric, strategy="ddp", num_workers=2,
                                    callbacks=[callback])
    result = run_tuner(trainable, {"lr": 1e-2}, tmp_path)[0]
    assert result.error is None
    reported = set(result.metrics) & {"val_loss", "val_acc", "train_loss", "loss", "accuracy"}
    assert reported == expected
    # two epochs, two reports: the sanity-check validation was not reported
    assert result.metrics["training_iteration"] == 2
    assert result.checkpoint is None
    # the trial's TensorBoard run is its folder, where Tune's own logger (this Tuner keeps
    # Tune's defaults) writes too; Lightning's file is rank 0's only
    events = glob.glob(os.path.join(result.path, "**", "events.out.*"), recursive=True)
    assert {os.path.dirname(path) for path in events} == {result.path}
    lightnings = [path for path in events if "val_acc" in scalar_tags(path)]
    assert len(lightnings) == 1 and len(events) == 2


def scalar_tags(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(path)
    events.Reload()
    return events.Tags()["scalars"]


def test_one_checkpoint_per_epoch_that_restores_the_trained_model(ray_cluster, tmp_path):
    callback = TuneReportCheckpointCallback(metrics=["val_loss"], on="train_epoch_end")
    trainable = lightning_trainable(EpochLoggingClassifier, datamodule=DigitsDataModule,
                                    max_epochs=3, strategy="ddp", num_workers=2,
                                    callbacks=[callback])
    result = run_tuner(trainable, {"lr": 1e-2}, tmp_path)[0]
    assert result.error is None
    history = result.metrics_dataframe
    assert len(history) == 3 and history["checkpoint_dir_name"].notna().all()
    assert len(result.best_checkpoints) == 3
    with result.checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, "checkpoint"), weights_only=True)
    assert state["epoch"] == 2 and state["loops"]  # full Lightning state, not only weights
    model = EpochLoggingClassifier(lr=1e-2)
    model.load_state_dict(state["state_dict"])
    assert held_out_accuracy(model, DigitsDataModule()) > 0.5  # trained weights, not initial


def test_single_process_trial_reports_and_restarts_from_its_checkpoint(ray_cluster, tmp_path):
    """A trial that fails once is restarted by Tune and continues its epoch count."""
    marker = str(tmp_path / "failed_once")
    result = tune_lightning(FailOnceClassifier, {"marker_path": marker, "fail_at_epoch": 2,
                                                 "lr": 1e-2},
                            datamodule=DigitsDataModule, max_epochs=4, num_samples=1,
                            max_failures=1, scheduler="fifo", storage_path=str(tmp_path),
                            name="restarted", verbose=0).result_grid[0]
    assert os.path.exists(marker) and result.error is None
    history = result.metrics_dataframe
    assert list(history["first_epoch_here"]) == [0.0, 0.0, 2.0, 2.0]
    assert list(history["epoch_seen"]) == [0.0, 1.0, 2.0, 3.0]  # resumed at epoch 2, not 0
    assert list(history["training_iteration"]) == [1, 2, 3, 4]


def test_ddp_trial_restarts_from_its_checkpoint(ray_cluster, tmp_path):
    marker = str(tmp_path / "failed_once")
    result = tune_lightning(FailOnceClassifier, {"marker_path": marker, "fail_at_epoch": 1,
                                                 "lr": 1e-2},
                            datamodule=DigitsDataModule, max_epochs=3, strategy="ddp",
                            num_workers=2, num_samples=1, max_failures=1, scheduler="fifo",
                            storage_path=str(tmp_path), name="restarted", verbose=0)
    assert os.path.exists(marker)
    history = result.result_grid[0].metrics_dataframe
    assert result.result_grid[0].error is None
    # the second attempt began at epoch 1, from the first attempt's checkpoint ...
    assert list(history["first_epoch_here"]) == [0.0, 1.0, 1.0]
    # ... and the first attempt's row is still there (Tune alone may drop it on the restart)
    assert list(history["epoch_seen"]) == [0.0, 1.0, 2.0]


def test_metric_never_logged_names_it_and_lists_the_logged_ones(ray_cluster, tmp_path):
    with pytest.raises(AllTrialsFailedError) as error:
        tune_lightning(WrongMetricClassifier, {"lr": 1e-2}, datamodule=DigitsDataModule,
                       num_samples=1, max_epochs=3, storage_path=str(tmp_path), verbose=0)
    message = str(error.value)
    assert "metric 'val_loss'" in message and "valid_acc, valid_loss" in message


def test_trial_larger_than_the_cluster_fails_before_any_trial(ray_cluster, tmp_path):
    with pytest.raises(TrialShapeError, match="more than the Ray cluster can ever hold"):
        tune_lightning(DigitsClassifier, {"lr": 1e-2}, datamodule=DigitsDataModule,
                       strategy="ddp", num_workers=5, storage_path=str(tmp_path), verbose=0)
    assert not os.listdir(tmp_path)


def test_tune_lightning_end_to_end_on_digits(ray_cluster, tmp_path):
    result = tune_lightning(
        DigitsClassifier, {"lr": tune.grid_search([3e-3, 3e-2]), "batch_size": 32},
        datamodule=DigitsDataModule, metric="val_acc", mode="max", num_samples=1, max_epochs=3,
        strategy="ddp", num_workers=2, search_alg="grid", scheduler="fifo",
        storage_path=str(tmp_path), name="digits", seed=0, verbose=0)
    assert result.experiment_path == str(tmp_path / "digits")
    assert len(result.dataframe) == 2 and set(result.dataframe["lr"]) == {3e-3, 3e-2}
    best_acc = max(result.dataframe["val_acc"])
    assert result.best_metrics["val_acc"] == pytest.approx(best_acc)
    assert result.best_config["lr"] in (3e-3, 3e-2) and result.best_config["batch_size"] == 32
    model = result.load_best_model()
    assert isinstance(model, DigitsClassifier)
    accuracy = held_out_accuracy(model, DigitsDataModule())
    assert accuracy > 0.5, "the best model must beat chance (0.1) on held-out digits"
    assert result.best_checkpoint is not None


def test_tune_lightning_with_pytorch_lightning_models(ray_cluster, tmp_path):
    from tests.models_pl import PLDigitsClassifier, PLDigitsDataModule

    result = tune_lightning(PLDigitsClassifier, {"lr": tune.choice([1e-2, 3e-2])},
                            datamodule=PLDigitsDataModule, num_samples=1, max_epochs=2,
                            strategy="ddp", num_workers=2, scheduler="fifo",
                            storage_path=str(tmp_path), verbose=0)
    model = result.load_best_model()
    assert isinstance(model, PLDigitsClassifier)
    assert held_out_accuracy(model, DigitsDataModule()) > 0.5  # chance is 0.1


def test_gpus_asked_of_a_cluster_without_gpus(ray_cluster, tmp_path):
    with pytest.raises(TrialShapeError, match="asks for GPUs"):
        tune_lightning(DigitsClassifier, {"lr": 1e-2}, datamodule=DigitsDataModule,
                       strategy="ddp", num_workers=2, gpus_per_worker=1,
                       storage_path=str(tmp_path), verbose=0)


def test_a_checkpoint_file_named_by_the_user_loads_back(ray_cluster, tmp_path):
    callback = TuneReportCheckpointCallback(filename="model.ckpt")
    result = tune_lightning(DigitsClassifier, {"lr": 3e-2}, datamodule=DigitsDataModule,
                            num_samples=1, max_epochs=2, scheduler="fifo", callbacks=[callback],
                            storage_path=str(tmp_path), name="named", verbose=0)
    assert sorted(os.listdir(result.best_checkpoint.path)) == ["model.ckpt"]
    for read_back in (result, load_result(result.experiment_path)):
        assert read_back.checkpoint_filename == "model.ckpt"
        assert held_out_accuracy(read_back.load_best_model(), DigitsDataModule()) > 0.5
