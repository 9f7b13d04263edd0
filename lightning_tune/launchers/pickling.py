"""The training job as bytes for the workers, and which attribute is to blame when it is not.

The trainer and its bound function are pickled together, so each worker trains a copy of the
very trainer the driver holds. When that fails, cloudpickle's message names a type, not where
it sits; the search below names the attribute path a user must move into ``setup()``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import ray

from lightning_tune import shared_data
from lightning_tune.errors import InvalidTypeError

_MAX_DEPTH = 6


def serialize_for_workers(function: Callable, args: tuple, kwargs: dict) -> bytes:
    """Pickle the trainer function with its arguments; name the attribute that cannot be."""
    try:  # a shared datamodule goes by reference: each worker fetches it from the object store
        return shared_data.dumps((function, args, kwargs))
    except Exception as error:
        trainer = function.__self__
        suspects = [("the LightningModule", "self", trainer.lightning_module),
                    ("the LightningDataModule", "self", trainer.datamodule),
                    ("the Trainer", "trainer", trainer)]
        for what, root, obj in suspects:
            if obj is None:
                continue
            culprit = find_unpicklable(obj, root)
            if culprit:
                raise InvalidTypeError(
                    f"{what} cannot be pickled to send it to the Ray workers: {culprit} cannot be "
                    f"pickled ({error}). Create that attribute in setup() or on_fit_start(), "
                    "which run on each worker, instead of __init__.") from error
        raise InvalidTypeError(
            f"The training job cannot be pickled for the Ray workers: {error}") from error


def find_unpicklable(obj: Any, path: str, depth: int = 0) -> Optional[str]:
    """The deepest attribute path below ``obj`` whose value fails to pickle."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(obj, dict):
        items = [(f"{path}[{key!r}]", value) for key, value in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(f"{path}[{index}]", value) for index, value in enumerate(obj)]
    elif hasattr(obj, "__dict__"):
        items = []
        for name, value in vars(obj).items():
            if name == "_modules" and isinstance(value, dict):  # torch submodules read as attributes
                items.extend((f"{path}.{child}", module) for child, module in value.items())
            else:
                items.append((f"{path}.{name}", value))
    else:
        return None
    for item_path, value in items:
        try:
            ray.cloudpickle.dumps(value)
        except Exception:
            return find_unpicklable(value, item_path, depth + 1) or (
                f"{item_path} (a {type(value).__module__}.{type(value).__qualname__})")
    return None
