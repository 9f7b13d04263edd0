"""Run by test_resume in a subprocess: a search that the test kills part-way.

    python -m tests.interrupted_search STORAGE_PATH
"""

import sys

import ray
from ray import tune

from lightning_tune import tune_lightning
from tests.models import DigitsDataModule, SlowEpochClassifier

if __name__ == "__main__":
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    tune_lightning(SlowEpochClassifier, {"lr": tune.grid_search([0.01, 0.02]), "epoch_sleep": 1.5},
                   datamodule=DigitsDataModule, search_alg="grid", scheduler="fifo", max_epochs=4,
                   num_samples=1,
                   max_concurrent_trials=1, storage_path=sys.argv[1], name="interrupted",
                   verbose=0)
