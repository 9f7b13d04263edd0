"""Sharded checkpoints (a folder of ``torch.distributed.checkpoint`` shards), read as data only.

FSDP with ``state_dict_type="sharded"`` saves a folder: one ``.distcp`` file per rank, an
index (``.metadata``) and Lightning's ``meta.pt``. torch reads the index with ``pickle`` and
the non-tensor entries of the shards with ``torch.load(weights_only=False)``, so a folder
someone replaced could run code when it is loaded. Before any of that,
:func:`check_loadable_as_data` reads the index with an unpickler that makes only the index's
own classes, and every non-tensor entry as data only; :func:`load_model_weights`
consolidates the model's weights in one process, without a process group.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any, Dict

import torch

from lightning_tune.errors import UnsafeCheckpointError

INDEX_FILENAME = ".metadata"
_MODEL_PREFIX = "model."  # Lightning saves the module's state under "model"
# what a shard index is made of (beyond torch's dtypes and Size): its own dataclasses and a
# few helpers that rebuild a value from its name; nothing here runs code of the file's choice
_INDEX_MODULE = "torch.distributed.checkpoint.metadata"
_INDEX_GLOBALS = {
    ("torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING"),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"), ("collections", "OrderedDict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
}
_TORCH_TYPES = (torch.dtype, torch.memory_format, torch.layout)


def is_sharded_checkpoint(path: Any) -> bool:
    """Whether ``path`` is a folder of shards (as opposed to one checkpoint file)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, INDEX_FILENAME))


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles a shard index, refusing any global that is not part of one."""

    def find_class(self, module: str, name: str) -> Any:
        if module == _INDEX_MODULE and not name.startswith("_") or (module, name) in _INDEX_GLOBALS:
            return super().find_class(module, name)
        if module == "torch":
            value = getattr(torch, name, None)
            if value is torch.Size or isinstance(value, _TORCH_TYPES):
                return value
        raise UnsafeCheckpointError(
            f"The shard index refers to {module}.{name}, which a checkpoint index never holds; "
            "the checkpoint may have been tampered with, so it is not loaded.")


def read_index(folder: str) -> Any:
    """The folder's shard index (``torch.distributed.checkpoint`` ``Metadata``), as data only."""
    with open(os.path.join(folder, INDEX_FILENAME), "rb") as handle:
        try:
            return _IndexUnpickler(handle).load()
        except UnsafeCheckpointError:
            raise
        except Exception as error:
            raise UnsafeCheckpointError(
                f"The shard index {os.path.join(folder, INDEX_FILENAME)} could not be read as "
                f"data ({error}); the checkpoint is damaged or was tampered with.") from error


def check_loadable_as_data(path: Any) -> None:
    """Refuse a shard folder whose index or non-tensor entries are more than data.

    (A single checkpoint file is left to ``torch.load(weights_only=True)``.)
    """
    path = os.fspath(path)
    if not is_sharded_checkpoint(path):
        return
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    index = read_index(path)
    for key, location in (index.storage_data or {}).items():
        if not isinstance(index.state_dict_metadata.get(key.fqn), BytesStorageMetadata):
            continue
        if getattr(location, "transform_descriptors", None):
            raise UnsafeCheckpointError(
                f"The entry {key.fqn!r} of {path} is stored transformed (compressed), which "
                "this toolkit cannot check; it is not loaded.")
        with open(os.path.join(path, location.relative_path), "rb") as handle:
            handle.seek(location.offset)
            data = handle.read(location.length)
        try:
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:
            raise UnsafeCheckpointError(
                f"The entry {key.fqn!r} of {path} is not plain data ({error}); the checkpoint "
                "may have been tampered with, so it is not loaded.") from error


def load_model_weights(folder: str) -> Dict[str, torch.Tensor]:
    """The model's full state dict from a shard folder, consolidated here (no process group)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    check_loadable_as_data(folder)
    index = read_index(folder)
    weights = {key: torch.empty(entry.size, dtype=entry.properties.dtype)
               for key, entry in index.state_dict_metadata.items()
               if key.startswith(_MODEL_PREFIX) and isinstance(entry, TensorStorageMetadata)}
    dcp.load(weights, storage_reader=_data_only_reader(folder), no_dist=True)
    return {key[len(_MODEL_PREFIX):]: tensor for key, tensor in weights.items()}


def _reader_class() -> type:
    from torch.distributed.checkpoint import FileSystemReader

    class DataOnlyReader(FileSystemReader):
        """torch's folder reader, its index read as data only."""

        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            index = read_index(os.fspath(self.path))
            if getattr(index, "storage_meta", None) is None:
                from torch.distributed.checkpoint.metadata import StorageMeta

                index.storage_meta = StorageMeta()
            index.storage_meta.load_id = self.load_id
            return index

    return DataOnlyReader


def _data_only_reader(folder: str) -> Any:
    """torch's folder reader over ``folder``, its index read as data only."""
    return _reader_class()(folder)
