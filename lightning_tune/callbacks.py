"""Lightning callbacks that report metrics (and checkpoints) to Ray Tune.

Same call signature as Ray's own Lightning callbacks, so swapping the import is enough. They
work in a single-process Trainer inside a trial and under a Ray strategy, where only rank 0's
report travels to the trial process (see :mod:`lightning_tune.session`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Union

from lightning_tune import session
from lightning_tune._lightning import PerTree

# Hooks that take (trainer, pl_module, ...) and make sense to report from.
_HOOKS = (
    "fit_start", "fit_end", "train_start", "train_end", "train_epoch_start", "train_epoch_end",
    "train_batch_start", "train_batch_end", "validation_start", "validation_end",
    "validation_epoch_start", "validation_epoch_end", "validation_batch_start",
    "validation_batch_end", "test_start", "test_end", "test_epoch_start", "test_epoch_end",
    "test_batch_start", "test_batch_end",
)
MetricsSpec = Union[None, str, List[str], Dict[str, str]]


def _normalise_on(on: Union[str, List[str]]) -> List[str]:
    hooks = [on] if isinstance(on, str) else list(on)
    if not hooks:
        raise ValueError("on= needs at least one hook name, e.g. 'validation_end'.")
    for hook in hooks:
        if hook.removeprefix("on_") not in _HOOKS:
            raise ValueError(f"on={hook!r} is not a hook these callbacks report from; choose "
                             f"from: {', '.join(_HOOKS)}.")
    return [hook.removeprefix("on_") for hook in hooks]


def _normalise_metrics(metrics: MetricsSpec) -> Optional[Dict[str, str]]:
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return {metrics: metrics}
    if isinstance(metrics, dict):
        return dict(metrics)
    return {name: name for name in metrics}


class _TuneReportBase(PerTree):
    _tree_base = "callbacks.Callback"

    def __init__(self, metrics: MetricsSpec = None, on: Union[str, List[str]] = "validation_end"):
        super().__init__()
        self._metrics = _normalise_metrics(metrics)
        self._on = _normalise_on(on)

    def _collect(self, trainer: Any) -> Dict[str, Any]:
        """The metrics to report, as plain numbers, renamed as the user asked."""
        available = trainer.callback_metrics
        if self._metrics is None:
            chosen = {name: value for name, value in available.items()}
        else:
            missing = [lightning for lightning in self._metrics.values() if lightning not in available]
            if missing:
                raise KeyError(
                    f"{type(self).__name__} was asked to report {missing}, which the model has not "
                    f"logged by on_{'/'.join(self._on)}. Logged: {sorted(available) or 'none'}.")
            chosen = {tune_name: available[lightning] for tune_name, lightning in self._metrics.items()}
        return {name: value.item() if hasattr(value, "item") else value for name, value in chosen.items()}

    def _fire(self, trainer: Any) -> None:
        if trainer.sanity_checking:
            return
        self._report(trainer, self._collect(trainer))

    def _report(self, trainer: Any, metrics: Dict[str, Any]) -> None:
        session.report(metrics)


def _make_hook(hook: str):
    def on_hook(self: _TuneReportBase, trainer: Any, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if hook in self._on:
            self._fire(trainer)

    on_hook.__name__ = f"on_{hook}"
    return on_hook


for _hook in _HOOKS:
    setattr(_TuneReportBase, f"on_{_hook}", _make_hook(_hook))


class TuneReportCallback(_TuneReportBase):
    """Report metrics to Tune on the given hook(s).

    ``metrics``: None for every callback metric, a name, a list of names, or a dict
    ``{tune_name: lightning_name}``. ``on``: a hook name ("validation_end") or a list.
    Sanity-check validation is never reported.
    """


class TuneReportCheckpointCallback(_TuneReportBase):
    """Report metrics and a Lightning checkpoint of the full training state to Tune.

    Every rank takes part in the (collective) checkpoint save; only rank 0's file travels.
    ``filename`` names the checkpoint file inside Tune's checkpoint directory.
    """

    def __init__(self, metrics: MetricsSpec = None, filename: str = "checkpoint",
                 save_checkpoints: bool = True, on: Union[str, List[str]] = "validation_end"):
        super().__init__(metrics=metrics, on=on)
        self._filename = filename
        self._save_checkpoints = save_checkpoints

    def _report(self, trainer: Any, metrics: Dict[str, Any]) -> None:
        if not self._save_checkpoints:
            session.report(metrics)
            return
        directory = tempfile.mkdtemp(prefix="lightning_tune_save_")
        try:
            trainer.save_checkpoint(os.path.join(directory, self._filename), weights_only=False)
            session.report(metrics, checkpoint_dir=directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
