"""get_tune_resources and worker-shape checks (no Ray needed)."""

import pytest

from lightning_tune import get_tune_resources
from lightning_tune.trainable import trial_resources


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
    assert trial_resources("ddp", 2, 1, 0).bundles == [{"CPU": 1.0}, {"CPU": 1.0}]
    assert trial_resources(None, 2, 3, 1).bundles == [{"CPU": 3.0, "GPU": 1.0}]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_workers": 0}, "num_workers must be an integer >= 1"),
    ({"num_workers": 1.5}, "num_workers must be an integer >= 1"),
    ({"num_workers": 2, "cpus_per_worker": 0}, "cpus_per_worker must be > 0"),
    ({"num_workers": 2, "gpus_per_worker": -1}, "gpus_per_worker must be >= 0"),
    ({"num_workers": 2, "resources_per_worker": {"CPU": 2}}, "may not contain 'CPU'"),
    ({"num_workers": 2, "head_cpus": -1}, "head_cpus must be >= 0"),
    ({"num_workers": 2, "placement_strategy": "TIGHT"}, "placement_strategy must be one of"),
])
def test_bad_shapes_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_tune_resources(**kwargs)
