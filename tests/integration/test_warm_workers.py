"""The warm worker pool: consecutive trials reuse worker actors, and nothing leaks between them."""

import glob
import json

import pytest
import torch
from ray import tune

from lightning_tune import tune_lightning
from tests.conftest import alive_actors
from tests.models import DigitsDataModule, LeakyClassifier, PoolProbeClassifier

pytestmark = pytest.mark.timeout(300)


def run_trials(tmp_path, name, trials, reuse_workers=True, scheduler="fifo", max_epochs=1,
               gpus_per_worker=0, rank_zero_in_trial=True):
    """``trials``: one dict of LeakyClassifier arguments per trial, run one after another."""
    record_dir = tmp_path / f"records_{name}"
    record_dir.mkdir()
    space = {"record_dir": str(record_dir), "trial_tag": tune.grid_search(list(range(len(trials)))),
             "leave": tune.sample_from(lambda config: trials[config["trial_tag"]].get("leave", False)),
             "fail": tune.sample_from(lambda config: trials[config["trial_tag"]].get("fail", False)),
             "lr": tune.sample_from(lambda config: trials[config["trial_tag"]].get("lr", 1e-3))}
    result = tune_lightning(LeakyClassifier, space, datamodule=DigitsDataModule,
                            max_epochs=max_epochs, strategy="ddp", num_workers=2,
                            scheduler=scheduler, num_samples=1, max_concurrent_trials=1,
                            reuse_workers=reuse_workers, gpus_per_worker=gpus_per_worker,
                            strategy_kwargs={"rank_zero_in_trial": rank_zero_in_trial},
                            storage_path=str(tmp_path), name=name, verbose=0)
    records = {}
    for path in glob.glob(str(record_dir / "*.json")):
        record = json.load(open(path))
        records[(record["trial_tag"], record["global_rank"])] = record
    return result, records


def test_next_trial_takes_the_warm_workers_and_finds_nothing_left(ray_cluster, tmp_path):
    result, records = run_trials(tmp_path, "warm", [{"leave": True}, {"leave": True},
                                                    {"fail": True}, {}])
    assert len(records) == 8
    statuses = dict(zip(result.dataframe["trial_tag"], result.dataframe["status"]))
    assert statuses == {0: "TERMINATED", 1: "TERMINATED", 2: "ERROR", 3: "TERMINATED"}
    for rank in (0, 1):
        first, second, failed, after = (records[(tag, rank)] for tag in range(4))
        # Tune reused the trial process, and the trial its workers
        assert first["trial_pid"] == second["trial_pid"] == failed["trial_pid"]
        assert first["pid"] == second["pid"] == failed["pid"]
        # workers of a failed job are never parked, and Tune replaces a failed trial's
        # process: the next trial starts new ones
        assert after["pid"] != failed["pid"]
        # rank 0 trains in the trial process itself; rank 1 in a worker actor
        assert (first["pid"] == first["trial_pid"]) == (rank == 0)
        for record in (second, failed):  # found nothing the trial before it left
            assert record["leaked_variable"] is None and record["pl_global_seed"] is None
            assert record["initial_seed"] not in (1234, 1235)
            assert record["process_groups"] == 1  # a new world group, no leftover subgroup
        for record in (first, second, failed, after):  # a fresh model and optimizer each time
            assert record["optimizer_state"] == 0
            assert record["parameter_sum"] == pytest.approx(record["built_sum"])
    # each job draws fresh seeds, different on every rank and in every trial
    seeds = [record["initial_seed"] for record in records.values()]
    assert len(set(seeds)) == len(seeds)
    assert alive_actors("TrainingWorker") == []


def test_a_trial_the_scheduler_stopped_leaves_no_workers_to_reuse(ray_cluster, tmp_path):
    # ASHA (one rung, at 1 epoch) stops the trial that does not learn (lr 0) mid-search; the
    # last trial learns, so it beats the midpoint of the first two and runs on
    result, records = run_trials(tmp_path, "stopped", [{"lr": 1e-2}, {"lr": 0.0}, {"lr": 1e-2}],
                                 scheduler="asha", max_epochs=2)
    epochs = dict(zip(result.dataframe["trial_tag"], result.dataframe["training_iteration"]))
    assert epochs == {0: 2, 1: 1, 2: 2}
    for rank in (0, 1):
        first, stopped, after = (records[(tag, rank)] for tag in range(3))
        assert first["trial_pid"] == stopped["trial_pid"] == after["trial_pid"]
        assert stopped["pid"] == first["pid"]  # a clean finish parks its workers
    # rank 0 trains in the trial process, which Tune keeps; rank 1's worker was killed
    assert records[(2, 0)]["pid"] == records[(1, 0)]["pid"] == records[(1, 0)]["trial_pid"]
    assert records[(2, 1)]["pid"] != records[(1, 1)]["pid"]
    assert alive_actors("TrainingWorker") == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_parked_worker_holds_no_cuda_memory(ray_cluster, tmp_path):
    # the model trains on the GPU, and the next trial on a parked worker finds it emptied
    _, records = run_trials(tmp_path, "cuda", [{"leave": True}, {}], gpus_per_worker=0.5)
    for rank in (0, 1):
        assert records[(1, rank)]["pid"] == records[(0, rank)]["pid"]
        # on the GPU: only this trial's model, nothing the trial before it left
        assert 0 < records[(1, rank)]["cuda_allocated"] == records[(0, rank)]["cuda_allocated"]


@pytest.mark.parametrize("rank_zero_in_trial", [True, False])
def test_reuse_workers_false_starts_new_workers_each_trial(ray_cluster, tmp_path,
                                                           rank_zero_in_trial):
    _, records = run_trials(tmp_path, "cold", [{}, {}], reuse_workers=False,
                            rank_zero_in_trial=rank_zero_in_trial)
    assert len(records) == 4
    for rank in (0, 1):
        assert records[(0, rank)]["pid"] != records[(1, rank)]["pid"]
    # rank 0: the trial process itself, or (turned off) a worker actor like rank 1
    for tag in (0, 1):
        assert (records[(tag, 0)]["pid"] == records[(tag, 0)]["trial_pid"]) == rank_zero_in_trial
        assert records[(tag, 1)]["pid"] != records[(tag, 1)]["trial_pid"]
    assert alive_actors("TrainingWorker") == []


def test_reuse_workers_must_be_a_bool():
    with pytest.raises(TypeError, match="reuse_workers must be True or False"):
        tune_lightning(LeakyClassifier, {"record_dir": "x"}, strategy="ddp", num_workers=2,
                       reuse_workers="yes")


@pytest.mark.parametrize("reuse_workers,rank_zero_in_trial",
                         [(True, True), (False, True), (True, False)])
def test_workers_start_before_the_trial_builds_its_model(ray_cluster, tmp_path, reuse_workers,
                                                         rank_zero_in_trial):
    import ray._private.state as ray_state

    before = {actor_id for actor_id, actor in ray_state.actors().items()
              if actor["ActorClassName"].endswith("TrainingWorker")}
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    result = tune_lightning(PoolProbeClassifier,
                            {"record_dir": str(record_dir), "trial_tag": tune.grid_search([0, 1])},
                            datamodule=DigitsDataModule, max_epochs=1, strategy="ddp",
                            num_workers=2, scheduler="fifo", num_samples=1,
                            max_concurrent_trials=1, reuse_workers=reuse_workers,
                            strategy_kwargs={"rank_zero_in_trial": rank_zero_in_trial},
                            storage_path=str(tmp_path), name="early", verbose=0)
    assert not result.result_grid.errors
    built = [json.load(open(record_dir / f"built_{tag}.json")) for tag in (0, 1)]
    # both trials' workers were there when the model was built: started early, or kept warm;
    # rank 0 needs none when it trains in the trial process
    workers = 1 if rank_zero_in_trial else 2
    assert [record["waiting_workers"] for record in built] == [workers, workers]
    started = {actor_id for actor_id, actor in ray_state.actors().items()
               if actor["ActorClassName"].endswith("TrainingWorker")} - before
    # the workers started early are the ones that trained: no second set was started
    assert len(started) == (workers if reuse_workers else 2 * workers)
    assert alive_actors("TrainingWorker") == []
