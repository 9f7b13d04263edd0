"""A shared object travels by its key, and a new job starts from its own references (no Ray:
the object store's get is stood in for)."""

import pickle
from types import SimpleNamespace

import pytest
import torch

from lightning_tune import shared_data
from lightning_tune.errors import UnknownNameError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(monkeypatch):
    """An object store of one object, 40 MB of tensor, and how often it was read."""
    # a datamodule-like object (pickle hands plain dicts and lists to no reducer)
    objects = {"ref-1": SimpleNamespace(images=torch.ones(10 * 2 ** 20))}
    reads = []
    monkeypatch.setattr(shared_data.ray, "get", lambda ref: reads.append(ref) or objects[ref])
    yield objects, reads
    shared_data.use_references({})


def test_a_fetched_object_is_pickled_by_its_key(store):
    objects, reads = store
    shared_data.use_references({"data": "ref-1"})
    data = shared_data.fetch("data")
    assert data is objects["ref-1"] and shared_data.fetch("data") is data and reads == ["ref-1"]
    job = {"datamodule": data, "lr": 0.1}
    payload = shared_data.dumps(job)
    assert len(payload) < 10_000  # not the 40 MB
    assert len(pickle.dumps(job)) > 40 * 2 ** 20
    again = pickle.loads(payload)  # where it is unpickled, the key is fetched
    assert again["datamodule"] is data and again["lr"] == 0.1
    # an equal object that was not fetched is pickled whole
    assert len(shared_data.dumps(SimpleNamespace(images=torch.ones(10 * 2 ** 20)))) > 40 * 2 ** 20


def test_each_job_fetches_afresh_and_only_what_it_names(store):
    objects, reads = store
    shared_data.use_references({"data": "ref-1"})
    first = shared_data.fetch("data")
    assert shared_data.references() == {"data": "ref-1"}
    shared_data.use_references({"data": "ref-1"})  # the next trial in this process
    shared_data.fetch("data")
    assert reads == ["ref-1", "ref-1"]
    assert first is objects["ref-1"]
    shared_data.use_references({})
    with pytest.raises(UnknownNameError, match="No shared object 'data'"):
        shared_data.fetch("data")
