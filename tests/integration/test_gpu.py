"""Checks that need CUDA GPUs: ``scripts/gpu_check.sh`` runs them on a machine that has some.

Skipped where no GPU is present. With one GPU the one-GPU-per-worker checks run one worker.
"""

import glob
import json

import pytest
import torch

from lightning_tune import RayDDPStrategy, RayFSDPStrategy, RayHorovodStrategy
from lightning_tune.examples import DigitsClassifier
from tests.conftest import fit_digits
from tests.models import RecordingClassifier

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = [pytest.mark.gpu, pytest.mark.timeout(300),
              pytest.mark.skipif(GPUS == 0, reason="no CUDA GPU on this machine")]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from lightning_tune.cluster import start_local_ray

    if ray.is_initialized():
        ray.shutdown()
    start_local_ray(num_cpus=4, num_gpus=GPUS, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def fit_records(directory):
    return sorted((json.load(open(path)) for path in glob.glob(str(directory / "fit_*.json"))),
                  key=lambda record: record["global_rank"])


def test_ddp_over_nccl_with_one_gpu_per_worker(ray_cluster, tmp_path):
    workers = min(2, GPUS)
    trainer = fit_digits(RayDDPStrategy(num_workers=workers, use_gpu=True),
                  RecordingClassifier(record_dir=str(tmp_path)))
    records = fit_records(tmp_path)
    assert [record["global_rank"] for record in records] == list(range(workers))
    assert {record["backend"] for record in records} == {"nccl"}
    # each worker sees its node's GPUs and trains on its own
    assert [record["device"] for record in records] == [f"cuda:{rank}" for rank in range(workers)]
    assert trainer.callback_metrics["val_acc"] > 0.5


def test_two_workers_sharing_one_gpu(ray_cluster, tmp_path):
    """Half a GPU each: both ranks train on the same device, their group over gloo (NCCL
    refuses two ranks on one GPU)."""
    trainer = fit_digits(RayDDPStrategy(num_workers=2, resources_per_worker={"GPU": 0.5}),
                  RecordingClassifier(record_dir=str(tmp_path)))
    records = fit_records(tmp_path)
    assert len(records) == 2 and records[0]["device"] == records[1]["device"]
    assert records[0]["device"].startswith("cuda") and {r["backend"] for r in records} == {"gloo"}
    assert trainer.callback_metrics["val_acc"] > 0.5


def test_fsdp_on_gpus_with_mixed_precision(ray_cluster):
    from torch.distributed.fsdp import MixedPrecision

    precision = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                               buffer_dtype=torch.float32)
    model = DigitsClassifier(lr=1e-2)
    trainer = fit_digits(RayFSDPStrategy(num_workers=min(2, GPUS), use_gpu=True,
                                  mixed_precision=precision, state_dict_type="sharded"), model)
    assert trainer.callback_metrics["val_acc"] > 0.5
    assert model.net[0].weight.dtype == torch.float32  # the driver's copy: whole, full precision


def horovod_built_with_cuda() -> bool:
    try:
        import horovod.torch as hvd
    except ImportError:
        return False
    return bool(hvd.cuda_built())


@pytest.mark.skipif(not horovod_built_with_cuda(),
                    reason="Horovod here has no CUDA build (scripts/build_horovod.sh builds the "
                           "gloo CPU controller)")
def test_horovod_on_gpus(ray_cluster):
    trainer = fit_digits(RayHorovodStrategy(num_workers=min(2, GPUS), use_gpu=True),
                  DigitsClassifier(lr=1e-2))
    assert trainer.callback_metrics["val_acc"] > 0.5
