"""Shared fixtures: one local Ray per test module, importable test models on every worker."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Ray workers inherit the driver's environment at ray.init: let them import tests.models.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="module")
def ray_cpus():
    """CPUs of the module's Ray instance; a module overrides this fixture to change it."""
    return 4


@pytest.fixture(scope="module")
def ray_cluster(ray_cpus):
    import ray

    from lightning_tune.cluster import start_local_ray

    if ray.is_initialized():
        ray.shutdown()
    # the toolkit's own loopback-only local Ray: every test trains over 127.0.0.1
    start_local_ray(num_cpus=ray_cpus, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def alive_actors(class_name: str, settle_s: float = 15.0) -> list:
    """Actors of this class not yet DEAD, once Ray has had ``settle_s`` to finish killing them.

    Reads the GCS directly (Ray's state API needs the dashboard, which tests leave off).
    """
    import time

    import ray._private.state as ray_state

    deadline = time.monotonic() + settle_s
    while True:
        alive = [actor for actor in ray_state.actors().values()
                 if actor["ActorClassName"] == class_name and actor["State"] != "DEAD"]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture
def ray_must_not_start():
    """For tests of bad input: the error must come before Ray starts."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield
    assert not ray.is_initialized(), "the error must come before Ray starts"


def fit_digits(strategy, model, max_epochs=2, **trainer_kwargs):
    """``model`` fitted on the digits data by a quiet Trainer with ``strategy``; the trainer."""
    import lightning.pytorch as pl

    from lightning_tune.examples import DigitsDataModule

    trainer = pl.Trainer(max_epochs=max_epochs, strategy=strategy, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, **trainer_kwargs)
    trainer.fit(model, datamodule=DigitsDataModule())
    return trainer
