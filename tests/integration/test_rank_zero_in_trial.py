"""Rank 0 trains in the Tune trial process; the other ranks in worker actors."""

import glob
import json
import os

import pytest
import ray._private.state as ray_state
from ray import tune

from lightning_tune import (RayDDPStrategy, TuneReportCallback, get_tune_resources,
                            lightning_trainable, tune_lightning)
from lightning_tune.launchers.in_trial import trains_rank_zero_here
from lightning_tune.strategies import RayFSDPStrategy, RayHorovodStrategy
from tests.conftest import alive_actors
from tests.models import DigitsDataModule, FailingOnRank, RecordingClassifier, write_record

pytestmark = pytest.mark.timeout(300)

_RANK_VARIABLES = ("MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LIGHTNING_TUNE_RENDEZVOUS")


def _training_workers() -> set:
    return {actor_id for actor_id, actor in ray_state.actors().items()
            if actor["ActorClassName"].endswith("TrainingWorker")}


def fit_then_test(config):
    """A user's own trainable: fit, then test with the same Trainer, in one trial."""
    import lightning.pytorch as pl
    import torch.distributed as dist

    before = {name: os.environ.get(name) for name in _RANK_VARIABLES}
    model = RecordingClassifier(record_dir=config["record_dir"])
    trainer = pl.Trainer(max_epochs=1, strategy=RayDDPStrategy(num_workers=2),
                         callbacks=[TuneReportCallback("val_loss")], enable_progress_bar=False,
                         enable_model_summary=False, logger=False, enable_checkpointing=False)
    data = DigitsDataModule()
    trainer.fit(model, datamodule=data)
    tested = trainer.test(model, datamodule=data, verbose=False)
    write_record(os.path.join(config["record_dir"], "trial.json"), {
        "pid": os.getpid(), "before": before,
        "after": {name: os.environ.get(name) for name in _RANK_VARIABLES},
        "process_group_left": dist.is_available() and dist.is_initialized(),
        "test_keys": sorted(tested[0]), "epoch": trainer.current_epoch,
        "trainer_rank": trainer.global_rank,
    })


def test_rank_zero_trains_in_the_trial_process_through_fit_and_test(ray_cluster, tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    before = _training_workers()
    tuner = tune.Tuner(tune.with_resources(fit_then_test, get_tune_resources(num_workers=2)),
                       param_space={"record_dir": str(records)},
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    (result,) = tuner.fit()
    assert result.error is None, result.error
    assert result.metrics["val_loss"] > 0  # reported by rank 0, straight from the trial
    trial = json.load(open(records / "trial.json"))
    fits = [json.load(open(path)) for path in glob.glob(str(records / "fit_*.json"))]
    by_rank = {record["global_rank"]: record for record in fits}
    assert sorted(by_rank) == [0, 1] and len(fits) == 2
    assert by_rank[0]["pid"] == trial["pid"] != by_rank[1]["pid"]
    assert {record["world_size"] for record in fits} == {2}
    assert by_rank[0]["env_rank"] == "0" and by_rank[1]["env_rank"] == "1"
    # both ranks trained one model: DDP kept their weights equal
    ends = [json.load(open(path))["param_sum"] for path in glob.glob(str(records / "end_*.json"))]
    assert len(ends) == 2 and ends[0] == pytest.approx(ends[1])
    # test ran after fit on the same Trainer; the trial process is as it was before
    assert "test_loss" in trial["test_keys"] and trial["epoch"] == 1
    assert trial["after"] == trial["before"]
    assert not trial["process_group_left"]
    assert trial["trainer_rank"] == 0
    # one worker actor per fit or test job beyond rank 0, none left
    assert len(_training_workers() - before) <= 2
    assert alive_actors("TrainingWorker") == []


@pytest.mark.parametrize("fail_rank", [0, 1])
def test_a_failing_rank_is_named_and_no_worker_is_left(ray_cluster, tmp_path, fail_rank):
    trainable = lightning_trainable(FailingOnRank, datamodule=DigitsDataModule, max_epochs=2,
                                    strategy="ddp", num_workers=2)
    tuner = tune.Tuner(trainable, param_space={"fail_rank": fail_rank},
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    (result,) = tuner.fit()
    text = str(result.error)
    assert f"Training worker rank {fail_rank} failed" in text
    assert f"ValueError: deliberate failure on rank {fail_rank}" in text
    assert "training_step" in text  # the failing rank's traceback
    assert "The last lines of its log" in text
    (trial,) = glob.glob(str(tmp_path / "*" / "*_00000*"))
    with open(os.path.join(trial, f"rank_{fail_rank}.log")) as handle:
        assert f"deliberate failure on rank {fail_rank}" in handle.read()
    assert alive_actors("TrainingWorker") == []


def fail_on_a_worker():
    """An init hook that fails on every rank but rank 0, before the process group forms."""
    if os.environ.get("RANK") != "0":
        raise ValueError("deliberate failure before joining, on a worker")


def test_a_worker_failing_before_the_group_forms_ends_the_trial_at_once(ray_cluster, tmp_path):
    # rank 0 waits for its peer to arrive; torch alone would wait out its 30-minute timeout
    trainable = lightning_trainable(FailingOnRank, datamodule=DigitsDataModule, max_epochs=1,
                                    strategy="ddp", num_workers=2,
                                    strategy_kwargs={"init_hook": fail_on_a_worker})
    tuner = tune.Tuner(trainable, param_space={"fail_rank": -1},
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    (result,) = tuner.fit()
    text = str(result.error)
    assert "Training worker rank 1 failed" in text
    assert "deliberate failure before joining, on a worker" in text
    assert alive_actors("TrainingWorker") == []


def test_a_one_rank_ddp_trial_starts_no_worker_actor(ray_cluster, tmp_path):
    before = _training_workers()
    records = tmp_path / "records"
    records.mkdir()
    result = tune_lightning(RecordingClassifier, {"record_dir": str(records)},
                            datamodule=DigitsDataModule, max_epochs=1, strategy="ddp",
                            num_workers=1, num_samples=1, storage_path=str(tmp_path),
                            name="one_rank", verbose=0)
    assert result.best_metrics["val_loss"] > 0
    (fit,) = [json.load(open(path)) for path in glob.glob(str(records / "fit_*.json"))]
    assert fit["world_size"] == 1 and fit["backend"] == "gloo"
    assert _training_workers() == before


def test_which_strategies_train_rank_zero_in_the_trial_process():
    assert trains_rank_zero_here(RayDDPStrategy(num_workers=2))
    # a GPU rank needs a GPU bundle, a watched rank must be a process that can be killed
    assert not trains_rank_zero_here(RayDDPStrategy(num_workers=2, use_gpu=True))
    assert not trains_rank_zero_here(RayDDPStrategy(num_workers=2, worker_timeout_s=60))
    assert not trains_rank_zero_here(RayDDPStrategy(num_workers=2, rank_zero_in_trial=False))
    assert not trains_rank_zero_here(RayFSDPStrategy(num_workers=2))
    assert not trains_rank_zero_here(RayHorovodStrategy(num_workers=2))
    with pytest.raises(TypeError, match="rank_zero_in_trial must be True or False"):
        RayDDPStrategy(num_workers=2, rank_zero_in_trial="yes")
