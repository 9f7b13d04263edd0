"""What an experiment directory records so that ``resume(path)`` needs nothing else.

Plain JSON next to Tune's own state (``lightning_tune.json``): import paths of the model and
datamodule classes, the trial spec's settings, the searched names, and what could not be
recorded. One writer, one reader; reading imports nothing, and a recorded class is imported
only when asked for (by name: no other recorded code runs).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from lightning_tune.errors import (ExperimentNotFoundError, InvalidArgumentError,
                                   RecordedClassImportError)
from lightning_tune.lightning_cli import LightningCliConfig
from lightning_tune.routing import ConfigRouting
from lightning_tune.spec import TrialSpec

RECORD_FILE = "lightning_tune.json"
FORMAT = 2  # 1: "searched" sat inside "settings", no checkpoint_filename


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str, role: str) -> type:
    """The class recorded as ``module:QualName``; an error that says how to make it importable."""
    module_name, _, qualname = path.partition(":")
    hint = (f"Cannot import the {role} recorded as {path!r}. Resuming imports it by name: define "
            f"it in a module (not a notebook cell, __main__ or a function body) and make that "
            f"module importable (install the package, or add its folder to PYTHONPATH).")
    if "<locals>" in qualname:
        raise RecordedClassImportError(hint)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as error:
        raise RecordedClassImportError(f"{hint} ({error})") from error
    return obj


@dataclass(frozen=True)
class ExperimentRecord:
    """An experiment's record as read from disk; classes stay names until imported."""

    model_path: str
    datamodule_path: Optional[str]
    settings: Dict[str, Any]
    searched: List[str] = field(default_factory=list)
    must_resupply: List[str] = field(default_factory=list)
    #: the search's own settings (time budget, stopping rules); None: recorded before them
    search: Optional[Dict[str, Any]] = None

    @property
    def metric(self) -> str:
        return self.settings.get("metric", "val_loss")

    @property
    def mode(self) -> str:
        return self.settings.get("mode", "min")

    @property
    def checkpoint_filename(self) -> Optional[str]:
        return self.settings.get("checkpoint_filename", "checkpoint")

    def model_cls(self) -> type:
        return import_class(self.model_path, "model class")

    def datamodule_cls(self) -> Optional[type]:
        return import_class(self.datamodule_path, "datamodule class") if self.datamodule_path else None

    @property
    def shared_constants(self) -> List[str]:
        """The space's large constants the search kept in Ray's object store only."""
        return list((self.search or {}).get("shared_constants", []))

    def build_model(self, config: Dict[str, Any]) -> Any:
        """The recorded model class (imported now) built from a trial's config."""
        cli = self.settings.get("lightning_cli")
        if cli is not None:
            return LightningCliConfig.from_record(cli).build_model(config)
        # the config was checked when the search ran: the model takes the keys it accepts
        return ConfigRouting(self.model_cls()).model.build(config)

    def trial_spec(self, **objects: Any) -> TrialSpec:
        """The spec to continue with; ``objects``: what ``must_resupply`` names, given again."""
        objects["datamodule"] = objects.get("datamodule") or self.datamodule_cls()
        return TrialSpec.from_record(self.settings, self.model_cls(), **objects)


def write_record(experiment_path: str, spec: TrialSpec, searched: Sequence[str],
                 search: Optional[Mapping[str, Any]] = None) -> None:
    """``search``: the search's own settings as plain data (Tune keeps the objects)."""
    datamodule = spec.datamodule
    record = {
        "format": FORMAT,
        "model_cls": class_path(spec.model_cls),
        "datamodule": class_path(datamodule) if isinstance(datamodule, type) else None,
        "must_resupply": spec.must_resupply(),
        "settings": {**spec.to_record(),
                     "callbacks": [class_path(type(callback)) for callback in spec.callbacks]},
        "searched": list(searched),
        "search": dict(search or {}),
    }
    os.makedirs(experiment_path, exist_ok=True)
    with open(os.path.join(experiment_path, RECORD_FILE), "w") as handle:
        json.dump(record, handle, indent=2)


def read_record(experiment_path: str) -> ExperimentRecord:
    """The record of the experiment at ``experiment_path``; nothing is imported."""
    path = os.path.join(experiment_path, RECORD_FILE)
    if not os.path.exists(path):
        hint = ("Pass the folder tune_lightning printed as the experiment: storage_path/name (by "
                "default ~/ray_results/<ModelClass>_<date>).")
        if not os.path.isdir(experiment_path):
            raise ExperimentNotFoundError(f"{experiment_path} is not a directory. {hint}")
        inside = sorted(name for name in os.listdir(experiment_path)
                        if os.path.exists(os.path.join(experiment_path, name, RECORD_FILE)))
        found = f" It holds these experiments: {', '.join(inside)}." if inside else ""
        raise ExperimentNotFoundError(
            f"{experiment_path} holds no {RECORD_FILE}: it is not an experiment started by "
            f"tune_lightning.{found} {hint}")
    with open(path) as handle:
        data = json.load(handle)
    settings = dict(data.get("settings", {}))
    searched = data.get("searched", settings.pop("searched", []))
    settings.pop("searched", None)
    return ExperimentRecord(model_path=data["model_cls"], datamodule_path=data.get("datamodule"),
                            settings=settings, searched=list(searched),
                            must_resupply=list(data.get("must_resupply", [])),
                            search=data.get("search"))


def check_experiment_state(experiment_path: str) -> None:
    """Refuse a cut-short experiment state, which Tune would replace by a fresh search.

    Tune copies its state into storage file by file; a driver killed during that copy can
    leave the newest state file empty. Tune then logs the error and quietly starts the search
    over (new trials, default configs) instead of continuing it.
    """
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    newest = _find_newest_experiment_checkpoint(experiment_path)
    if newest is None:
        return
    try:
        with open(newest) as handle:
            json.load(handle)
    except ValueError as error:
        raise InvalidArgumentError(
            f"Tune's experiment state {newest} is empty or cut short ({error}): the driver was "
            "probably killed while Tune was writing it, so the trials' progress cannot be read "
            "and Tune would start the search over. Nothing was run. Trials' checkpoints and "
            "results in the folder are untouched; start a new experiment (another name) to "
            "search again.") from error
