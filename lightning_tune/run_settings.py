"""How a search's driver runs Tune: its RunConfig, and which of Tune's defaults it changes.

Tune's own TensorBoard logger is left out: it writes Tune's copy of the reported metrics into
a driver staging folder, and its console hint points there, while each trial's Lightning
loggers already write the full metrics (and the config as hyperparameters) into the trial's
folder (see :mod:`lightning_tune.trackers`). Tune's JSON and CSV result files stay: results,
resume and plots read them.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from ray.tune import CheckpointConfig, FailureConfig, RunConfig, SyncConfig
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.stopper import CombinedStopper, Stopper

from lightning_tune.stopping import SearchTimeBudget
from lightning_tune.trial_history import KeepTrialHistory

_ENVIRONMENT = {
    # Tune adds its TensorBoard logger (and the others) unless told not to: ours are given
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Tune warns when checkpoints come faster than this, as small trials' do: each checkpoint
    # past num_to_keep forces an experiment snapshot (cheap on local storage)
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def run_config(*, name: str, storage_path: str, verbose: int, max_failures: int, metric: str,
               mode: str, scheduler: object, budget: SearchTimeBudget,
               stop: Optional[Stopper]) -> RunConfig:
    """The RunConfig of a new search.

    ``budget`` is always there, so that ``resume`` can give a search a budget it had not.
    """
    return RunConfig(
        name=name, storage_path=storage_path, verbose=verbose,
        failure_config=FailureConfig(max_failures=max_failures),
        stop=budget if stop is None else CombinedStopper(stop, budget),
        # KeepTrialHistory first: it brings storage up to date before the loggers read it
        callbacks=[KeepTrialHistory(), budget, JsonLoggerCallback(), CSVLoggerCallback()],
        # a trial's own files (its config.yaml, its trackers' logs) are written into its
        # working folder; Tune copies that folder into the experiment on every checkpoint
        sync_config=SyncConfig(sync_artifacts=True),
        # PBT exploits other trials' recent checkpoints, so it keeps a few more
        checkpoint_config=CheckpointConfig(
            num_to_keep=4 if scheduler == "pbt" else 2, checkpoint_score_attribute=metric,
            checkpoint_score_order=mode))


@contextlib.contextmanager
def tune_environment(own_loggers: bool = True) -> Iterator[None]:
    """Tune's settings for a search, set while it runs and put back after it.

    ``own_loggers``: False for an experiment started before its RunConfig named Tune's result
    loggers (resumed, it keeps Tune's defaults, or it would write no results).
    """
    wanted = dict(_ENVIRONMENT)
    if not own_loggers:
        del wanted["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"]
    wanted = {key: value for key, value in wanted.items() if key not in os.environ}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key in wanted:
            os.environ.pop(key, None)
