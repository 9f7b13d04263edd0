"""RayDDPStrategy outside Tune: real DDP over gloo between Ray actors on a local Ray."""

import glob
import json
import os
import signal
import threading
import time

import lightning.pytorch as pl
import pytest
import torch

from lightning_tune import RayDDPStrategy
from lightning_tune.errors import TrialShapeError, WorkerError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from tests.conftest import alive_actors
from tests.models import FailingOnRank, RecordingClassifier, UnpicklableClassifier

pytestmark = pytest.mark.timeout(180)


def make_trainer(max_epochs=2, num_workers=2, **kwargs):
    return pl.Trainer(max_epochs=max_epochs, strategy=RayDDPStrategy(num_workers=num_workers, **kwargs),
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)


def assert_no_workers_left(ray):
    assert alive_actors("TrainingWorker") == []
    groups = ray.util.placement_group_table().values()
    assert all(group["state"] == "REMOVED" for group in groups)


def test_fit_trains_the_driver_model_and_brings_rank0_state_back(ray_cluster, tmp_path):
    model = RecordingClassifier(record_dir=str(tmp_path), lr=1e-2)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    trainer = make_trainer(max_epochs=2)
    trainer.fit(model, datamodule=DigitsDataModule())

    assert any(not torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert {"val_loss", "val_acc", "train_loss"} <= set(trainer.callback_metrics)
    assert "val_loss" in trainer.logged_metrics
    assert trainer.state.finished and trainer.current_epoch == 2
    # 1,257 rows, batch 64: 20 batches an epoch split over 2 ranks -> 10 steps per rank per epoch
    assert trainer.global_step == 20
    records = sorted((json.load(open(path)) for path in glob.glob(str(tmp_path / "fit_*.json"))),
                     key=lambda record: record["global_rank"])
    assert [r["global_rank"] for r in records] == [0, 1]
    assert [r["local_rank"] for r in records] == [0, 1]
    assert {r["node_rank"] for r in records} == {0} and {r["world_size"] for r in records} == {2}
    assert {r["backend"] for r in records} == {"gloo"}
    assert len({records[0]["pid"], records[1]["pid"], os.getpid()}) == 3  # two workers, not here
    assert_no_workers_left(ray_cluster)


def test_fit_twice_then_test_validate_predict(ray_cluster):
    model, datamodule = DigitsClassifier(lr=1e-2), DigitsDataModule()
    trainer = make_trainer(max_epochs=1)
    trainer.fit(model, datamodule=datamodule)
    first_loss = float(trainer.callback_metrics["val_loss"])
    trainer.fit_loop.max_epochs = 3
    trainer.fit(model, datamodule=datamodule)  # continues where the first fit stopped
    assert trainer.current_epoch == 3
    assert float(trainer.callback_metrics["val_loss"]) < first_loss

    tested = trainer.test(model, datamodule=datamodule)
    assert tested[0]["test_acc"] > 0.5
    validated = trainer.validate(model, datamodule=datamodule)
    assert validated[0]["val_loss"] == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    predictions = trainer.predict(model, datamodule=datamodule)
    assert predictions and all(batch.dtype == torch.long for batch in predictions)
    assert_no_workers_left(ray_cluster)


def test_init_hook_runs_on_every_worker(ray_cluster, tmp_path):
    marker_dir = str(tmp_path)

    def hook():
        open(os.path.join(marker_dir, f"hook_{os.getpid()}"), "w").close()

    trainer = make_trainer(max_epochs=1, init_hook=hook)
    trainer.fit(DigitsClassifier(), datamodule=DigitsDataModule())
    assert len(glob.glob(os.path.join(marker_dir, "hook_*"))) == 2


def test_exception_on_rank_1_reaches_the_driver_with_rank_and_traceback(ray_cluster):
    trainer = make_trainer(max_epochs=2)
    with pytest.raises(WorkerError) as error:
        trainer.fit(FailingOnRank(fail_rank=1), datamodule=DigitsDataModule())
    assert error.value.rank == 1
    assert "deliberate failure on rank 1" in str(error.value)
    assert "training_step" in str(error.value)  # the worker's traceback
    assert isinstance(error.value.__cause__, ValueError)
    assert_no_workers_left(ray_cluster)


def test_keyboard_interrupt_tears_workers_down(ray_cluster, tmp_path):
    trainer = make_trainer(max_epochs=1000)
    fitting = threading.Event()
    outcome = {}

    def ctrl_c_while_fitting(signum, frame):
        # a KeyboardInterrupt outside fit (fit failed early, or already returned) would end
        # the whole pytest session: only raise it while fit runs
        if fitting.is_set():
            raise KeyboardInterrupt

    def press_ctrl_c_once_both_ranks_train():
        deadline = time.monotonic() + 120
        while len(glob.glob(str(tmp_path / "fit_*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, ctrl_c_while_fitting)
    presser = threading.Thread(target=press_ctrl_c_once_both_ranks_train, daemon=True)
    presser.start()
    try:
        try:
            fitting.set()
            trainer.fit(RecordingClassifier(record_dir=str(tmp_path)), datamodule=DigitsDataModule())
        finally:
            fitting.clear()
    except SystemExit:  # Lightning exits after a KeyboardInterrupt
        outcome["exit"] = True
    except KeyboardInterrupt:  # arrived just as fit returned: caught, never the session's
        outcome["late"] = True
    finally:
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert outcome == {"exit": True} and trainer.interrupted
    assert_no_workers_left(ray_cluster)


def test_unpicklable_model_names_the_attribute(ray_cluster):
    trainer = make_trainer(max_epochs=1)
    with pytest.raises(TypeError, match=r"self\.metrics_lock \(a _thread\.lock\)"):
        trainer.fit(UnpicklableClassifier(), datamodule=DigitsDataModule())


def test_more_workers_than_the_cluster_holds_fails_fast(ray_cluster):
    trainer = make_trainer(num_workers=8)
    with pytest.raises(TrialShapeError, match="more than the Ray cluster can ever hold"):
        trainer.fit(DigitsClassifier(), datamodule=DigitsDataModule())


def test_use_gpu_without_gpus_in_the_cluster(ray_cluster):
    trainer = make_trainer(use_gpu=True)
    with pytest.raises(TrialShapeError, match="the Ray cluster has none"):
        trainer.fit(DigitsClassifier(), datamodule=DigitsDataModule())


def test_pytorch_lightning_trainer(ray_cluster):
    import pytorch_lightning

    from tests.models_pl import PLDigitsClassifier, PLDigitsDataModule

    strategy = RayDDPStrategy.for_tree("pytorch_lightning")(num_workers=2)
    model = PLDigitsClassifier(lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = pytorch_lightning.Trainer(max_epochs=2, strategy=strategy, logger=False,
                                        enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=PLDigitsDataModule())
    assert "val_loss" in trainer.callback_metrics and trainer.current_epoch == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
