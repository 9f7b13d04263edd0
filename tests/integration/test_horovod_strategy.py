"""RayHorovodStrategy with the Horovod that scripts/build_horovod.sh built (never skipped)."""

import glob
import json
import sys

import pytest
import torch
from ray import tune

from lightning_tune import RayDDPStrategy, RayHorovodStrategy, lightning_trainable, tune_lightning
from lightning_tune.errors import WorkerError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.examples.digits import held_out_accuracy
from lightning_tune.launchers.ranks import WorkerHost, WorkerPlacement
from lightning_tune.strategies.horovod import horovod_slots
from tests.conftest import alive_actors, fit_digits
from tests.models import FailingOnRank, RecordingClassifier, TwoOptimizerClassifier

pytestmark = pytest.mark.timeout(240)


def test_horovod_is_the_one_the_set_up_built():
    import horovod.torch as hvd

    assert hvd.gloo_built()


def test_missing_horovod_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "horovod.torch", None)
    with pytest.raises(ImportError, match="scripts/build_horovod.sh"):
        RayHorovodStrategy(num_workers=2)
    with pytest.raises(ImportError, match="scripts/build_horovod.sh"):
        tune_lightning(DigitsClassifier, {"lr": 0.1}, strategy="horovod")


def test_cross_ranks_for_an_uneven_layout():
    hosts = [WorkerHost(node, "ip", [], "lo") for node in ("a", "b", "a")]
    placements = [WorkerPlacement(0, 3, 0, 2, 0, 2), WorkerPlacement(1, 3, 0, 1, 1, 2),
                  WorkerPlacement(2, 3, 1, 2, 0, 2)]
    slots = horovod_slots(placements, hosts)
    assert [(s["local_rank"], s["cross_rank"], s["cross_size"]) for s in slots] == [
        (0, 0, 2), (0, 1, 2), (1, 0, 1)]


def test_fit_trains_the_driver_model_fit_twice(ray_cluster, tmp_path):
    model = RecordingClassifier(record_dir=str(tmp_path), lr=1e-2)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    trainer = fit_digits(RayHorovodStrategy(num_workers=2), model, max_epochs=1)
    assert any(not torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert {"val_loss", "val_acc"} <= set(trainer.callback_metrics)
    assert trainer.current_epoch == 1 and trainer.global_step == 10  # data sharded over 2 ranks
    records = sorted((json.load(open(path)) for path in glob.glob(str(tmp_path / "fit_*.json"))),
                     key=lambda record: record["global_rank"])
    assert [r["global_rank"] for r in records] == [0, 1]
    assert {r["backend"] for r in records} == {None}  # Horovod, not torch.distributed
    first_loss = float(trainer.callback_metrics["val_loss"])
    trainer.fit_loop.max_epochs = 3
    trainer.fit(model, datamodule=DigitsDataModule())
    assert trainer.current_epoch == 3 and float(trainer.callback_metrics["val_loss"]) < first_loss
    assert held_out_accuracy(model, DigitsDataModule()) > 0.5
    assert alive_actors("TrainingWorker") == []


def test_exception_on_one_rank_surfaces(ray_cluster):
    with pytest.raises(WorkerError) as error:
        fit_digits(RayHorovodStrategy(num_workers=2), FailingOnRank(fail_rank=1))
    assert error.value.rank == 1 and "deliberate failure on rank 1" in str(error.value)
    assert alive_actors("TrainingWorker") == []


@pytest.mark.parametrize("model_cls, trainer_kwargs", [
    (DigitsClassifier, {}),
    (DigitsClassifier, {"accumulate_grad_batches": 2}),
    (TwoOptimizerClassifier, {}),
])
def test_horovod_and_ddp_reach_the_same_validation_loss(ray_cluster, model_cls, trainer_kwargs):
    """Both are synchronous data parallel over the same shards: the same run up to rounding.

    Each step averages two ranks' gradients; DDP sums pre-divided gradients, Horovod divides
    the sum, which differ by float32 rounding (relative 1e-7 a step). Over 60 steps of Adam
    that stays far below the 1e-4 relative tolerance, while one wrong or missing average
    (an unsynchronised step, accumulation applied twice) moves the loss by percents.
    """
    losses = {}
    for name, strategy in (("ddp", RayDDPStrategy(num_workers=2)),
                           ("horovod", RayHorovodStrategy(num_workers=2))):
        torch.manual_seed(0)
        model = model_cls(lr=3e-3)
        trainer = fit_digits(strategy, model, max_epochs=3, **trainer_kwargs)
        losses[name] = float(trainer.callback_metrics["val_loss"])
    assert losses["horovod"] == pytest.approx(losses["ddp"], rel=1e-4)
    torch.manual_seed(0)
    single = fit_digits("auto", model_cls(lr=3e-3), max_epochs=3, devices=1, accelerator="cpu",
                 **trainer_kwargs)
    # not the same run (one rank sees twice the batch), so the losses differ measurably:
    assert abs(float(single.callback_metrics["val_loss"]) - losses["ddp"]) > 1e-3


def test_horovod_trials_keep_workers_in_their_own_bundles(ray_cluster, tmp_path):
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    trainable = lightning_trainable(RecordingClassifier, datamodule=DigitsDataModule,
                                    max_epochs=1, strategy="horovod", num_workers=2)
    existing = set(ray_cluster.util.placement_group_table())
    grid = tune.Tuner(trainable, param_space={"record_dir": str(record_dir),
                                              "trial_tag": tune.grid_search([0, 1])},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert not grid.errors
    records = [json.load(open(path)) for path in glob.glob(str(record_dir / "fit_*.json"))]
    groups = {tag: {r["placement_group"] for r in records if r["trial_tag"] == tag} for tag in (0, 1)}
    assert len(records) == 4 and all(len(group) == 1 for group in groups.values())
    assert groups[0] != groups[1]
    # the two trials' own groups and no other: Horovod made no placement group of its own
    assert set(ray_cluster.util.placement_group_table()) - existing == groups[0] | groups[1]


def test_tune_lightning_with_horovod_trials(ray_cluster, tmp_path):
    # one trial at a time: the second takes the first one's process and warm workers, so
    # Horovod is shut down and initialised again in the same worker processes
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    result = tune_lightning(RecordingClassifier, {"record_dir": str(record_dir),
                                                  "trial_tag": tune.grid_search([0, 1]),
                                                  "lr": 3e-2},
                            datamodule=DigitsDataModule, num_samples=1, max_epochs=3,
                            strategy="horovod", num_workers=2, search_alg="grid",
                            scheduler="fifo", max_concurrent_trials=1,
                            storage_path=str(tmp_path), verbose=0)
    assert len(result.dataframe) == 2 and set(result.dataframe["status"]) == {"TERMINATED"}
    assert result.dataframe["pid"].nunique() == 1  # the same trial process
    fits = {(r["trial_tag"], r["global_rank"]): r for r in
            (json.load(open(path)) for path in glob.glob(str(record_dir / "fit_*.json")))}
    for rank in (0, 1):  # the same worker processes trained both trials
        assert fits[(0, rank)]["pid"] == fits[(1, rank)]["pid"]
    ends = [json.load(open(path)) for path in glob.glob(str(record_dir / "end_*.json"))]
    for tag in (0, 1):  # Horovod, initialised again, still averaged the ranks' gradients
        sums = [round(r["param_sum"], 6) for r in ends if r["trial_tag"] == tag]
        assert len(sums) == 2 and sums[0] == sums[1]
    assert held_out_accuracy(result.load_best_model(), DigitsDataModule()) > 0.5
