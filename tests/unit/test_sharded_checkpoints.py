"""Shard folders are consolidated in one process and read as data only; a checkpoint a rank
resumes from is written at the same path on its node."""

import os
import pickle

import pytest
import torch
import torch.distributed.checkpoint as dcp

from lightning_tune.errors import UnsafeCheckpointError
from lightning_tune.file_transfer import read_tree
from lightning_tune.launchers.restore import restore_path, write_checkpoint_at
from lightning_tune.sharded_checkpoints import (INDEX_FILENAME, check_loadable_as_data,
                                                is_sharded_checkpoint, load_model_weights)


@pytest.fixture
def shard_folder(tmp_path):
    """A folder as FSDP's sharded save lays it out (written here in one process)."""
    folder = tmp_path / "checkpoint"
    weights = {"net.0.weight": torch.randn(8, 4), "net.0.bias": torch.randn(8)}
    state = {"model": weights,
             "optimizer_0": {"param_groups": [{"lr": 0.01, "params": ["net.0.weight"]}]}}
    dcp.save(state, checkpoint_id=str(folder), no_dist=True)
    return folder, weights


def test_a_shard_folder_consolidates_to_the_model_weights(shard_folder):
    folder, weights = shard_folder
    assert is_sharded_checkpoint(folder) and not is_sharded_checkpoint(folder / INDEX_FILENAME)
    check_loadable_as_data(folder)  # a genuine folder passes
    loaded = load_model_weights(str(folder))
    assert loaded.keys() == weights.keys()
    for name, value in weights.items():
        assert torch.equal(loaded[name], value)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_tampered_index_is_refused_without_running_its_code(shard_folder, tmp_path):
    folder, _ = shard_folder
    marker = str(tmp_path / "code_ran")
    (folder / INDEX_FILENAME).write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(UnsafeCheckpointError, match="posix.mkdir|os.mkdir"):
        load_model_weights(str(folder))
    with pytest.raises(pickle.UnpicklingError):  # what torch.load(weights_only=True) raises too
        check_loadable_as_data(folder)
    assert not os.path.exists(marker)


def test_a_tampered_non_tensor_entry_is_refused_without_running_its_code(shard_folder, tmp_path):
    """torch loads a shard folder's non-tensor entries with weights_only=False."""
    folder, _ = shard_folder
    marker = str(tmp_path / "code_ran")
    index = pickle.loads((folder / INDEX_FILENAME).read_bytes())
    key, location = next((key, location) for key, location in index.storage_data.items()
                         if key.fqn.startswith("optimizer_0.param_groups"))
    shard = folder / location.relative_path
    data = bytearray(shard.read_bytes())
    import io
    buffer = io.BytesIO()
    torch.save(_RunsCode(marker), buffer)
    payload = buffer.getvalue()
    data[location.offset:location.offset + location.length] = payload
    shard.write_bytes(bytes(data))
    location.length = len(payload)
    (folder / INDEX_FILENAME).write_bytes(pickle.dumps(index))
    with pytest.raises(UnsafeCheckpointError, match=f"entry '{key.fqn}'.*not plain data"):
        check_loadable_as_data(folder)
    assert not os.path.exists(marker)


def test_a_checkpoint_is_written_at_the_same_path_on_another_node(shard_folder, tmp_path):
    folder, weights = shard_folder
    files = read_tree(str(folder))
    elsewhere = tmp_path / "node_b" / "trial" / "checkpoint_000001" / "checkpoint"
    created = write_checkpoint_at(str(elsewhere), files)
    assert created == str(tmp_path / "node_b")  # the outermost folder that was missing
    assert read_tree(str(elsewhere)) == files
    assert not any(name.startswith("checkpoint.incoming") for name in os.listdir(elsewhere.parent))
    single = tmp_path / "node_c" / "model.ckpt"
    write_checkpoint_at(str(single), {"": b"one file"})
    assert single.read_bytes() == b"one file"


def test_the_resume_path_is_found_in_the_trainer_functions_arguments(tmp_path):
    def fit_impl(model, train_dataloaders=None, val_dataloaders=None, datamodule=None,
                 ckpt_path=None, weights_only=None):
        pass

    existing = tmp_path / "checkpoint"
    existing.write_bytes(b"x")
    positional = ("model", None, None, None, str(existing), True)
    assert restore_path(fit_impl, positional, {}) == str(existing)
    assert restore_path(fit_impl, ("model",), {"ckpt_path": existing}) == str(existing)
    assert restore_path(fit_impl, ("model",), {"ckpt_path": "last"}) is None  # not a path here
    assert restore_path(fit_impl, ("model",), {}) is None
