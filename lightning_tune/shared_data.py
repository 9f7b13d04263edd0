"""Big data once: a datamodule instance in Ray's object store, fetched where it is used.

A datamodule instance given to a search can hold a whole dataset. Pickled into the trainable,
it would sit in Ray's control store (Tune keeps the trainable in the GCS's key-value store)
and be copied from there into every trial process; pickled into each trial's job for its
workers, it would be copied again per trial. Instead the driver puts it in the object store
once (:func:`share`) and the trainable carries only the reference, which Tune hands over as
a parameter (``tune.with_parameters``); each trial process fetches the object
(:func:`fetch`), and the job sent to its workers names it by its key (:func:`dumps`), so
each worker fetches it from the object store as well. (By reference goes an object pickle
hands to a reducer, such as a datamodule: not a plain dict or list.)

Each process keeps what it fetched until its next job names its references
(:func:`use_references`): a job trains on the object as fetched, never on one a previous
trial changed.
"""

from __future__ import annotations

import io
import uuid
from typing import Any, Dict, Mapping

import ray

from lightning_tune.errors import UnknownNameError

_references: Dict[str, Any] = {}  # key -> ObjectRef, in this process
_fetched: Dict[str, Any] = {}  # key -> the object fetched in this process for this job
_keys: Dict[int, str] = {}  # id(object fetched) -> its key


def share(obj: Any) -> Dict[str, Any]:
    """Put ``obj`` in the object store (Ray is running); its key and reference."""
    return {f"shared-{uuid.uuid4().hex}": ray.put(obj)}


def use_references(references: Mapping[str, Any]) -> None:
    """The references a new job may fetch; what an earlier job fetched is dropped."""
    _references.clear()
    _references.update(references)
    _fetched.clear()
    _keys.clear()


def references() -> Dict[str, Any]:
    """The references this process's job uses: what its workers are sent."""
    return dict(_references)


def fetch(key: str) -> Any:
    """The shared object under ``key``, fetched once per job in this process."""
    if key not in _fetched:
        if key not in _references:
            raise UnknownNameError(f"No shared object {key!r} is known to this process (its job "
                           "named none such).")
        value = ray.get(_references[key])
        _fetched[key] = value
        _keys[id(value)] = key
    return _fetched[key]


class _ByReference(ray.cloudpickle.CloudPickler):
    """Pickles a fetched shared object as ``fetch(key)``, everything else as cloudpickle."""

    def reducer_override(self, obj: Any) -> Any:
        key = _keys.get(id(obj))
        if key is not None and _fetched.get(key) is obj:
            return fetch, (key,)
        return super().reducer_override(obj)


def dumps(obj: Any) -> bytes:
    """``obj`` pickled with the shared objects in it by reference (see the module's notes)."""
    buffer = io.BytesIO()
    _ByReference(buffer).dump(obj)
    return buffer.getvalue()
