"""Lightning callbacks that report metrics (and checkpoints) to Ray Tune.

Same call signature as Ray's own Lightning callbacks, so swapping the import is enough. They
work in a single-process Trainer inside a trial and under a Ray strategy, where only rank 0's
report travels to the trial process (see :mod:`lightning_tune.bridge`). The classes here
subclass ``lightning.pytorch.Callback``; their ``pytorch_lightning`` twins are in
:mod:`lightning_tune.pytorch_lightning`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Union

import lightning.pytorch as pl

from lightning_tune import bridge
from lightning_tune.checkpoint_write import direct_save
from lightning_tune.errors import InvalidArgumentError, MetricNotReportedError
from lightning_tune.lightning_trees import LIGHTNING, PerTree, TreeTwin, tree_module

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
        raise InvalidArgumentError("on= needs at least one hook name, e.g. 'validation_end'.")
    for hook in hooks:
        if hook.removeprefix("on_") not in _HOOKS:
            raise InvalidArgumentError(f"on={hook!r} is not a hook these callbacks report from; choose "
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


class TuneReportBase(PerTree):
    """What both report callbacks share: which metrics, on which hooks, to where.

    ``required_metric``: set by ``lightning_trainable`` to the metric (or metrics) the search
    optimises; a report without it fails where it starts, naming the metrics that were logged.
    """

    required_metric: Union[None, str, List[str]] = None

    def __init__(self, metrics: MetricsSpec = None, on: Union[str, List[str]] = "validation_end"):
        super().__init__()
        self._metrics = _normalise_metrics(metrics)
        self._on = _normalise_on(on)

    @property
    def checkpoint_filename(self) -> Optional[str]:
        """The checkpoint file's name inside each reported checkpoint (None: no checkpoint)."""
        return None

    def _collect(self, trainer: Any) -> Dict[str, Any]:
        """The metrics to report, as plain numbers, renamed as the user asked."""
        available = trainer.callback_metrics
        if self._metrics is None:
            chosen = {name: value for name, value in available.items()}
        else:
            missing = [lightning for lightning in self._metrics.values() if lightning not in available]
            if missing:
                raise MetricNotReportedError(
                    f"{type(self).__name__} was asked to report {missing}, which the model has not "
                    f"logged by on_{'/'.join(self._on)}. Logged: {sorted(available) or 'none'}.")
            chosen = {tune_name: available[lightning] for tune_name, lightning in self._metrics.items()}
        return {name: value.item() if hasattr(value, "item") else value for name, value in chosen.items()}

    def _fire(self, trainer: Any) -> None:
        if trainer.sanity_checking:
            return
        self._report(trainer, self._collect(trainer))

    def _report(self, trainer: Any, metrics: Dict[str, Any],
                checkpoint_dir: Optional[str] = None, checkpoint_parts: int = 1) -> None:
        bridge.report(metrics, checkpoint_dir=checkpoint_dir,
                      channel=getattr(trainer.strategy, "report_channel", None),
                      rank=trainer.global_rank, required_metric=self.required_metric,
                      checkpoint_parts=checkpoint_parts)


def _make_hook(hook: str):
    def on_hook(self: TuneReportBase, trainer: Any, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        if hook in self._on:
            self._fire(trainer)

    on_hook.__name__ = f"on_{hook}"
    return on_hook


for _hook in _HOOKS:
    setattr(TuneReportBase, f"on_{_hook}", _make_hook(_hook))


class TuneReportCallbackImpl(TuneReportBase):
    """Report metrics to Tune on the given hook(s).

    ``metrics``: None for every callback metric, a name, a list of names, or a dict
    ``{tune_name: lightning_name}``. ``on``: a hook name ("validation_end") or a list.
    Sanity-check validation is never reported.
    """


class TuneReportCheckpointCallbackImpl(TuneReportBase):
    """Report metrics and a Lightning checkpoint of the full training state to Tune.

    Every rank takes part in the (collective) checkpoint save; only rank 0's file travels.
    ``filename`` names the checkpoint file inside Tune's checkpoint directory.
    """

    def __init__(self, metrics: MetricsSpec = None, filename: str = "checkpoint",
                 save_checkpoints: bool = True, on: Union[str, List[str]] = "validation_end"):
        super().__init__(metrics=metrics, on=on)
        if not isinstance(filename, str) or not filename or os.path.isabs(filename):
            raise InvalidArgumentError(f"filename must be a relative file name such as "
                                       f"'model.ckpt', got {filename!r}.")
        self._filename = filename
        self._save_checkpoints = save_checkpoints

    @property
    def checkpoint_filename(self) -> Optional[str]:
        return self._filename if self._save_checkpoints else None

    def _report(self, trainer: Any, metrics: Dict[str, Any],
                checkpoint_dir: Optional[str] = None) -> None:
        if not self._save_checkpoints:
            super()._report(trainer, metrics)
            return
        # one folder name for all ranks: FSDP's sharded save writes every rank's shard into
        # rank 0's path (on each node, the folder of that name there); made beside Tune's
        # checkpoint folders when one node trains (the trial process then moves it in rather
        # than copying it), else other nodes would make that folder's parents for nothing
        channel = getattr(trainer.strategy, "report_channel", None)
        parent = bridge.checkpoint_parent(channel) if trainer.num_nodes == 1 else None
        own = tempfile.mkdtemp(prefix=".lightning_tune_save_", dir=parent)
        directory = trainer.strategy.broadcast(own)
        if directory != own:
            os.rmdir(own)
        # a node that shares rank 0's disk (one machine, a network file system) finds the
        # folder there already: rank 0 removes it, once its report reached Tune
        owned = directory == own or not os.path.exists(directory)
        os.makedirs(directory, exist_ok=True)
        try:
            path = os.path.join(directory, self._filename)
            with direct_save(trainer):  # the file written once, no in-memory copy
                trainer.save_checkpoint(path, weights_only=False)
            sharded = os.path.isdir(path)  # a folder of shards, one file per rank
            if trainer.global_rank == 0:
                super()._report(trainer, metrics, checkpoint_dir=directory,
                                checkpoint_parts=trainer.num_nodes if sharded else 1)
            elif sharded and trainer.local_rank == 0:  # this node's shards, for rank 0's report
                bridge.send_checkpoint_part(directory, channel)
        finally:
            # one rank per node removes it, after its report or part reached Tune
            if owned and trainer.local_rank == 0:
                shutil.rmtree(directory, ignore_errors=True)


class TrialHyperparametersImpl(PerTree):
    """Applies a trial's current config to optimizers restored from an older config.

    PBT restarts a trial from a donor's checkpoint with mutated hyperparameters; Lightning's
    restore would put the donor's optimizer hyperparameters (its lr, momentum ...) back. This
    callback stores the config in the checkpoint and, when the restored one differs, copies
    the hyperparameters of freshly configured optimizers over the restored ones (keeping
    their state, such as Adam's moments). A plain restart with the same config is untouched.
    """

    def __init__(self, config: Dict[str, Any]) -> None:
        super().__init__()
        self._config = dict(config)
        self._restored_config: Optional[Dict[str, Any]] = None

    def state_dict(self) -> Dict[str, Any]:
        return {"config": self._config}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._restored_config = state_dict.get("config")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._restored_config is None or self._restored_config == self._config:
            return
        init = tree_module(self.lightning_tree, "core.optimizer")._init_optimizers_and_lr_schedulers
        fresh_optimizers, fresh_schedulers = init(pl_module)
        for restored, fresh in zip(trainer.optimizers, fresh_optimizers):
            for group, fresh_group in zip(restored.param_groups, fresh.param_groups):
                group.update({key: value for key, value in fresh_group.items() if key != "params"})
        for restored, fresh in zip(trainer.lr_scheduler_configs, fresh_schedulers):
            if hasattr(restored.scheduler, "base_lrs") and hasattr(fresh.scheduler, "base_lrs"):
                restored.scheduler.base_lrs = list(fresh.scheduler.base_lrs)


class TuneReportCallback(TuneReportCallbackImpl, pl.Callback, metaclass=TreeTwin):
    __doc__ = TuneReportCallbackImpl.__doc__
    lightning_tree = LIGHTNING
    family = "TuneReportCallback"


class TuneReportCheckpointCallback(TuneReportCheckpointCallbackImpl, pl.Callback,
                                   metaclass=TreeTwin):
    __doc__ = TuneReportCheckpointCallbackImpl.__doc__
    lightning_tree = LIGHTNING
    family = "TuneReportCheckpointCallback"


class TrialHyperparameters(TrialHyperparametersImpl, pl.Callback, metaclass=TreeTwin):
    __doc__ = TrialHyperparametersImpl.__doc__
    lightning_tree = LIGHTNING
    family = "TrialHyperparameters"
