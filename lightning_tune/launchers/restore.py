"""The checkpoint a job resumes from, made readable on every node that runs one of its ranks.

Tune hands a restarted trial its checkpoint as a path on the trial's node; every rank loads
it (FSDP's shards: each rank its own part, at the path rank 0 names). A rank on another
node without a shared file system would find nothing there, so the launcher ships the
checkpoint's files through the object store and each such node writes them at the *same*
path (paths are broadcast between ranks), removing them when the job ends.
"""

from __future__ import annotations

import inspect
import os
import shutil
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import ray

from lightning_tune.file_transfer import read_tree, write_tree

_PATH_ARGUMENT = "ckpt_path"  # how Lightning's trainer functions name it


class RestoreFiles(NamedTuple):
    """A checkpoint (file or folder) at ``path`` on the trial's node, and its files' bytes."""

    path: str
    files: Tuple[ray.ObjectRef, ...]  # one reference, to {relative path: bytes}


def restore_path(function: Callable, args: Tuple[Any, ...],
                 kwargs: Dict[str, Any]) -> Optional[str]:
    """The local checkpoint path the trainer function resumes from, if any."""
    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs)
    except TypeError:
        return None
    path = bound.arguments.get(_PATH_ARGUMENT)
    if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
        return os.fspath(path)
    return None


def files_for_other_nodes(path: Optional[str], node_ids: List[str]) -> Optional[RestoreFiles]:
    """``path``'s files in the object store when some rank runs on another node, else None."""
    here = ray.get_runtime_context().get_node_id()
    if path is None or all(node_id == here for node_id in node_ids):
        return None
    files = read_tree(path)
    return RestoreFiles(path, (ray.put(files),))


def materialize(restore: Optional[RestoreFiles]) -> Optional[str]:
    """Write the checkpoint at its path on this node unless it is there (a shared file system).

    Returns what this call created (to remove after the job), or None.
    """
    if restore is None or os.path.exists(restore.path):
        return None
    return write_checkpoint_at(restore.path, ray.get(restore.files[0]))


def write_checkpoint_at(path: str, files: Dict[str, bytes]) -> str:
    """Write ``files`` ({relative path: bytes}; "" for a single file) as ``path``.

    Written beside it first and renamed into place, so ranks of one node that race here
    never read a half-written checkpoint. Returns the outermost folder (or file) created.
    """
    created = _first_missing(path)
    staging = f"{path}.incoming-{os.getpid()}"
    write_tree(staging, files)
    try:
        os.rename(staging, path)  # the first rank of this node wins
    except OSError:
        _remove(staging)
    return created


def remove_materialized(created: Optional[str]) -> None:
    if created is not None:
        _remove(created)


def _first_missing(path: str) -> str:
    """The outermost folder (or the file) of ``path`` that does not exist yet."""
    missing = path
    parent = os.path.dirname(missing)
    while parent and not os.path.exists(parent):
        missing, parent = parent, os.path.dirname(parent)
    return missing


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
