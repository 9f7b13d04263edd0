"""RayFSDPStrategy: FSDP over gloo between Ray actors, alone and in searches with sharded
checkpoints that restarts and PBT restore from."""

import copy
import glob
import json
import os

import pytest
import torch
from ray import tune

from lightning_tune import RayDDPStrategy, RayFSDPStrategy, tune_lightning
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.sharded_checkpoints import is_sharded_checkpoint, load_model_weights
from tests.conftest import alive_actors, fit_digits
from tests.models import EpochLoggingClassifier, ShardRecordingClassifier

pytestmark = pytest.mark.timeout(420)


def test_fsdp_and_ddp_train_to_the_same_model(ray_cluster):
    """Same seed, same data, same start: 2-rank FSDP and 2-rank DDP end at the same loss.

    Both average the two ranks' gradients each step and apply the same Adam update, in
    float32; they differ only in how the sum is formed (reduce-scatter of flat shards vs
    all-reduce per bucket), a rounding difference near 1e-7 per step. Over 20 steps that
    stays well under the 1e-4 allowed here, while a rank that trained on its own data
    only (no averaging) moves the loss by more than 1e-2.
    """
    torch.manual_seed(0)
    start = DigitsClassifier(lr=1e-2)
    ddp = fit_digits(RayDDPStrategy(num_workers=2), copy.deepcopy(start))
    fsdp_model = copy.deepcopy(start)
    fsdp = fit_digits(RayFSDPStrategy(num_workers=2), fsdp_model)

    ddp_loss = float(ddp.callback_metrics["val_loss"])
    fsdp_loss = float(fsdp.callback_metrics["val_loss"])
    assert ddp_loss < 1.5  # it learned: ten classes start near ln(10) = 2.3
    assert abs(ddp_loss - fsdp_loss) < 1e-4, (ddp_loss, fsdp_loss)
    # the driver's model is the whole trained model, assembled from the shards
    for name, value in ddp.lightning_module.state_dict().items():
        torch.testing.assert_close(fsdp_model.state_dict()[name], value, atol=1e-4, rtol=1e-4)
    assert alive_actors("TrainingWorker") == []


def test_each_rank_holds_half_of_the_parameters(ray_cluster, tmp_path):
    model = ShardRecordingClassifier(record_dir=str(tmp_path), hidden_size=128, lr=1e-2)
    whole = sum(parameter.numel() for parameter in DigitsClassifier(hidden_size=128).parameters())
    fit_digits(RayFSDPStrategy(num_workers=2), model, max_epochs=1)
    records = sorted((json.load(open(path)) for path in glob.glob(str(tmp_path / "shards_*.json"))),
                     key=lambda record: record["global_rank"])
    assert [record["global_rank"] for record in records] == [0, 1]
    for record in records:
        # FSDP pads the flat parameter to a multiple of the world size: at most one element
        assert abs(record["local_parameters"] - whole / 2) <= 1, (record, whole)
    assert sum(record["local_parameters"] for record in records) in (whole, whole + 1)


def shard_files(checkpoint):
    with checkpoint.as_directory() as directory:
        folder = os.path.join(directory, "checkpoint")
        files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        return is_sharded_checkpoint(folder), files


def test_asha_search_restarts_a_failed_trial_from_its_sharded_checkpoint(ray_cluster, tmp_path):
    marker = tmp_path / "failed_once"
    result = tune_lightning(
        ShardRecordingClassifier,
        {"record_dir": str(tmp_path), "marker_path": str(marker), "fail_at_epoch": 1,
         "lr": tune.grid_search([1e-2, 3e-3])},
        datamodule=DigitsDataModule, max_epochs=2, strategy="fsdp", num_workers=2,
        strategy_kwargs={"state_dict_type": "sharded"}, search_alg="grid", scheduler="asha",
        num_samples=1, max_failures=1, storage_path=str(tmp_path), name="fsdp_asha",
        verbose=0)

    assert marker.exists()  # one trial failed at epoch 1 and was restarted
    frame = result.dataframe
    assert list(frame["status"]) == ["TERMINATED"] * 2
    # the restarted trial went on from its epoch-0 checkpoint: its process began at epoch 1
    restarted = [trial for trial in result.result_grid
                 if trial.metrics_dataframe["first_epoch_here"].max() == 1]
    assert len(restarted) == 1
    assert list(restarted[0].metrics_dataframe["epoch_seen"]) == [0.0, 1.0]
    sharded, files = shard_files(result.best_checkpoint)
    assert sharded and {"__0_0.distcp", "__1_0.distcp", "meta.pt", ".metadata"} <= set(files)
    model = result.load_best_model()  # consolidated from the two shards
    with result.best_checkpoint.as_directory() as directory:
        weights = load_model_weights(os.path.join(directory, "checkpoint"))
    for name, value in model.state_dict().items():
        assert torch.equal(weights[name], value)
    assert alive_actors("TrainingWorker") == []


def test_pbt_search_exploits_sharded_checkpoints(ray_cluster, tmp_path):
    # two epochs: one exploit, after the first (each one starts the trial's workers afresh)
    space = {"lr": {"distribution": "loguniform", "low": 1e-4, "high": 3e-2}}
    result = tune_lightning(
        EpochLoggingClassifier, space, datamodule=DigitsDataModule, max_epochs=2,
        strategy="fsdp", num_workers=2, strategy_kwargs={"state_dict_type": "sharded"},
        scheduler="pbt", num_samples=2, max_concurrent_trials=2, seed=3,
        storage_path=str(tmp_path), name="fsdp_pbt", verbose=0)

    assert list(result.dataframe["status"]) == ["TERMINATED"] * 2
    exploited = 0
    for trial in result.result_grid:
        history = trial.metrics_dataframe
        if history["config/lr"].nunique() > 1:
            exploited += 1
            # it went on from the donor's sharded checkpoint (not from epoch 0), with its new lr
            after = history[history["config/lr"] != history["config/lr"].iloc[0]]
            assert (after["first_epoch_here"] > 0).all()
            assert list(after["lr_used"]) == pytest.approx(list(after["config/lr"]), rel=1e-6)
    assert exploited >= 1, "PBT exploited no trial: the test proved nothing"
    assert shard_files(result.best_checkpoint)[0]


def test_a_full_state_dict_checkpoint_is_one_file_and_restores(ray_cluster, tmp_path):
    marker = tmp_path / "failed_once"
    result = tune_lightning(
        ShardRecordingClassifier,
        {"record_dir": str(tmp_path), "marker_path": str(marker), "fail_at_epoch": 1, "lr": 1e-2},
        datamodule=DigitsDataModule, max_epochs=2, strategy="fsdp", num_workers=2,
        strategy_kwargs={"state_dict_type": "full"}, scheduler="fifo", num_samples=1,
        max_failures=1, storage_path=str(tmp_path), name="fsdp_full", verbose=0)
    assert marker.exists()
    history = result.result_grid[0].metrics_dataframe
    assert list(history["epoch_seen"]) == [0.0, 1.0] and history["first_epoch_here"].max() == 1
    with result.best_checkpoint.as_directory() as directory:
        path = os.path.join(directory, "checkpoint")
        assert os.path.isfile(path)
        state = torch.load(path, weights_only=True)
    assert state["state_dict"]["net.0.weight"].shape == (64, 64)  # whole, not a shard
    assert len(state["optimizer_states"][0]["state"]) == 4  # Adam's moments of every tensor
    model = result.load_best_model()
    for name, value in model.state_dict().items():
        assert torch.equal(state["state_dict"][name], value)
