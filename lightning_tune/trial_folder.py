"""The folder a Tune trial writes its own files into (logs, config, trackers' runs).

``tune.get_context().get_trial_dir()`` is not one folder: a fresh trial actor is told the
driver's staging folder, a reused one its working folder. What the trial copies into the
experiment (from any node, with ``SyncConfig(sync_artifacts=True)``, which ``tune_lightning``
sets) is its working folder; the driver copies its staging folder at the end of the search,
over what the trial copied, so a restarted trial's newer logs would lose to older ones.
"""

from __future__ import annotations

from typing import Optional


def trial_folder() -> Optional[str]:
    """This Tune trial's working folder where the trial copies it into the experiment, else
    the folder Tune names (a user's own Tuner that syncs no artifacts); None outside Tune."""
    from ray import tune

    context = tune.get_context()
    named = context.get_trial_dir()
    storage = context.get_storage() if named is not None else None
    if storage is None or not storage.sync_config.sync_artifacts:
        return named
    return storage.trial_working_directory
