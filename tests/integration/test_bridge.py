"""The bridge carries a checkpoint as a path on the trial's node, as bytes from another node."""

import os

import pytest
import ray

from lightning_tune import bridge as bridge_module

pytestmark = pytest.mark.timeout(120)


@ray.remote(num_cpus=0)
def report_from_a_worker(channel, checkpoint_dir):
    """Rank 0 of a worker reports one result; returns what is left of its directory after."""
    bridge_module.report({"val_loss": 0.5}, checkpoint_dir=checkpoint_dir, channel=channel,
                         rank=0, required_metric="val_loss")
    return sorted(os.listdir(checkpoint_dir))


@pytest.mark.parametrize("same_node", [True, False])
def test_a_checkpoint_reaches_the_trial_whole(ray_cluster, tmp_path, monkeypatch, same_node):
    checkpoint_dir = tmp_path / "checkpoint"
    (checkpoint_dir / "sub").mkdir(parents=True)
    (checkpoint_dir / "checkpoint").write_bytes(os.urandom(3_000_000))
    (checkpoint_dir / "sub" / "extra.txt").write_text("extra")
    received = {}

    def capture(metrics, *, directory=None):
        # the trial reads the checkpoint while the worker still waits
        received.update(metrics=metrics, directory=directory,
                        read={name: open(os.path.join(directory, name), "rb").read()
                              for name in ("checkpoint", os.path.join("sub", "extra.txt"))})

    monkeypatch.setattr(bridge_module, "report_to_tune", capture)
    bridge = bridge_module.Bridge()
    try:
        end = bridge.channel()
        if not same_node:
            end = end._replace(trial_node_id="a-node-that-is-not-this-one")
        left = report_from_a_worker.remote(end, str(checkpoint_dir))
        ready, _ = ray.wait([bridge.next_report()], timeout=60)
        assert ready, "no report arrived"
        bridge.deliver()
        assert ray.get(left, timeout=60) == ["checkpoint", "sub"]
    finally:
        bridge.close()
    expected = {"checkpoint": (checkpoint_dir / "checkpoint").read_bytes(),
                os.path.join("sub", "extra.txt"): b"extra"}
    assert received["metrics"] == {"val_loss": 0.5}
    assert received["read"] == expected
    # on the trial's node the worker's own folder is read; from elsewhere its bytes are
    # written to a folder of the trial process, removed once Tune has the checkpoint
    assert (received["directory"] == str(checkpoint_dir)) is same_node
    if not same_node:
        assert not os.path.exists(received["directory"])
