"""What listens on the network while trials train: loopback only, for a local Ray.

Each rank holds in the middle of training until the test has listed every listening socket
of every process this test started (the driver, Ray's servers, the trial processes, the
workers, the bridge). A rendezvous server listening on all interfaces (torch's TCPStore,
Horovod's HTTP server as shipped) fails it.
"""

import os
import threading
import time

import psutil
import pytest

from lightning_tune import tune_lightning
from tests.models import DigitsDataModule, ListenerProbeClassifier

pytestmark = pytest.mark.timeout(300)
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def listening_sockets():
    """(pid, process name, address, port) of every listening socket in this process's tree."""
    root = psutil.Process()
    found = []
    for process in [root] + root.children(recursive=True):
        try:
            connections = process.net_connections(kind="inet")
            name = process.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found.extend((process.pid, name, c.laddr.ip, c.laddr.port) for c in connections
                     if c.status == psutil.CONN_LISTEN)
    return found


def check_while_training(handshake_dir, world_size, seen):
    """Once every rank holds mid-training, list the listeners, then let the ranks go on."""
    deadline = time.monotonic() + 200
    ready = [os.path.join(handshake_dir, f"ready_{rank}") for rank in range(world_size)]
    while not all(os.path.exists(path) for path in ready):
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)
    seen["rank_pids"] = {int(open(path).read()) for path in ready}
    seen["sockets"] = listening_sockets()
    open(os.path.join(handshake_dir, "checked"), "w").close()


@pytest.mark.parametrize("strategy", ["ddp", "horovod"])
def test_a_training_trial_listens_on_loopback_only(ray_cluster, tmp_path, strategy):
    handshake_dir = tmp_path / "handshake"
    handshake_dir.mkdir()
    seen = {}
    checker = threading.Thread(target=check_while_training, args=(str(handshake_dir), 2, seen))
    checker.start()
    try:
        result = tune_lightning(ListenerProbeClassifier, {"handshake_dir": str(handshake_dir)},
                                datamodule=DigitsDataModule, max_epochs=1, num_samples=1,
                                strategy=strategy, num_workers=2, scheduler="fifo",
                                storage_path=str(tmp_path), verbose=0)
    finally:
        open(handshake_dir / "checked", "a").close()
        checker.join()
    assert result.best_metrics["training_iteration"] == 1
    assert "sockets" in seen, "the ranks never held mid-training: nothing was checked"
    listed_pids = {pid for pid, _, _, _ in seen["sockets"]}
    assert seen["rank_pids"] <= {p.pid for p in psutil.Process().children(recursive=True)}
    outside = [socket for socket in seen["sockets"] if socket[2] not in LOOPBACK]
    assert outside == [], f"listening beyond loopback while {strategy} trained: {outside}"
    # the ranks' processes (each has listeners of its own, Ray's and gloo's) were listed
    assert listed_pids & seen["rank_pids"], "no listener of a rank was seen"
