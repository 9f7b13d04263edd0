"""Trial names that say what a trial tried: its id and its searched values."""

from __future__ import annotations

from typing import Any, Sequence


def _readable(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class TrialNamer:
    """Names a trial ``<trial id>_lr=0.0013,hidden_size=64``: its searched values, readable.

    Tune names both the trial and its folder with it, and the trackers name their runs after
    the folder, so a TensorBoard or MLflow run says which config it trained.
    """

    def __init__(self, searched: Sequence[str]) -> None:
        self.searched = list(searched)

    def __call__(self, trial: Any) -> str:
        # values Tune resolves later (tune.sample_from) are still placeholders here: left out
        # a dotted LightningCLI key is named by its last part: model.init_args.lr -> lr
        values = ",".join(f"{name.rsplit('.', 1)[-1]}={_readable(trial.config[name])}"
                          for name in self.searched
                          if isinstance(trial.config.get(name), (int, float, str, bool)))
        return f"{trial.trial_id}_{values}"[:120] if values else trial.trial_id
