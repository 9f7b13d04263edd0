"""A datamodule holding 300 MB goes into Ray's object store once: every trial and worker
trains on it, while the trainable, the control store (GCS) and the driver do not grow with
the number of trials; so does a 200 MB constant of the space, which the experiment's folder
does not hold either (local Ray)."""

import ctypes
import gc

import psutil
import pytest
import ray

import torch

from lightning_tune import TrialSpec, load_result, resume, tune_lightning
from lightning_tune.errors import InvalidArgumentError
from lightning_tune.shared_data import SharedConstant
from lightning_tune.trainable import trainable_for
from tests.models import (BallastClassifier, BallastDataModule, SlowBallastClassifier,
                          TableDataModule)

pytestmark = pytest.mark.timeout(600)

MEGABYTES = 300


@pytest.fixture(scope="module")
def ray_cpus():
    return 3


@pytest.fixture(scope="module")
def data():
    return BallastDataModule(MEGABYTES)


def memory_mb():
    """The GCS server's resident memory and the driver's own (unique) memory, in MB.

    Freed memory is handed back to the system first (glibc keeps it otherwise), so that the
    driver's figure counts what it holds, not what pickling the datamodule once borrowed.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    gcs = [child for child in psutil.Process().children(recursive=True)
           if child.name().startswith("gcs_server")]
    assert len(gcs) == 1, gcs  # this test's Ray, started by this process
    return (gcs[0].memory_info().rss / 2 ** 20,
            psutil.Process().memory_full_info().uss / 2 ** 20)


def test_the_trainable_carries_a_reference_not_the_data(ray_cluster, data):
    trainable = trainable_for(TrialSpec(model_cls=BallastClassifier, datamodule=data))
    assert len(ray.cloudpickle.dumps(trainable)) < 2 ** 20  # Tune keeps this in the GCS


def search(data, tmp_path, name, trials, **kwargs):
    return tune_lightning(BallastClassifier, {"lr": 0.02}, datamodule=data,
                          num_samples=trials, max_epochs=1, scheduler="fifo",
                          storage_path=str(tmp_path), name=name, verbose=0, **kwargs)


def test_trials_and_workers_train_on_it_and_nothing_grows_per_trial(ray_cluster, data,
                                                                   tmp_path):
    growth = {}
    for trials in (1, 4):
        gcs_before, driver_before = memory_mb()
        result = search(data, tmp_path, f"trials_{trials}", trials)
        gcs_after, driver_after = memory_mb()
        growth[trials] = (gcs_after - gcs_before, driver_after - driver_before)
        assert (result.dataframe["ballast_mb"] == MEGABYTES).all()  # each trial had it all
    # a copy in the GCS would add 300 MB to it; a copy per trial 300 MB a trial. The driver
    # holds one: the object-store copy it wrote, mapped in its memory, which Tune keeps (it
    # keeps every tune.with_parameters reference for the driver's lifetime)
    for trials, (gcs, driver) in growth.items():
        assert gcs < 100 and driver < MEGABYTES + 100, growth
    assert growth[4][0] - growth[1][0] < 50 and growth[4][1] - growth[1][1] < 100, growth
    # DDP: rank 0 trains on a worker, which fetched the data by its reference
    result = search(data, tmp_path, "ddp", 2, strategy="ddp", num_workers=2,
                    cpus_per_worker=0.5)
    assert (result.dataframe["ballast_mb"] == MEGABYTES).all()


def folder_mb(path):
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) / 2 ** 20


def test_a_large_constant_of_the_space_is_shared_not_copied_per_trial(ray_cluster, tmp_path):
    table = torch.ones(200 * 2 ** 20 // 4)  # 200 MB of float32, routed to the datamodule

    def search(name, trials):
        return tune_lightning(BallastClassifier, {"lr": 0.02, "table": table},
                              datamodule=TableDataModule, num_samples=trials, max_epochs=1,
                              scheduler="fifo", storage_path=str(tmp_path), name=name,
                              verbose=0)

    growth = {}
    for trials in (1, 3):
        gcs_before, driver_before = memory_mb()
        result = search(f"table_{trials}", trials)
        gcs_after, driver_after = memory_mb()
        growth[trials] = (gcs_after - gcs_before, driver_after - driver_before)
        assert (result.dataframe["ballast_mb"] == 200).all()  # each trial built with it all
        # Tune's state, the trials' params and checkpoints: the constant by name, not in full
        assert folder_mb(tmp_path / f"table_{trials}") < 20
    # left in the space, each trial's config would hold a copy in the driver
    assert growth[3][0] - growth[1][0] < 50 and growth[3][1] - growth[1][1] < 100, growth
    assert result.best_config["table"] == SharedConstant("table", 200.0)
    assert isinstance(result.load_best_model(), BallastClassifier)  # the driver holds it
    # read back from the folder, the constant must be given again, by name
    with pytest.raises(InvalidArgumentError, match=r"\['table'\] were large constants"):
        load_result(result.experiment_path).load_best_model()
    model = load_result(result.experiment_path).load_best_model(constants={"table": table})
    assert torch.equal(model.net[0].weight, result.load_best_model().net[0].weight)
    # cut short by a time budget, then continued: each trial fetches the constant again
    space = {"lr": 0.02, "table": table, "epoch_sleep": 1.0}
    settings = dict(datamodule=TableDataModule, num_samples=1, max_epochs=6, scheduler="fifo",
                    storage_path=str(tmp_path), name="cut", verbose=0)
    cut = tune_lightning(SlowBallastClassifier, space, time_budget_s=2, **settings)
    assert cut.interrupted
    cut_epochs = cut.result_grid[0].metrics_dataframe["training_iteration"].max()
    with pytest.raises(InvalidArgumentError, match=r"constants=\{'table': \.\.\.\}"):
        resume(cut.experiment_path)
    again = tune_lightning(SlowBallastClassifier, space, resume=True, **settings)
    history = again.result_grid[0].metrics_dataframe
    assert cut_epochs < 6 and list(history["training_iteration"]) == list(range(1, 7))
    assert (history["ballast_mb"] == 200).all() and not again.interrupted
