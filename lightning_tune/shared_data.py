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

Large constants of the space (a tensor, an array, a table: :data:`LARGE_CONSTANT_BYTES` or
more) go the same way (:func:`share_large_constants`). Left in the space, Tune would copy each
into every trial's config, and from there into the experiment's saved state, each trial's
params files and every trial process. The space keeps a :class:`SharedConstant` in its place,
so configs, tables and tracker hyperparameters show its name and size; each trial swaps it for
the fetched object before building the model and datamodule (:func:`with_constants`).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple

import ray

from lightning_tune.errors import InvalidArgumentError, UnknownNameError

#: a constant of the space at least this large (in bytes) is shared, not copied per trial
LARGE_CONSTANT_BYTES = 2 ** 20

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


@dataclasses.dataclass(frozen=True)
class SharedConstant:
    """Stands in a config for a large constant of the space, kept in the object store."""

    name: str
    megabytes: float

    @property
    def key(self) -> str:
        """Its key among the shared objects: the same for a resumed search."""
        return f"constant/{self.name}"

    def __repr__(self) -> str:
        return f"<{self.name}: {self.megabytes:.1f} MB, shared>"


def share_large_constants(param_space: Mapping[str, Any]
                          ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``param_space`` with each large constant in the object store; the references by key.

    Only top-level constants holding no Tune domain count (a nested space stays as it is).
    """
    space, references = dict(param_space), {}
    for name, value in param_space.items():
        size = _constant_size(value)
        if size >= LARGE_CONSTANT_BYTES:
            space[name] = SharedConstant(name, size / 2 ** 20)
            references.update(constant_references({name: value}))
    return space, references


def constant_references(constants: Mapping[str, Any]) -> Dict[str, Any]:
    """Each of ``constants`` (by name) put in the object store, under its constant's key."""
    return {SharedConstant(name, 0).key: ray.put(value) for name, value in constants.items()}


def resupplied_constants(names: List[str], constants: Optional[Mapping[str, Any]]
                         ) -> Dict[str, Any]:
    """The constants ``names`` a search shared, given again (to resume it), by name."""
    missing = [name for name in names if name not in (constants or {})]
    if missing:
        raise InvalidArgumentError(
            f"{missing} were large constants of the space, kept in Ray's object store while the "
            "search ran and not with the experiment: pass them again, e.g. constants="
            + "{" + ", ".join(f"{name!r}: ..." for name in missing) + "}.")
    return {name: constants[name] for name in names}


def shared_constant_names(config: Mapping[str, Any]) -> List[str]:
    """The names of the constants ``config`` holds by reference."""
    return [name for name, value in config.items() if isinstance(value, SharedConstant)]


def with_constants(config: Mapping[str, Any],
                   constants: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``config`` with its shared constants in place: copies of ``constants`` (by name) where
    given, so that loading weights into a model that wraps one leaves the caller's object as
    it was; else fetched (in a trial, whose job named their references)."""
    names = shared_constant_names(config)
    if constants is None:
        return {**config, **{name: fetch(config[name].key) for name in names}}
    return {**config, **copy.deepcopy(resupplied_constants(names, constants))}


def constants_named(config: Mapping[str, Any]) -> Dict[str, Any]:
    """``config`` with each shared constant as its name and size, a string: plain data for
    a checkpoint that is loaded as data only, and for trackers' hyperparameters."""
    return {name: repr(value) if isinstance(value, SharedConstant) else value
            for name, value in config.items()}


def _constant_size(value: Any) -> int:
    """Bytes ``value`` would take in a config: 0 for a domain or anything holding one."""
    # here: workers import this module, and need neither Tune nor the spaces
    from ray.tune.search.sample import Domain

    from lightning_tune.spaces import holds_domain

    if isinstance(value, (Domain, SharedConstant, bool, int, float, type(None))):
        return 0
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if holds_domain(value):
        return 0
    nbytes = getattr(value, "nbytes", None)  # an array or tensor, without pickling it
    if isinstance(nbytes, int):
        return nbytes
    try:
        return len(ray.cloudpickle.dumps(value))
    except Exception:  # noqa: BLE001 - Tune reports what cannot be pickled, in its own words
        return 0

