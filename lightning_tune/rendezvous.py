"""Where a trial's torch ranks meet, without a server listening on the network.

``torch.distributed``'s usual rendezvous, a ``TCPStore`` on rank 0, listens on every
interface of its node, unauthenticated, for as long as training runs. Ranks launched here
meet instead through a store nobody can reach from outside:

- ranks all on one node: a ``FileStore`` in that node's temporary folder (no socket at all);
- ranks on several nodes: a store kept in a small Ray actor, reached through Ray's own
  connections (which the cluster already secures as it chooses).

The launcher's driver side picks one (``plan_rendezvous``) and hands each rank its address
as an environment variable; each rank opens it (``open_store``) before joining the process
group. This module imports no torch at the top: the store actor runs in a light process.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence

import ray

from lightning_tune.errors import InvalidArgumentError, WorkerError

RENDEZVOUS_VARIABLE = "LIGHTNING_TUNE_RENDEZVOUS"
_FILE = "file:"
_ACTOR = "ray-actor:"
_NAMESPACE = "lightning_tune"
_ARRIVED = "lightning_tune/arrived/"  # a rank's key once it opened the store


@ray.remote(num_cpus=0)
class _StoreActor:
    """A key-value store for one process group; waits happen in the caller, polling."""

    def __init__(self) -> None:
        self._values: Dict[str, bytes] = {}

    def set(self, key: str, value: bytes) -> None:
        self._values[key] = value

    def get(self, key: str) -> Optional[bytes]:
        return self._values.get(key)

    def add(self, key: str, amount: int) -> int:
        total = int(self._values.get(key, b"0")) + amount
        self._values[key] = str(total).encode()
        return total

    def compare_set(self, key: str, expected: bytes, desired: bytes) -> bytes:
        current = self._values.get(key)
        if (current is None and not expected) or current == expected:
            self._values[key] = desired
            return desired
        return current if current is not None else expected

    def has(self, keys: List[str]) -> bool:
        return all(key in self._values for key in keys)

    def delete(self, key: str) -> bool:
        return self._values.pop(key, None) is not None

    def size(self) -> int:
        return len(self._values)


class Rendezvous:
    """The driver's side of one launch's meeting point; ``close`` frees it."""

    def __init__(self, address: str, actor: Any = None) -> None:
        self.address = address
        self._actor = actor

    def close(self) -> None:
        if self._actor is not None:
            ray.kill(self._actor, no_restart=True)
            self._actor = None
        elif self.address.startswith(_FILE):
            # the ranks' FileStore removes it once all of them are done; a failed job's may
            # not have. Best effort: this reaches it when the ranks run on this node
            try:
                os.remove(self.address[len(_FILE):])
            except FileNotFoundError:
                pass


def plan_rendezvous(node_ids: Sequence[str]) -> Rendezvous:
    """A meeting point for ranks on ``node_ids`` (one per rank): a file when they share a node."""
    if len(set(node_ids)) == 1:
        folder = tempfile.gettempdir()
        return Rendezvous(f"{_FILE}{os.path.join(folder, f'lightning_tune_pg_{uuid.uuid4().hex}')}")
    name = f"rendezvous_{uuid.uuid4().hex}"
    actor = _StoreActor.options(name=name, namespace=_NAMESPACE,
                                scheduling_strategy="DEFAULT").remote()
    ray.get(actor.size.remote())  # started, so ranks find it by name
    return Rendezvous(f"{_ACTOR}{name}", actor)


def open_store(address: str, world_size: int, timeout_s: float) -> Any:
    """This rank's ``torch.distributed.Store`` for ``address`` (see ``plan_rendezvous``)."""
    import torch.distributed as dist

    if address.startswith(_FILE):
        return dist.FileStore(address[len(_FILE):], world_size)
    if address.startswith(_ACTOR):
        actor = ray.get_actor(address[len(_ACTOR):], namespace=_NAMESPACE)
        return _actor_store_class()(actor, timeout_s)
    raise InvalidArgumentError(f"Unknown rendezvous address {address!r}.")


def wait_for_peers(store: Any, rank: int, world_size: int, timeout_s: float,
                   peers_failed: Optional[Callable[[], bool]] = None) -> None:
    """Mark this rank arrived at ``store``, then wait until every rank has.

    The wait is here, in Python, so that it can end early: torch's own join waits out its
    whole timeout (30 minutes by default) for a peer that died before it arrived, while the
    launcher (``peers_failed``) already knows that it did.
    """
    store.set(f"{_ARRIVED}{rank}", b"1")
    keys = [f"{_ARRIVED}{other}" for other in range(world_size)]
    deadline, pause = time.monotonic() + timeout_s, 0.001
    while not store.check(keys):
        if peers_failed is not None and peers_failed():
            raise WorkerError(rank, "a peer rank failed before the process group formed")
        if time.monotonic() > deadline:
            missing = [other for other in range(world_size)
                       if not store.check([f"{_ARRIVED}{other}"])]
            raise WorkerError(rank, f"ranks {missing} never reached the process group within "
                                    f"{timeout_s:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


@functools.cache
def _actor_store_class() -> type:
    """``torch.distributed.Store`` over a ``_StoreActor`` (defined on use: it needs torch)."""
    import torch.distributed as dist

    class ActorStore(dist.Store):
        def __init__(self, actor: Any, timeout_s: float) -> None:
            super().__init__()
            self._actor, self._timeout_s = actor, timeout_s

        def set(self, key: str, value: Any) -> None:
            ray.get(self._actor.set.remote(key, _as_bytes(value)))

        def get(self, key: str) -> bytes:
            self.wait([key])
            return ray.get(self._actor.get.remote(key))

        def add(self, key: str, amount: int) -> int:
            return ray.get(self._actor.add.remote(key, amount))

        def compare_set(self, key: str, expected: Any, desired: Any) -> bytes:
            return ray.get(self._actor.compare_set.remote(key, _as_bytes(expected),
                                                          _as_bytes(desired)))

        def check(self, keys: List[str]) -> bool:
            return ray.get(self._actor.has.remote(list(keys)))

        def wait(self, keys: List[str], timeout: Any = None) -> None:
            limit = timeout.total_seconds() if timeout is not None else self._timeout_s
            deadline, pause = time.monotonic() + limit, 0.001
            while not self.check(keys):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Timed out after {limit:.0f} s waiting for rendezvous "
                                       f"keys {list(keys)}: a peer rank never arrived.")
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

        def delete_key(self, key: str) -> bool:
            return ray.get(self._actor.delete.remote(key))

        def num_keys(self) -> int:
            return ray.get(self._actor.size.remote())

    return ActorStore


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return bytes(value)
