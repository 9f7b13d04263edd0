"""Where Ray comes from: a local Ray started by the toolkit listens on loopback only."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)

# Starts Ray the way tune_lightning does, runs a task, lists every Ray process's TCP listeners.
_LIST_LISTENERS = r"""
import json, psutil, ray
from lightning_tune.cluster import ensure_ray

ensure_ray(num_cpus=1)

@ray.remote
def node_ip():
    return ray.util.get_node_ip_address()

worker_ip = ray.get(node_ip.remote())
node = ray._private.worker._global_node
pids = {process.process.pid for processes in node.all_processes.values() for process in processes}
for pid in list(pids):
    pids |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
listeners = [(psutil.Process(c.pid).name(), c.laddr.ip) for c in psutil.net_connections("tcp")
             if c.status == psutil.CONN_LISTEN and c.pid in pids]
print(json.dumps({"node_ip": ray.util.get_node_ip_address(), "worker_ip": worker_ip,
                  "listeners": listeners}))
ray.shutdown()
"""


def test_local_ray_started_by_the_toolkit_listens_on_loopback_only():
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", _LIST_LISTENERS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["node_ip"] == report["worker_ip"] == "127.0.0.1"
    names = {name for name, _ in report["listeners"]}
    assert {"gcs_server", "raylet"} <= names, report["listeners"]
    outside = [(name, ip) for name, ip in report["listeners"]
               if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert outside == [], f"Ray processes listening beyond loopback: {outside}"
