"""What an experiment directory records so that ``resume(path)`` needs nothing else.

Plain JSON next to Tune's own state: import paths of the model and datamodule classes and
the trainable's settings. Resuming imports those names and runs no other recorded code.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any, Dict, Optional

RECORD_FILE = "lightning_tune.json"


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str, role: str) -> type:
    """The class recorded as ``module:QualName``; an error that says how to make it importable."""
    module_name, _, qualname = path.partition(":")
    hint = (f"Cannot import the {role} recorded as {path!r}. Resuming imports it by name: define "
            f"it in a module (not a notebook cell, __main__ or a function body) and make that "
            f"module importable (install the package, or add its folder to PYTHONPATH).")
    if "<locals>" in qualname:
        raise ImportError(hint)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as error:
        raise ImportError(f"{hint} ({error})") from error
    return obj


def is_plain(value: Any) -> bool:
    """Whether ``value`` survives JSON unchanged (so it can be recorded, not re-supplied)."""
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def write_record(experiment_path: str, model_cls: type, datamodule: Any,
                 settings: Dict[str, Any]) -> None:
    """Record the classes and settings; what is not plain data is named for the user to re-supply.

    A datamodule instance, trainer_kwargs holding objects and callbacks cannot be recorded:
    ``resume`` then asks for them again instead of guessing.
    """
    datamodule_path: Optional[str] = None
    must_resupply = []
    if isinstance(datamodule, type):
        datamodule_path = class_path(datamodule)
    elif datamodule is not None:
        must_resupply.append("datamodule")
    if not is_plain(settings.get("trainer_kwargs")):
        settings = {**settings, "trainer_kwargs": None}
        must_resupply.append("trainer_kwargs")
    if settings.get("callbacks"):
        must_resupply.append("callbacks")
    record = {"model_cls": class_path(model_cls), "datamodule": datamodule_path,
              "must_resupply": must_resupply, "settings": settings}
    os.makedirs(experiment_path, exist_ok=True)
    with open(os.path.join(experiment_path, RECORD_FILE), "w") as handle:
        json.dump(record, handle, indent=2)


def read_record(experiment_path: str) -> Dict[str, Any]:
    path = os.path.join(experiment_path, RECORD_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{experiment_path!r} holds no {RECORD_FILE}: it is not an experiment started by "
            "tune_lightning (or not its top folder, storage_path/name).")
    with open(path) as handle:
        record = json.load(handle)
    record.setdefault("must_resupply", [])
    record["model_cls"] = import_class(record["model_cls"], "model class")
    if record["datamodule"]:
        record["datamodule"] = import_class(record["datamodule"], "datamodule class")
    return record
