"""A worker killed mid-trial ends the trial with a clear error; with a retry it completes.
A rank that stalls ends its run, naming it, however the run was started; a rank that is only
slow to start (a cold process on a busy machine) does not."""

import glob
import os
import signal
import threading
import time

import subprocess
import sys

import lightning.pytorch as pl
import pytest
from ray import tune

from lightning_tune import RayDDPStrategy, lightning_trainable, tune_lightning
from lightning_tune.errors import AllTrialsFailedError, WorkerError
from tests.conftest import alive_actors
from lightning_tune.examples import DigitsClassifier
from tests.models import DigitsDataModule, SlowEpochClassifier, StallingClassifier

pytestmark = pytest.mark.timeout(300)


def kill_a_worker_after_first_report(storage, killed):
    """Background: once the trial reported an epoch, SIGKILL its DDP worker process (rank 1;
    rank 0 trains in the trial process)."""
    import ray._private.state as ray_state

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        # a persisted checkpoint: the trial reported its first epoch (result.json is buffered)
        reported = glob.glob(os.path.join(storage, "*", "*", "checkpoint_000000"))
        workers = [actor for actor in ray_state.actors().values()
                   if actor["ActorClassName"] == "TrainingWorker" and actor["State"] == "ALIVE"]
        if reported and len(workers) == 1:
            os.kill(workers[0]["Pid"], signal.SIGKILL)
            killed.append(time.monotonic())
            return
        time.sleep(0.2)


@pytest.mark.parametrize("max_failures", [0, 1])
def test_killed_worker(ray_cluster, tmp_path, max_failures):
    storage, killed = str(tmp_path), []
    killer = threading.Thread(target=kill_a_worker_after_first_report, args=(storage, killed))
    killer.start()
    trainable = lightning_trainable(SlowEpochClassifier, datamodule=DigitsDataModule,
                                    max_epochs=4, strategy="ddp", num_workers=2)
    grid = tune.Tuner(trainable, param_space={"lr": 0.01, "epoch_sleep": 2.0},
                      run_config=tune.RunConfig(
                          storage_path=storage, name="killed", verbose=0,
                          failure_config=tune.FailureConfig(max_failures=max_failures))).fit()
    ended = time.monotonic()
    killer.join()
    assert killed, "no worker was killed: the test proved nothing"
    result = grid[0]
    if max_failures == 0:
        assert result.error is not None
        assert "Training worker rank" in str(result.error) and "died" in str(result.error)
        assert ended - killed[0] < 60  # the trial ended quickly, it did not hang
    else:
        assert result.error is None
        # Tune may lose the row of the epoch reported just before the kill, so the proof of a
        # resume is what the last attempt itself trained: it began after epoch 0
        last = result.metrics_dataframe.iloc[-1]
        assert last["epoch_seen"] == 3.0 and last["first_epoch_here"] >= 1.0


def test_a_stalled_rank_ends_the_run_naming_it(ray_cluster):
    trainer = pl.Trainer(max_epochs=2, strategy=RayDDPStrategy(num_workers=2, worker_timeout_s=15),
                         logger=False, enable_checkpointing=False, enable_progress_bar=False)
    started = time.monotonic()
    with pytest.raises(WorkerError) as error:
        trainer.fit(StallingClassifier(stall_rank=1), datamodule=DigitsDataModule())
    assert error.value.rank == 1
    assert "made no progress" in str(error.value) and "inside training_step" in str(error.value)
    # not the 600 s the rank sleeps (start-up included: on a loaded machine it took 61 s)
    assert time.monotonic() - started < 180
    assert alive_actors("TrainingWorker") == [] and alive_actors("StallClock") == []


@pytest.fixture
def busy_cpu():
    """A CPU-bound process beside the test, as on a loaded CI machine."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    hog.kill()
    hog.wait()


@pytest.mark.timeout(600)  # two cold workers and an epoch, beside a busy CPU
def test_a_cold_start_on_a_busy_machine_is_not_a_stall(ray_cluster, busy_cpu):
    # new worker processes import torch and Lightning (seconds, more beside the busy
    # process) before they can train: far past this timeout, yet no rank has stalled
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False,
                         strategy=RayDDPStrategy(num_workers=2, worker_timeout_s=10))
    started = time.monotonic()
    trainer.fit(DigitsClassifier(lr=1e-2), datamodule=DigitsDataModule())
    assert trainer.state.finished and trainer.current_epoch == 1
    assert time.monotonic() - started > 10, "the run took less than the timeout: proved nothing"


def test_a_stall_ends_a_tune_lightning_trial(ray_cluster, tmp_path):
    with pytest.raises(AllTrialsFailedError, match=r"rank 1 made no progress .*inside "
                                                   r"training_step; worker_timeout_s=5"):
        tune_lightning(StallingClassifier, {"stall_rank": 1}, datamodule=DigitsDataModule,
                       max_epochs=1, num_samples=1, strategy="ddp", num_workers=2,
                       worker_timeout_s=5, scheduler="fifo", storage_path=str(tmp_path),
                       verbose=0)


def test_a_stall_ends_a_horovod_trial_of_lightning_trainable(ray_cluster, tmp_path):
    trainable = lightning_trainable(StallingClassifier, datamodule=DigitsDataModule,
                                    max_epochs=1, strategy="horovod", num_workers=2,
                                    worker_timeout_s=5)
    started = time.monotonic()
    grid = tune.Tuner(trainable, param_space={"stall_rank": 0},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name="stalled",
                                                verbose=0)).fit()
    error = str(grid[0].error)
    assert "rank 0 made no progress" in error and "inside training_step" in error
    assert "The last lines of its log" in error and "stalling on rank 0" in error
    assert time.monotonic() - started < 120  # not the 600 s the rank sleeps


def test_worker_timeout_must_be_positive():
    with pytest.raises(ValueError, match="worker_timeout_s must be a number of seconds > 0"):
        RayDDPStrategy(num_workers=2, worker_timeout_s=0)
