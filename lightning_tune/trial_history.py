"""Keep a restarted trial's reported history whole.

When a trial starts again from a checkpoint (a retry after a failure, a PBT exploit, a
resumed experiment), Tune's result loggers first copy the trial's ``result.json`` and
``progress.csv`` from storage over the driver's own copies. Storage is only synced now and
then, so the rows reported since the last sync vanish from ``metrics_dataframe``. This
callback, which Tune runs before its loggers, first brings storage up to date.
"""

from __future__ import annotations

import os

import pyarrow.fs
from ray import tune

_RESULT_FILES = ("result.json", "progress.csv")


class KeepTrialHistory(tune.Callback):
    def on_trial_start(self, iteration, trials, trial, **info):
        if not trial.checkpoint:
            return  # a first start: the loggers restore nothing
        storage = trial.storage
        for name in _RESULT_FILES:
            local = os.path.join(trial.local_path, name)
            remote = os.path.join(storage.trial_fs_path, name)
            if not os.path.exists(local) or (
                    isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem)
                    and os.path.realpath(local) == os.path.realpath(remote)):
                continue  # nothing of ours (a resumed driver), or one file in one place
            pyarrow.fs.copy_files(local, remote, destination_filesystem=storage.storage_filesystem)
