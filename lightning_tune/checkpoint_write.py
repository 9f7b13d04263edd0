"""A reported checkpoint is written once, where Tune keeps it.

Two copies used to sit between a trainer's state and Tune's checkpoint folder. Lightning's
default checkpoint writer serialises the whole checkpoint into an in-memory buffer and then
writes the buffer out (two extra copies of a large state in memory); and ``tune.report``
copies the folder it is given into the trial's storage. Here the report callback's save goes
through :func:`direct_save` (``torch.save`` straight into the file), into a folder made
beside the trial's storage folder (:func:`staging_parent`), which :func:`report_in_place`
renames into the checkpoint folder Tune is about to fill, so Tune finds nothing left to copy.

A user's own checkpoint IO and FSDP's sharded save keep their own writers (their folders
are still moved); remote storage (``s3://...``), a rank 0 on another node or a folder on
another file system fall back to Tune's copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from typing import Any, Dict, Iterator, Optional

# the checkpoint writer Lightning uses unless a plugin replaces it (both trees name it so)
_DEFAULT_IO = "TorchCheckpointIO"


class _DirectWrite:
    """Stands in for Lightning's default checkpoint IO during one save: ``torch.save`` into
    a file beside the target, renamed over it (atomic, without the in-memory buffer)."""

    def __init__(self, default: Any) -> None:
        self._default = default

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any,
                        storage_options: Optional[Any] = None) -> None:
        path = os.fspath(path)
        if storage_options is not None or "://" in path:
            self._default.save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        import torch  # here: the bridge's queue actor imports this module without torch

        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        partial = f"{path}.partial"
        torch.save(checkpoint, partial)
        os.replace(partial, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._default, name)


@contextlib.contextmanager
def direct_save(trainer: Any) -> Iterator[None]:
    """While open, ``trainer.save_checkpoint`` writes its file once (Lightning's default
    checkpoint IO only; a user's own IO plugin is left to do its work)."""
    strategy = trainer.strategy
    default = getattr(strategy, "checkpoint_io", None)
    if type(default).__name__ != _DEFAULT_IO:
        yield
        return
    strategy.checkpoint_io = _DirectWrite(default)
    try:
        yield
    finally:
        strategy.checkpoint_io = default


def _local_storage() -> Optional[Any]:
    """This Tune trial's storage context when its storage is a local folder, else None."""
    from ray import tune  # here: worker processes import this module without Tune

    try:
        with warnings.catch_warnings():  # outside a trial Ray warns and answers None
            warnings.simplefilter("ignore")
            storage = tune.get_context().get_storage()
    except (AttributeError, RuntimeError):
        return None
    import pyarrow.fs

    if storage is None or not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return storage


def staging_parent() -> Optional[str]:
    """Where a trial process's report should save its checkpoint folder so that it can be
    renamed into Tune's: the trial's own storage folder, when that is local; else None."""
    storage = _local_storage()
    if storage is None:
        return None
    os.makedirs(storage.trial_fs_path, exist_ok=True)
    return storage.trial_fs_path


def report_in_place(metrics: Dict[str, Any], directory: str) -> None:
    """``tune.report`` with the checkpoint in ``directory``, moved rather than copied when
    it can be: renamed into the folder Tune persists this checkpoint to, which leaves Tune
    an empty folder to copy. ``directory`` still exists (empty) afterwards."""
    from ray import tune

    storage = _local_storage()
    target = None
    if storage is not None:
        with contextlib.suppress(AttributeError):
            target = os.path.join(storage.trial_fs_path, type(storage)._make_checkpoint_dir_name(
                storage.current_checkpoint_index + 1))
    moved = False
    if target is not None and not os.path.exists(target):
        try:
            os.rename(directory, target)
            os.mkdir(directory)
            moved = True
        except OSError:  # another file system: Tune copies it
            if os.path.isdir(target) and not os.path.isdir(directory):
                os.rename(target, directory)
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
    if moved and os.path.normpath(storage.checkpoint_fs_path) != os.path.normpath(target):
        # Tune numbered this checkpoint otherwise than foreseen: put the files where it looks
        shutil.copytree(target, storage.checkpoint_fs_path, dirs_exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
