"""FSDP and strategy_kwargs: bad options fail before Ray starts; good ones reach the strategy
and the experiment record."""

import pytest
import torch
from torch import nn

from lightning_tune import RayFSDPStrategy, tune_lightning
from lightning_tune import pytorch_lightning as twins
from lightning_tune.errors import InvalidArgumentError, UnknownArgumentError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.spec import TrialSpec

SPACE = {"lr": 1e-2}


pytestmark = pytest.mark.usefixtures("ray_must_not_start")


@pytest.mark.parametrize("strategy, options, error, message", [
    ("fsdp", {"sharding_strategi": "FULL_SHARD"}, UnknownArgumentError,
     "unexpected keyword argument 'sharding_strategi'. Did you mean sharding_strategy"),
    ("fsdp", {"state_dict_type": "consolidated"}, InvalidArgumentError,
     "state_dict_type must be 'full' .* or 'sharded'"),
    ("fsdp", {"sharding_strategy": "HYBRID_SHARD"}, InvalidArgumentError,
     r"needs device_mesh=\(replicas, shard_size\)"),
    ("fsdp", {"sharding_strategy": "_HYBRID_SHARD_ZERO2", "device_mesh": (2, 2)},
     InvalidArgumentError, r"device_mesh=\(2, 2\) spans 4 ranks, but the trial has num_workers=2"),
    ("fsdp", {"sharding_strategy": "QUARTER_SHARD"}, InvalidArgumentError,
     "sharding_strategy must be one of FULL_SHARD"),
    ("fsdp", {"num_workers": 4}, InvalidArgumentError,
     "strategy_kwargs may not set 'num_workers': use the num_workers argument"),
    ("ddp", {"find_unused_parameter": True}, UnknownArgumentError,
     "Did you mean find_unused_parameters"),
    (None, {"state_dict_type": "sharded"}, InvalidArgumentError,
     "strategy_kwargs are options of a Ray strategy"),
])
def test_bad_strategy_options_fail_before_ray_starts(strategy, options, error, message):
    with pytest.raises(error, match=message):
        tune_lightning(DigitsClassifier, SPACE, datamodule=DigitsDataModule, strategy=strategy,
                       num_workers=2, strategy_kwargs=options, num_samples=1)


def test_an_option_lightning_refuses_is_reported_as_the_users_input():
    # Lightning's own check: device_mesh and process_group exclude each other
    with pytest.raises(InvalidArgumentError, match="refused strategy_kwargs.*mutually exclusive"):
        tune_lightning(DigitsClassifier, SPACE, strategy="fsdp", num_workers=2, num_samples=1,
                       strategy_kwargs={"device_mesh": (1, 2), "process_group": object()})


def test_fsdp_options_reach_lightnings_strategy_in_both_trees():
    from torch.distributed.fsdp import CPUOffload, ShardingStrategy

    for strategy_cls in (RayFSDPStrategy, twins.RayFSDPStrategy):
        strategy = strategy_cls(num_workers=2, cpus_per_worker=0.5,
                                sharding_strategy="SHARD_GRAD_OP", cpu_offload=True,
                                state_dict_type="sharded", auto_wrap_policy={nn.Linear},
                                activation_checkpointing_policy={nn.Linear})
        assert strategy.sharding_strategy is ShardingStrategy.SHARD_GRAD_OP
        assert strategy.cpu_offload == CPUOffload(offload_params=True)
        assert strategy.state_dict_type == "sharded"
        assert "auto_wrap_policy" in strategy.kwargs
        assert (strategy.num_workers, strategy.worker_bundle) == (2, {"CPU": 0.5})
    assert isinstance(twins.RayFSDPStrategy(num_workers=1), RayFSDPStrategy)


def test_plain_strategy_kwargs_are_recorded_and_objects_must_be_given_again():
    plain = TrialSpec(DigitsClassifier, strategy="fsdp", num_workers=2,
                      strategy_kwargs={"state_dict_type": "sharded"})
    assert plain.to_record()["strategy_kwargs"] == {"state_dict_type": "sharded"}
    assert plain.must_resupply() == []
    assert TrialSpec.from_record(plain.to_record(), DigitsClassifier) == plain
    wrapped = TrialSpec(DigitsClassifier, strategy="fsdp", num_workers=2,
                        strategy_kwargs={"auto_wrap_policy": {nn.Linear}})
    assert wrapped.to_record()["strategy_kwargs"] is None
    assert wrapped.must_resupply() == ["strategy_kwargs"]


def test_a_record_without_strategy_kwargs_reads_back_with_none():
    settings = TrialSpec(DigitsClassifier, strategy="ddp", num_workers=2).to_record()
    del settings["strategy_kwargs"]  # written before the field existed
    assert TrialSpec.from_record(settings, DigitsClassifier).strategy_kwargs == {}


def test_mixed_precision_objects_pass_through():
    from torch.distributed.fsdp import MixedPrecision

    precision = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    strategy = RayFSDPStrategy(num_workers=2, mixed_precision=precision)
    assert strategy.mixed_precision_config is precision
