"""A worker process imports what a rank needs, and not Ray Tune (over a second of CPU in
every new worker: the package pulls in pandas and Ray's data library)."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

WORKER_SIDE = ("lightning_tune.launchers.worker", "lightning_tune.strategies",
               "lightning_tune.callbacks", "lightning_tune.trackers", "lightning_tune.bridge",
               "lightning_tune.checkpoint_write", "lightning_tune.shared_data")


def test_the_modules_a_worker_unpickles_do_not_import_ray_tune():
    code = ("import sys\n" + "".join(f"import {module}\n" for module in WORKER_SIDE)
            + "print(sorted(name for name in sys.modules if name.startswith('ray.tune')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=100)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_process_without_tune_is_not_a_trial():
    code = ("from lightning_tune.bridge import in_tune_trial\nimport sys\n"
            "print(in_tune_trial(), 'ray.tune' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=100)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
