"""The trainable factory: a LightningModule class in, a Tune function trainable out."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from ray import tune
from ray.tune import PlacementGroupFactory

from lightning_tune import session
from lightning_tune._lightning import tree_module, tree_of
from lightning_tune._reuse import start_afresh
from lightning_tune._routing import ConfigRouting
from lightning_tune.callbacks import (TrialHyperparameters, TuneReportCheckpointCallback,
                                     _TuneReportBase)
from lightning_tune.resources import check_worker_shape, get_tune_resources
from lightning_tune.strategies.horovod import import_horovod
from lightning_tune.strategies import RayDDPStrategy, RayHorovodStrategy

STRATEGIES = (None, "ddp", "horovod")
# Trainer arguments this factory sets from its own parameters.
_RESERVED_TRAINER_KWARGS = {"max_epochs": "max_epochs", "strategy": "strategy",
                            "callbacks": "callbacks", "num_nodes": "num_workers",
                            "devices": "num_workers / gpus_per_worker"}


def check_model_class(model_cls: Any) -> str:
    """The Lightning tree of ``model_cls``; a clear error when it is not a LightningModule class."""
    if not isinstance(model_cls, type):
        hint = (" Pass the class itself (e.g. MyModel, not MyModel(...)): each trial builds its "
                "own model from its config.") if tree_of(model_cls) else ""
        raise TypeError(f"model_cls must be a LightningModule subclass, got an instance of "
                        f"{type(model_cls).__name__}.{hint}")
    tree = tree_of(model_cls)
    if tree is None or not issubclass(model_cls, tree_module(tree).LightningModule):
        raise TypeError(f"model_cls must be a LightningModule subclass (lightning.pytorch or "
                        f"pytorch_lightning), got {model_cls.__qualname__}.")
    return tree


def check_datamodule(datamodule: Any) -> None:
    if datamodule is None:
        return
    cls = datamodule if isinstance(datamodule, type) else type(datamodule)
    tree = tree_of(cls)
    if tree is None or not issubclass(cls, tree_module(tree).LightningDataModule):
        raise TypeError(f"datamodule must be a LightningDataModule class or instance, got "
                        f"{datamodule!r}.")


def check_search_settings(metric: str, mode: str, max_epochs: int) -> None:
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric must be the name of a logged metric, got {metric!r}.")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise ValueError(f"max_epochs must be an integer >= 1, got {max_epochs!r}.")


def trial_resources(strategy: Optional[str], num_workers: int, cpus_per_worker: float,
                    gpus_per_worker: float) -> PlacementGroupFactory:
    """What one trial reserves: its workers' bundles, or one bundle when it trains itself.

    With workers the trial process only coordinates, so its head bundle holds no CPU (as
    Ray Train does for its coordinator) and a 2-worker trial fits a 2-CPU machine.
    """
    if strategy is None:
        bundle = {"CPU": cpus_per_worker}
        if gpus_per_worker:
            bundle["GPU"] = gpus_per_worker
        return PlacementGroupFactory([bundle])
    return get_tune_resources(num_workers, cpus_per_worker, gpus_per_worker, head_cpus=0)


def lightning_trainable(model_cls: type, *, datamodule: Any = None, metric: str = "val_loss",
                        mode: str = "min", max_epochs: int = 10, strategy: Optional[str] = None,
                        num_workers: int = 1, cpus_per_worker: float = 1,
                        gpus_per_worker: float = 0,
                        trainer_kwargs: Optional[Dict[str, Any]] = None,
                        callbacks: Optional[Sequence[Any]] = None,
                        worker_timeout_s: Optional[float] = None,
                        reuse_workers: bool = True) -> Callable[[dict], None]:
    """A Tune function trainable, resources attached, that trains ``model_cls`` on a config.

    Each trial builds the model (and the datamodule, if a class) from its config, trains it
    with a fresh Trainer (``strategy="ddp"`` or ``"horovod"``: ``num_workers`` Ray actors in
    the trial's own bundles) and reports every validation epoch with a checkpoint. A restarted trial resumes
    from its last checkpoint with its epoch count intact. ``worker_timeout_s`` ends a
    trial whose rank makes no progress for that long (see :class:`RayDDPStrategy`).
    ``reuse_workers``: a trial process that Tune reuses (``TuneConfig(reuse_actors=True)``,
    which ``tune_lightning`` sets) keeps its worker actors warm for the next trial.
    """
    tree = check_model_class(model_cls)
    check_datamodule(datamodule)
    check_search_settings(metric, mode, max_epochs)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if strategy == "horovod":
        import_horovod()  # a missing Horovod is reported here, before Ray starts
    check_worker_shape(num_workers, cpus_per_worker, gpus_per_worker)
    if not isinstance(reuse_workers, bool):
        raise TypeError(f"reuse_workers must be True or False, got {reuse_workers!r}.")
    trainer_kwargs = dict(trainer_kwargs or {})
    for key, instead in _RESERVED_TRAINER_KWARGS.items():
        if key in trainer_kwargs:
            raise ValueError(f"trainer_kwargs may not set {key!r}: use the {instead} argument.")
    callbacks = list(callbacks or [])
    routing = ConfigRouting(model_cls, datamodule)
    settings = _TrialSettings(tree, routing, metric, max_epochs, strategy, num_workers,
                              cpus_per_worker, gpus_per_worker, trainer_kwargs, callbacks,
                              worker_timeout_s, reuse_workers)

    def train_lightning(config: Dict[str, Any]) -> None:
        settings.run(config)

    train_lightning.__name__ = train_lightning.__qualname__ = f"train_{model_cls.__name__}"
    train_lightning.routing = routing  # lets tune_lightning check a space before Ray starts
    return tune.with_resources(train_lightning, trial_resources(
        strategy, num_workers, cpus_per_worker, gpus_per_worker))


class _TrialSettings:
    """Everything a trial needs, captured once by the factory and pickled into each trial."""

    def __init__(self, tree: str, routing: ConfigRouting, metric: str, max_epochs: int,
                 strategy: Optional[str], num_workers: int, cpus_per_worker: float,
                 gpus_per_worker: float, trainer_kwargs: Dict[str, Any], callbacks: List[Any],
                 worker_timeout_s: Optional[float] = None, reuse_workers: bool = True):
        self.tree, self.routing, self.metric, self.max_epochs = tree, routing, metric, max_epochs
        self.strategy, self.num_workers = strategy, num_workers
        self.cpus_per_worker, self.gpus_per_worker = cpus_per_worker, gpus_per_worker
        self.trainer_kwargs, self.callbacks = trainer_kwargs, callbacks
        self.worker_timeout_s = worker_timeout_s
        self.reuse_workers = reuse_workers

    def _make_strategy(self) -> Any:
        if self.strategy is None:
            return "auto"
        gpus = self.gpus_per_worker
        strategy_cls = RayDDPStrategy if self.strategy == "ddp" else RayHorovodStrategy
        return strategy_cls.for_tree(self.tree)(
            num_workers=self.num_workers, cpus_per_worker=self.cpus_per_worker,
            use_gpu=bool(gpus), resources_per_worker={"GPU": gpus} if gpus else None,
            worker_timeout_s=self.worker_timeout_s, reuse_workers=self.reuse_workers)

    def _report_callback(self) -> Any:
        for callback in self.callbacks:
            if isinstance(callback, _TuneReportBase):
                return callback  # the user chose what to report
        return TuneReportCheckpointCallback.for_tree(self.tree)(on="validation_end")

    def run(self, config: Dict[str, Any]) -> None:
        start_afresh()  # Tune may have run another trial in this process before
        session.require_metric(self.metric)
        model, datamodule = self.routing.build(config)
        reporter = self._report_callback()
        callbacks = list(self.callbacks) + ([] if reporter in self.callbacks else [reporter])
        callbacks.append(TrialHyperparameters.for_tree(self.tree)(config))
        kwargs: Dict[str, Any] = dict(
            max_epochs=self.max_epochs, strategy=self._make_strategy(), callbacks=callbacks,
            default_root_dir=tune.get_context().get_trial_dir(), enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False)
        if self.strategy is None:
            kwargs.update(accelerator="gpu" if self.gpus_per_worker else "cpu", devices=1)
        kwargs.update(self.trainer_kwargs)
        trainer = tree_module(self.tree).Trainer(**kwargs)
        with _restored_checkpoint(reporter) as ckpt_path:
            _fit(trainer, model, datamodule, ckpt_path)


def _fit(trainer: Any, model: Any, datamodule: Any, ckpt_path: Optional[str]) -> None:
    """Train, continuing from ``ckpt_path`` if given, loaded as data only (``weights_only``).

    A checkpoint in a results directory is a file anyone with write access could have
    replaced; unpickling it in full would run whatever it names.
    """
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path,
                weights_only=True if ckpt_path else None)


@contextlib.contextmanager
def _restored_checkpoint(reporter: Any):
    """The path of the Lightning checkpoint Tune restarts this trial from, or None."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        yield None
        return
    filename = getattr(reporter, "_filename", "checkpoint")
    with checkpoint.as_directory() as directory:
        path = os.path.join(directory, filename)
        yield path if os.path.exists(path) else None
