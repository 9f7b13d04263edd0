"""Run by test_resume in a subprocess: a search that the test kills part-way.

    python -m tests.interrupted_search STORAGE_PATH PAUSE_MARKER

The second trial holds after two reported epochs (``PausingClassifier``) until the test
kills this process. Each trial logs to MLflow too, a run that the resumed trial continues.
Tune here writes its state only when a trial checkpoints (the test sets
``TUNE_GLOBAL_CHECKPOINT_S`` high), so nothing is being written while the trial holds.
"""

import sys

import ray
from ray import tune

from lightning_tune import tune_lightning
from tests.models import DigitsDataModule, PausingClassifier

if __name__ == "__main__":
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    tune_lightning(PausingClassifier, {"lr": tune.grid_search([0.01, 0.02]),
                                       "pause_marker": sys.argv[2], "pause_lr": 0.02},
                   datamodule=DigitsDataModule, search_alg="grid", scheduler="fifo", max_epochs=4,
                   num_samples=1, max_concurrent_trials=1, storage_path=sys.argv[1],
                   name="interrupted", verbose=0, loggers=["tensorboard", "mlflow"])
