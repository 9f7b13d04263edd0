"""get_tune_resources and worker-shape checks (no Ray needed)."""

import pytest

from lightning_tune import get_tune_resources
from lightning_tune.examples import DigitsClassifier
from lightning_tune.spec import TrialSpec


def test_head_bundle_then_one_bundle_per_worker():
    pgf = get_tune_resources(num_workers=3, cpus_per_worker=2)
    assert pgf.bundles == [{"CPU": 1.0}] + [{"CPU": 2.0}] * 3
    assert pgf.strategy == "PACK"


def test_gpus_custom_resources_head_and_strategy():
    pgf = get_tune_resources(2, cpus_per_worker=1, gpus_per_worker=0.5,
                             resources_per_worker={"accelerator_type:A100": 0.1}, head_cpus=2,
                             placement_strategy="SPREAD")
    assert pgf.bundles[0] == {"CPU": 2.0}
    assert pgf.bundles[1:] == [{"CPU": 1.0, "GPU": 0.5, "accelerator_type:A100": 0.1}] * 2
    assert pgf.strategy == "SPREAD"


def test_zero_cpu_head_is_dropped_by_tune_but_workers_stay():
    pgf = get_tune_resources(2, head_cpus=0)
    assert pgf.head_bundle_is_empty
    assert pgf.bundles == [{"CPU": 1.0}, {"CPU": 1.0}]


def test_trial_resources_for_ddp_and_single_process():
    ddp = TrialSpec(DigitsClassifier, strategy="ddp", num_workers=2)
    assert ddp.trial_resources().bundles == [{"CPU": 1.0}, {"CPU": 1.0}]
    single = TrialSpec(DigitsClassifier, num_workers=2, cpus_per_worker=3, gpus_per_worker=1)
    assert single.trial_resources().bundles == [{"CPU": 3.0, "GPU": 1.0}]


def test_cpu_and_gpu_in_resources_per_worker_override_the_counts():
    # Ray Train's convention: {"GPU": 0} turns GPUs off, {"CPU": 3} overrides cpus_per_worker
    pgf = get_tune_resources(2, cpus_per_worker=1, gpus_per_worker=1,
                             resources_per_worker={"CPU": 3, "GPU": 0}, head_cpus=0)
    assert pgf.bundles == [{"CPU": 3.0}, {"CPU": 3.0}]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_workers": 0}, "num_workers must be an integer >= 1"),
    ({"num_workers": 1.5}, "num_workers must be an integer >= 1"),
    ({"num_workers": 2, "cpus_per_worker": 0}, "cpus_per_worker must be > 0"),
    ({"num_workers": 2, "gpus_per_worker": -1}, "gpus_per_worker must be >= 0"),
    ({"num_workers": 2, "resources_per_worker": {"CPU": 0}}, "cpus_per_worker must be > 0"),
    ({"num_workers": 2, "resources_per_worker": {"TPU": -1}}, r"resources_per_worker\['TPU'\]"),
    ({"num_workers": 2, "head_cpus": -1}, "head_cpus must be >= 0"),
    ({"num_workers": 2, "placement_strategy": "TIGHT"}, "placement_strategy must be one of"),
])
def test_bad_shapes_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_tune_resources(**kwargs)
