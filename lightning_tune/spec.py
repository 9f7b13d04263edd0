"""The trial spec: every setting of a trial, validated once, with its resources and its record.

``tune_lightning``, ``lightning_trainable`` and ``resume`` all build one :class:`TrialSpec`;
the per-trial runner reads nothing else. A new trial setting is one field here (plus the
keyword on the two public signatures): validation, the record that ``resume`` reads back and
the defaults for records written before the field existed all follow from the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ray.tune import PlacementGroupFactory

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError
from lightning_tune.lightning_trees import tree_module, tree_of
from lightning_tune.resources import check_worker_options, check_worker_shape, get_tune_resources
from lightning_tune.routing import ConfigRouting
from lightning_tune.trackers import check_loggers

STRATEGIES = (None, "ddp", "fsdp", "horovod")
DEFAULT_CHECKPOINT_FILENAME = "checkpoint"
# Trainer arguments the spec sets from its own fields, and which field to use instead.
_RESERVED_TRAINER_KWARGS = {"max_epochs": "max_epochs", "strategy": "strategy",
                            "callbacks": "callbacks", "num_nodes": "num_workers",
                            "devices": "num_workers / gpus_per_worker"}
# Fields that are objects, not settings: recorded by class path, or re-supplied on resume.
_NOT_RECORDED = ("model_cls", "datamodule", "callbacks")
# Fields recorded when they are plain data, else re-supplied (they hold objects, e.g. FSDP's
# auto_wrap_policy or MixedPrecision, or loggers= as a function).
_RESUPPLIED_IF_OBJECTS = ("trainer_kwargs", "strategy_kwargs", "loggers")


@dataclass(frozen=True)
class TrialSpec:
    """How every trial of a search trains (the config is what differs between trials)."""

    model_cls: type
    datamodule: Any = None
    metric: Union[str, List[str]] = "val_loss"  # a list: several objectives
    mode: Union[str, List[str]] = "min"  # one per metric
    max_epochs: int = 10
    strategy: Optional[str] = None
    num_workers: int = 1
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0
    trainer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    callbacks: Tuple[Any, ...] = ()
    worker_timeout_s: Optional[float] = None
    reuse_workers: bool = True
    strategy_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # a LightningCliConfig: trials build model, datamodule and trainer settings from it
    lightning_cli: Any = None
    # the trackers each trial logs to (see lightning_tune.trackers): names, False, a function
    loggers: Any = None
    # the MLflow store the search named when it started (None: the trial's own default)
    mlflow_uri: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "trainer_kwargs", dict(self.trainer_kwargs or {}))
        object.__setattr__(self, "callbacks", tuple(self.callbacks or ()))
        object.__setattr__(self, "strategy_kwargs", dict(self.strategy_kwargs or {}))
        object.__setattr__(self, "loggers", check_loggers(self.loggers))
        _check_model_class(self.model_cls)
        _check_datamodule(self.datamodule)
        self._check_lightning_cli()
        metrics, modes = check_objectives(self.metric, self.mode)
        object.__setattr__(self, "metric", metrics[0] if len(metrics) == 1 else metrics)
        object.__setattr__(self, "mode", modes[0] if len(modes) == 1 else modes)
        if isinstance(self.max_epochs, bool) or not isinstance(self.max_epochs, int) \
                or self.max_epochs < 1:
            raise InvalidArgumentError(
                f"max_epochs must be an integer >= 1, got {self.max_epochs!r}.")
        if self.strategy not in STRATEGIES:
            raise InvalidArgumentError(
                f"strategy must be one of {STRATEGIES}, got {self.strategy!r}.")
        if self.strategy == "horovod":
            from lightning_tune.strategies.horovod import import_horovod

            import_horovod()  # a missing Horovod is reported here, before Ray starts
        check_worker_shape(self.num_workers, self.cpus_per_worker, self.gpus_per_worker)
        check_worker_options(self.worker_timeout_s, self.reuse_workers)
        self._check_strategy_kwargs()
        for key, instead in _RESERVED_TRAINER_KWARGS.items():
            if key in self.trainer_kwargs:
                raise InvalidArgumentError(
                    f"trainer_kwargs may not set {key!r}: use the {instead} argument.")
        if self.loggers is not None and "logger" in self.trainer_kwargs:
            raise InvalidArgumentError(
                "loggers= and trainer_kwargs['logger'] both set the trials' loggers: give one "
                "(loggers= names the trackers, or takes a function trial -> [Lightning loggers]).")
        reporters = [callback for callback in self.callbacks if _is_reporter(callback)]
        if len(reporters) > 1:
            raise InvalidArgumentError(
                f"callbacks holds {len(reporters)} Tune report callbacks; pass one (it decides "
                "what each trial reports).")

    def _check_lightning_cli(self) -> None:
        if self.lightning_cli is None:
            return
        from lightning_tune.lightning_cli import LightningCliConfig

        if isinstance(self.lightning_cli, Mapping):  # read back from a record
            object.__setattr__(self, "lightning_cli",
                               LightningCliConfig.from_record(self.lightning_cli))
        if not isinstance(self.lightning_cli, LightningCliConfig):
            raise InvalidTypeError(f"lightning_cli must be a LightningCliConfig (see "
                                   f"tune_lightning_cli), got {self.lightning_cli!r}.")
        if self.datamodule is not None:
            raise InvalidArgumentError(
                "datamodule cannot be given with a LightningCLI config: its data section "
                "names the datamodule (data: {class_path: ..., init_args: {...}}).")
        if self.lightning_cli.model_cls is not self.model_cls:
            raise InvalidArgumentError(
                f"model_cls {self.model_cls.__qualname__} is not the class the LightningCLI "
                f"config trains ({self.lightning_cli.model_cls.__qualname__}); "
                "tune_lightning_cli passes the right one.")

    def _check_strategy_kwargs(self) -> None:
        """Build the trials' strategy once, here: its own checks run before Ray starts."""
        if self.strategy is None:
            if self.strategy_kwargs:
                raise InvalidArgumentError(
                    "strategy_kwargs are options of a Ray strategy: pass strategy='ddp', "
                    "'fsdp' or 'horovod' with them, or leave strategy_kwargs out.")
            return
        from lightning_tune.errors import LightningTuneError
        from lightning_tune.strategies import make_strategy

        try:
            make_strategy(self.strategy, tree=self.tree, num_workers=self.num_workers,
                          cpus_per_worker=self.cpus_per_worker,
                          gpus_per_worker=self.gpus_per_worker,
                          worker_timeout_s=self.worker_timeout_s,
                          reuse_workers=self.reuse_workers, strategy_kwargs=self.strategy_kwargs)
        except LightningTuneError:
            raise
        except (TypeError, ValueError, RuntimeError) as error:  # the Lightning strategy's own
            raise InvalidArgumentError(
                f"strategy={self.strategy!r} refused strategy_kwargs={self.strategy_kwargs!r}: "
                f"{error}") from error

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> "TrialSpec":
        """The spec from a public function's arguments (its ``locals()``): the fields it names."""
        names = {spec_field.name for spec_field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in arguments.items() if name in names})

    # --- derived, never stored twice --------------------------------------------------------
    @property
    def metrics(self) -> List[str]:
        """The objectives, the first one first (it picks the best trial and checkpoints)."""
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    @property
    def modes(self) -> List[str]:
        return [self.mode] if isinstance(self.mode, str) else list(self.mode)

    @property
    def several(self) -> bool:
        """Whether the search has several objectives."""
        return len(self.metrics) > 1

    @property
    def tree(self) -> str:
        """The Lightning tree of the model class ("lightning.pytorch" or "pytorch_lightning")."""
        return tree_of(self.model_cls)

    @property
    def routing(self) -> Any:
        """What turns a trial's config into its model and datamodule: the LightningCLI config
        (dotted keys), or the constructors of the model and datamodule classes."""
        if self.lightning_cli is not None:
            return self.lightning_cli
        return ConfigRouting(self.model_cls, self.datamodule)

    @property
    def report_callback(self) -> Optional[Any]:
        """The user's Tune report callback, if ``callbacks`` holds one."""
        return next((callback for callback in self.callbacks if _is_reporter(callback)), None)

    @property
    def checkpoint_filename(self) -> Optional[str]:
        """The checkpoint file inside each reported checkpoint (None: trials report none)."""
        reporter = self.report_callback
        return reporter.checkpoint_filename if reporter is not None \
            else DEFAULT_CHECKPOINT_FILENAME

    def trial_resources(self) -> PlacementGroupFactory:
        """What one trial reserves: its workers' bundles, or one bundle when it trains itself.

        With workers the head holds no CPU, so 2 workers fit 2 CPUs; a trial process that
        trains rank 0 stands for the first worker bundle (``launchers.in_trial``).
        """
        if self.strategy is None:
            bundle = {"CPU": self.cpus_per_worker}
            if self.gpus_per_worker:
                bundle["GPU"] = self.gpus_per_worker
            return PlacementGroupFactory([bundle])
        return get_tune_resources(self.num_workers, self.cpus_per_worker, self.gpus_per_worker,
                                  head_cpus=0)

    # --- the record ---------------------------------------------------------------------------
    def to_record(self) -> Dict[str, Any]:
        """The settings as plain JSON values (objects are named in ``must_resupply``)."""
        settings = {spec_field.name: getattr(self, spec_field.name)
                    for spec_field in dataclasses.fields(self)
                    if spec_field.name not in _NOT_RECORDED}
        settings["checkpoint_filename"] = self.checkpoint_filename
        if self.lightning_cli is not None:
            settings["lightning_cli"] = self.lightning_cli.to_record()
        for name in _RESUPPLIED_IF_OBJECTS:
            if not _is_plain(settings[name]):
                settings[name] = None
        return settings

    def must_resupply(self) -> List[str]:
        """What ``resume`` must be given again: what a plain JSON record cannot hold."""
        missing = []
        if self.datamodule is not None and not isinstance(self.datamodule, type):
            missing.append("datamodule")
        missing += [name for name in _RESUPPLIED_IF_OBJECTS if not _is_plain(getattr(self, name))]
        if self.callbacks:
            missing.append("callbacks")
        return missing

    @classmethod
    def from_record(cls, settings: Mapping[str, Any], model_cls: type, **objects: Any) -> "TrialSpec":
        """The spec a record describes; settings it lacks (older records) take their defaults.

        ``objects``: ``datamodule``, ``callbacks``, ``trainer_kwargs`` and ``strategy_kwargs``
        given again (None:
        use the recorded one, if any).
        """
        names = {spec_field.name for spec_field in dataclasses.fields(cls)}
        values = {name: value for name, value in settings.items()
                  if name in names and name not in _NOT_RECORDED and value is not None}
        values.update({name: value for name, value in objects.items() if value is not None})
        return cls(model_cls=model_cls, **values)


def _is_reporter(callback: Any) -> bool:
    from lightning_tune.callbacks import TuneReportBase

    return isinstance(callback, TuneReportBase)


def _is_plain(value: Any) -> bool:
    """Whether ``value`` survives JSON unchanged (so it can be recorded, not re-supplied)."""
    import json

    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def _check_model_class(model_cls: Any) -> None:
    if not isinstance(model_cls, type):
        hint = (" Pass the class itself (e.g. MyModel, not MyModel(...)): each trial builds its "
                "own model from its config.") if tree_of(model_cls) else ""
        raise InvalidTypeError(f"model_cls must be a LightningModule subclass, got an instance "
                               f"of {type(model_cls).__name__}.{hint}")
    tree = tree_of(model_cls)
    if tree is None or not issubclass(model_cls, tree_module(tree).LightningModule):
        raise InvalidTypeError(f"model_cls must be a LightningModule subclass (lightning.pytorch "
                               f"or pytorch_lightning), got {model_cls.__qualname__}.")


def _check_datamodule(datamodule: Any) -> None:
    if datamodule is None:
        return
    cls = datamodule if isinstance(datamodule, type) else type(datamodule)
    tree = tree_of(cls)
    if tree is None or not issubclass(cls, tree_module(tree).LightningDataModule):
        raise InvalidTypeError(f"datamodule must be a LightningDataModule class or instance, "
                               f"got {datamodule!r}.")


def check_objectives(metric: Any, mode: Any) -> Tuple[List[str], List[str]]:
    """``metric`` and ``mode`` as lists of equal length: one objective, or several."""
    several = isinstance(metric, (list, tuple))
    metrics = list(metric) if several else [metric]
    modes = list(mode) if isinstance(mode, (list, tuple)) else [mode]
    if any(not isinstance(name, str) or not name for name in metrics) or not metrics:
        raise InvalidArgumentError(
            f"metric must be the name of a logged metric (or a list of them, one per "
            f"objective), got {metric!r}.")
    if several and (len(metrics) < 2 or len(set(metrics)) != len(metrics)):
        raise InvalidArgumentError(
            f"metric as a list names two or more different objectives, got {metrics}.")
    if len(modes) != len(metrics):
        raise InvalidArgumentError(
            f"metric and mode must be lists of the same length, one mode per objective: got "
            f"{len(metrics)} metrics {metrics} and mode={mode!r}.")
    if any(each not in ("min", "max") for each in modes):
        raise InvalidArgumentError(f"mode must be 'min' or 'max' (one per metric), got {mode!r}.")
    return metrics, modes
