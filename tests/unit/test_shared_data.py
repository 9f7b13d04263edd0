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


def test_large_constants_of_the_space_are_shared_and_fetched_where_the_trial_builds(
        monkeypatch):
    import numpy as np
    from ray import tune

    from lightning_tune.errors import InvalidArgumentError

    stored = {}

    def put(value):
        stored[f"ref-{len(stored)}"] = value
        return f"ref-{len(stored) - 1}"

    monkeypatch.setattr(shared_data.ray, "put", put)
    monkeypatch.setattr(shared_data.ray, "get", lambda ref: stored[ref])
    # 4 MB of tensor; a list of words, 2 MB pickled
    table, vocabulary = torch.ones(2 ** 20), [f"word{index}" for index in range(200_000)]
    space = {"lr": tune.loguniform(1e-3, 1e-1), "table": table, "vocabulary": vocabulary,
             "hidden": 32, "name": "small", "grid": tune.grid_search([1, 2]),
             "nested": {"width": tune.choice([16, 32]), "big": np.ones(2 ** 20)}}
    shared, references = shared_data.share_large_constants(space)
    assert shared_data.shared_constant_names(shared) == ["table", "vocabulary"]
    assert repr(shared["table"]) == "<table: 4.0 MB, shared>"
    assert {name: shared[name] for name in ("lr", "hidden", "name", "grid", "nested")} == {
        name: space[name] for name in ("lr", "hidden", "name", "grid", "nested")}
    assert sorted(references) == ["constant/table", "constant/vocabulary"]
    # in a trial whose job named the references: fetched; the small entries as they were
    shared_data.use_references(references)
    config = {"lr": 0.01, "hidden": 32, "table": shared["table"],
              "vocabulary": shared["vocabulary"]}
    built = shared_data.with_constants(config)
    assert built["table"] is table and built["vocabulary"] is vocabulary and built["lr"] == 0.01
    assert config["table"] == shared["table"]  # the trial's config itself keeps the name
    # where the object store is not at hand, they must be given, each one named
    given = shared_data.with_constants(config, {"table": table, "vocabulary": 2})
    # a copy: weights loaded into a model that wraps it leave the caller's tensor as it was
    assert torch.equal(given["table"], table) and given["table"] is not table
    with pytest.raises(InvalidArgumentError, match=r"\['vocabulary'\] were large constants"
                       r".*constants=\{'vocabulary': \.\.\.\}"):
        shared_data.with_constants(config, {"table": 1})
    assert shared_data.with_constants({"lr": 0.1}, {}) == {"lr": 0.1}
