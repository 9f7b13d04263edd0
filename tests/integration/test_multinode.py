"""Trials on a two-node Ray cluster (Ray's cluster utilities: two raylets on this machine).

The search joins the cluster through ``RAY_ADDRESS`` alone, as a script submitted to a real
cluster would. Node ranks and local ranks must follow the nodes the workers landed on, DDP must
keep the ranks' weights equal across nodes, a checkpoint from a rank on another node must
reach its trial, and losing a node must cost only a retry.
"""

import glob
import json
import os
import threading

import pytest
import ray
import torch
from ray import tune
from ray.cluster_utils import Cluster
from ray.tune import PlacementGroupFactory

from lightning_tune import lightning_trainable, tune_lightning
from lightning_tune.sharded_checkpoints import load_model_weights
from lightning_tune.trial_history import KeepTrialHistory
from tests.conftest import alive_actors
from tests.models import (DigitsDataModule, GreetingClassifier, NodeRecordingClassifier,
                          RecordingClassifier, ShardRecordingClassifier)

pytestmark = pytest.mark.timeout(300)

# a dead node is noticed within ~2 s instead of Ray's default ~30 s
_FAST_NODE_DEATH = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 500,
                    "health_check_failure_threshold": 4}


@pytest.fixture(scope="module")
def two_nodes():
    if ray.is_initialized():
        ray.shutdown()
    # a custom resource on each node, so a test can place a trial and its workers apart
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"head_node": 1}, "include_dashboard": False,
        "_system_config": _FAST_NODE_DEATH})
    second = cluster.add_node(num_cpus=2, resources={"second_node": 2})
    cluster.wait_for_nodes()
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def joined(two_nodes, monkeypatch):
    """The cluster's address in RAY_ADDRESS; tune_lightning connects by itself."""
    cluster, second = two_nodes
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    yield cluster, second
    ray.shutdown()


def records(directory, prefix):
    return [json.load(open(path)) for path in glob.glob(os.path.join(directory, prefix + "*.json"))]


def trainable_noting_checkpoint_routes(trainable, routes_file):
    """``trainable``, with the trial process noting how each checkpoint reached it."""
    def train(config):
        from lightning_tune import bridge

        assemble = bridge.assembled

        def noting(parts):
            with open(routes_file, "a") as handle:
                handle.write("bytes\n" if any(part.files for part in parts) else "path\n")
            return assemble(parts)

        bridge.assembled = noting
        trainable(config)

    return train


def test_a_checkpoint_from_a_rank_on_another_node_travels_as_bytes(joined, tmp_path):
    """Rank 0 on the second node, its trial process on the head: the bridge sends the
    checkpoint's bytes through the object store (a path would name the other node's disk)."""
    cluster, second = joined
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    routes = tmp_path / "routes.txt"
    trainable = lightning_trainable(NodeRecordingClassifier, datamodule=DigitsDataModule,
                                    max_epochs=2, strategy="ddp", num_workers=2)
    trainable = tune.with_resources(
        trainable_noting_checkpoint_routes(trainable, str(routes)), PlacementGroupFactory(
            [{"CPU": 0.01, "head_node": 0.01}] + [{"CPU": 1, "second_node": 1}] * 2))
    grid = tune.Tuner(trainable, param_space={"record_dir": str(record_dir), "lr": 1e-2},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name="apart",
                                                verbose=0)).fit()
    result = grid[0]
    assert result.error is None
    rank_zero = [r for r in records(record_dir, "epoch_") if r["global_rank"] == 0]
    assert {r["node_id"] for r in rank_zero} == {second.node_id}
    assert {r["trial_node_id"] for r in rank_zero} == {cluster.head_node.node_id}
    assert routes.read_text().split() == ["bytes", "bytes"]  # one checkpoint per epoch
    assert list(result.metrics_dataframe["epoch_seen"]) == [0.0, 1.0]
    with result.checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, "checkpoint"), weights_only=True)
    assert state["epoch"] == 1 and state["state_dict"]  # the whole Lightning checkpoint arrived
    # each rank logged on the second node and sent its log back to the trial's folder
    for rank in (0, 1):
        (pid,) = {r["pid"] for r in records(record_dir, "epoch_") if r["global_rank"] == rank}
        with open(os.path.join(result.path, f"rank_{rank}.log")) as handle:
            log = handle.read()
        assert log.startswith(f"--- sent back from node {second.node_id}\n")
        assert f" pid {pid}\n" in log and log.count(" pid ") == 1


def test_a_rank_failing_on_another_node_sends_its_log_with_its_error(joined, tmp_path):
    cluster, second = joined
    trainable = tune.with_resources(
        lightning_trainable(GreetingClassifier, datamodule=DigitsDataModule, max_epochs=1,
                            strategy="ddp", num_workers=2),
        PlacementGroupFactory([{"CPU": 0.01, "head_node": 0.01}]
                              + [{"CPU": 1, "second_node": 1}] * 2))
    grid = tune.Tuner(trainable, param_space={"fail_rank": 1},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name="failing_apart",
                                                verbose=0)).fit()
    error = str(grid[0].error)
    assert "Training worker rank 1 failed" in error
    assert "The last lines of its log" in error and "about to fail on rank 1" in error
    with open(os.path.join(grid[0].path, "rank_1.log")) as handle:
        log = handle.read()
    assert log.startswith(f"--- sent back from node {second.node_id}\n")
    assert "ValueError: deliberate failure on rank 1" in log


def test_a_sharded_checkpoint_gathers_the_shards_of_both_nodes(joined, tmp_path):
    """FSDP, rank 0 on the second node and rank 1 on the head beside the trial process: each
    node's shard reaches the trial (the second node's as bytes), as one folder that a
    restarted trial resumes from and that loads as one model."""
    cluster, second = joined
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    routes = tmp_path / "routes.txt"
    trainable = lightning_trainable(
        ShardRecordingClassifier, datamodule=DigitsDataModule, max_epochs=2, strategy="fsdp",
        num_workers=2, strategy_kwargs={"state_dict_type": "sharded"})
    trainable = tune.with_resources(
        trainable_noting_checkpoint_routes(trainable, str(routes)), PlacementGroupFactory(
            [{"CPU": 0.01, "head_node": 0.01}, {"CPU": 1, "second_node": 1},
             {"CPU": 1, "head_node": 0.5}]))
    marker = tmp_path / "failed_once"
    grid = tune.Tuner(trainable, param_space={
        "record_dir": str(record_dir), "marker_path": str(marker), "fail_at_epoch": 1, "lr": 1e-2},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="shards_apart", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  # the restart must not lose its first report (see the README)
                                  callbacks=[KeepTrialHistory()])).fit()
    result = grid[0]
    assert result.error is None and marker.exists()
    assert list(result.metrics_dataframe["epoch_seen"]) == [0.0, 1.0]
    assert result.metrics_dataframe["first_epoch_here"].max() == 1  # resumed from the shards
    assert set(routes.read_text().split()) == {"bytes"}
    with result.checkpoint.as_directory() as directory:
        folder = os.path.join(directory, "checkpoint")
        assert {"__0_0.distcp", "__1_0.distcp", ".metadata", "meta.pt"} <= set(os.listdir(folder))
        weights = load_model_weights(folder)
    assert weights["net.0.weight"].shape == (64, 64)
    assert alive_actors("TrainingWorker") == []


def test_workers_spanning_both_nodes_get_node_and_local_ranks(joined, tmp_path):
    cluster, second = joined
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    # 3 one-CPU workers on two 2-CPU nodes: one node holds two ranks, the other one
    result = tune_lightning(
        RecordingClassifier, {"record_dir": str(record_dir), "lr": 1e-2},
        datamodule=DigitsDataModule, num_samples=1, max_epochs=2, strategy="ddp", num_workers=3,
        search_alg="random", scheduler="fifo", storage_path=str(tmp_path), name="spanning",
        verbose=0)

    assert ray.get_runtime_context().gcs_address == cluster.address  # joined, did not start one
    assert result.best_metrics["training_iteration"] == 2
    assert result.best_metrics["val_acc"] > 0.5
    fits = sorted(records(record_dir, "fit_"), key=lambda record: record["global_rank"])
    assert [r["global_rank"] for r in fits] == [0, 1, 2]
    nodes = [r["node_id"] for r in fits]
    assert len(set(nodes)) == 2, "the three workers did not span both nodes"
    first_seen = list(dict.fromkeys(nodes))
    assert [r["node_rank"] for r in fits] == [first_seen.index(node) for node in nodes]
    assert [r["local_rank"] for r in fits] == [nodes[:rank].count(node)
                                               for rank, node in enumerate(nodes)]
    assert {r["num_nodes"] for r in fits} == {2} and {r["world_size"] for r in fits} == {3}
    ends = records(record_dir, "end_")
    assert len(ends) == 3
    assert len({round(r["param_sum"], 6) for r in ends}) == 1, "ranks' weights diverged"
    assert alive_actors("TrainingWorker") == []


def test_losing_a_node_mid_experiment_retries_its_trials_on_the_rest(joined, tmp_path):
    cluster, second = joined
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    lost_node = second.node_id
    # each 2-worker trial fills one 2-CPU node; the one on the second node holds there
    space = {"record_dir": str(record_dir), "trial_tag": tune.grid_search([0, 1]),
             "hold_on_node": lost_node, "lr": 1e-2}

    removed_at = {}
    stop = threading.Event()

    def remove_second_node_once_held():
        """The trial on the second node holds after its second reported epoch: remove the node."""
        while not stop.wait(0.2):
            held = records(record_dir, "held_")
            if held:
                removed_at["trials"] = {r["trial_tag"] for r in held}
                cluster.remove_node(second, allow_graceful=False)
                return

    killer = threading.Thread(target=remove_second_node_once_held, daemon=True)
    killer.start()
    try:
        result = tune_lightning(
            NodeRecordingClassifier, space, datamodule=DigitsDataModule, max_epochs=3,
            strategy="ddp", num_workers=2, search_alg="grid", scheduler="fifo", num_samples=1,
            max_concurrent_trials=2, max_failures=2, storage_path=str(tmp_path),
            name="losing_a_node", verbose=0)
    finally:
        stop.set()
        killer.join()

    assert removed_at and len(removed_at["trials"]) == 1, "no trial was held on the second node"
    frame = result.dataframe
    assert list(frame["status"]) == ["TERMINATED"] * 2
    assert sorted(frame["training_iteration"]) == [3, 3]
    seen = records(record_dir, "epoch_")
    for tag in removed_at["trials"]:
        before = [r["epoch"] for r in seen if r["trial_tag"] == tag and r["node_id"] == lost_node]
        after = [r["epoch"] for r in seen if r["trial_tag"] == tag and r["node_id"] != lost_node]
        assert max(before) >= 1
        assert after, f"trial {tag} was not retried on the remaining node"
        # retried from a checkpoint: the run on the remaining node does not start at epoch 0
        assert max(before) == 1 and min(after) >= 1 and max(after) == 2, (before, after)
    assert {node["NodeID"] for node in ray.nodes() if node["Alive"]} == {cluster.head_node.node_id}
    assert alive_actors("TrainingWorker") == []
