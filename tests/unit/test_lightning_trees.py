"""Strategies and callbacks are made for the Lightning tree the user trains with."""

import pickle

import lightning.pytorch.cli  # noqa: F401  (LightningCLI)

import lightning.pytorch
import pytest
import pytorch_lightning
import ray.cloudpickle

from lightning_tune import RayDDPStrategy, TuneReportCallback, TuneReportCheckpointCallback
from lightning_tune.lightning_trees import LIGHTNING, PYTORCH_LIGHTNING, guess_user_tree, tree_of


def test_tree_of_classes_instances_and_modules():
    assert tree_of(lightning.pytorch.LightningModule) == LIGHTNING
    assert tree_of(pytorch_lightning.Trainer) == PYTORCH_LIGHTNING
    assert tree_of(lightning.pytorch) == LIGHTNING
    assert tree_of(object()) is None
    assert tree_of(pytest) is None


def test_both_trees_loaded_follows_the_calling_module():
    # this module imports both trees, so the default applies; explicit choice always works
    assert guess_user_tree(None) == LIGHTNING
    frame = type("Frame", (), {"f_globals": {"pl": pytorch_lightning}})()
    assert guess_user_tree(frame) == PYTORCH_LIGHTNING


@pytest.mark.parametrize("tree, module", [(LIGHTNING, lightning.pytorch),
                                          (PYTORCH_LIGHTNING, pytorch_lightning)])
def test_for_tree_makes_real_subclasses_of_that_tree(tree, module):
    strategy = RayDDPStrategy.for_tree(tree)(num_workers=2)
    assert isinstance(strategy, module.strategies.DDPStrategy)
    assert isinstance(strategy, RayDDPStrategy)
    callback = TuneReportCheckpointCallback.for_tree(tree)(metrics="val_loss")
    assert isinstance(callback, module.Callback)
    trainer = module.Trainer(strategy=strategy, callbacks=[callback], logger=False,
                             enable_progress_bar=False)
    assert trainer.strategy is strategy
    assert trainer.world_size == 2 and trainer.global_rank == 0


@pytest.mark.parametrize("dumps, loads", [(pickle.dumps, pickle.loads),
                                          (ray.cloudpickle.dumps, ray.cloudpickle.loads)])
def test_concrete_classes_survive_pickling(dumps, loads):
    strategy = RayDDPStrategy.for_tree(PYTORCH_LIGHTNING)(num_workers=3, cpus_per_worker=2)
    copy = loads(dumps(strategy))
    assert type(copy) is type(strategy)
    assert copy.num_workers == 3 and copy.worker_bundle == {"CPU": 2}
    callback = loads(dumps(TuneReportCallback.for_tree(LIGHTNING)(metrics=["a", "b"])))
    assert isinstance(callback, lightning.pytorch.Callback)
    assert callback._metrics == {"a": "a", "b": "b"}


def test_callback_arguments_are_checked():
    with pytest.raises(ValueError, match="is not a hook"):
        TuneReportCallback(on="validation_finish")
    assert TuneReportCallback(on=["on_train_epoch_end", "validation_end"])._on == [
        "train_epoch_end", "validation_end"]
    assert TuneReportCallback({"loss": "val_loss"})._metrics == {"loss": "val_loss"}
    assert TuneReportCallback("val_loss")._metrics == {"val_loss": "val_loss"}


def test_strategy_arguments_are_checked():
    with pytest.raises(ValueError, match="num_workers"):
        RayDDPStrategy(num_workers=0)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        RayDDPStrategy(num_workers=2, cpus_per_worker=0)
    with pytest.raises(TypeError, match="init_hook"):
        RayDDPStrategy(num_workers=2, init_hook="not callable")
    gpu = RayDDPStrategy(num_workers=2, use_gpu=True, resources_per_worker={"GPU": 0.5})
    assert gpu.worker_bundle == {"CPU": 1, "GPU": 0.5}


def test_public_classes_are_lightning_classes_and_have_pytorch_lightning_twins():
    from lightning_tune import RayHorovodStrategy
    from lightning_tune import pytorch_lightning as twins

    assert issubclass(RayDDPStrategy, lightning.pytorch.strategies.DDPStrategy)
    assert issubclass(RayHorovodStrategy, lightning.pytorch.strategies.ParallelStrategy)
    assert issubclass(TuneReportCallback, lightning.pytorch.Callback)
    assert issubclass(TuneReportCheckpointCallback, lightning.pytorch.Callback)
    assert issubclass(twins.RayDDPStrategy, pytorch_lightning.strategies.DDPStrategy)
    assert not issubclass(twins.RayDDPStrategy, lightning.pytorch.strategies.DDPStrategy)
    assert issubclass(twins.TuneReportCheckpointCallback, pytorch_lightning.Callback)
    assert RayDDPStrategy.for_tree(PYTORCH_LIGHTNING) is twins.RayDDPStrategy
    assert twins.RayDDPStrategy.for_tree(LIGHTNING) is RayDDPStrategy
    # a twin counts as the public class, but a user's subclass is a plain class
    assert isinstance(twins.RayDDPStrategy(num_workers=2), RayDDPStrategy)

    class Mine(RayDDPStrategy):
        pass

    assert type(Mine(num_workers=2)) is Mine


def test_construction_follows_the_users_tree():
    frame_globals = {"pl": pytorch_lightning}
    strategy = eval("RayDDPStrategy(num_workers=2)", {**frame_globals,
                                                       "RayDDPStrategy": RayDDPStrategy})
    assert isinstance(strategy, pytorch_lightning.strategies.DDPStrategy)
    assert strategy.num_workers == 2


@pytest.mark.parametrize("wrong, meant", [("num_cpus_per_worker", "cpus_per_worker"),
                                          ("find_unused_parameter", "find_unused_parameters"),
                                          ("num_worker", "num_workers")])
def test_an_unknown_keyword_is_refused_at_construction_naming_the_one_meant(wrong, meant):
    from lightning_tune.errors import UnknownArgumentError

    with pytest.raises(UnknownArgumentError, match=f"'{wrong}'. Did you mean {meant}"):
        RayDDPStrategy(**{wrong: 2})
    with pytest.raises(TypeError):  # still a TypeError, as Python's own would be
        RayDDPStrategy(**{wrong: 2})


def test_resources_per_worker_cpu_and_gpu_override_the_counts():
    assert RayDDPStrategy(num_workers=2, cpus_per_worker=1,
                          resources_per_worker={"CPU": 3}).worker_bundle == {"CPU": 3}
    off = RayDDPStrategy(num_workers=2, use_gpu=True, resources_per_worker={"GPU": 0})
    assert off.use_gpu is False and off.worker_bundle == {"CPU": 1}
    two = RayDDPStrategy(num_workers=2, resources_per_worker={"GPU": 2})
    assert two.use_gpu is True and two.worker_bundle == {"CPU": 1, "GPU": 2}


def _lightning_cli(module, classes, args):
    return module.cli.LightningCLI(*classes, run=False, args=args + ["--trainer.logger=false"])


def test_lightning_cli_builds_our_strategy_in_lightning_pytorch():
    from lightning_tune.examples import DigitsClassifier, DigitsDataModule

    cli = _lightning_cli(lightning.pytorch, (DigitsClassifier, DigitsDataModule), [
        "--trainer.strategy=lightning_tune.RayDDPStrategy", "--trainer.strategy.num_workers=2",
        "--trainer.strategy.cpus_per_worker=0.5", "--trainer.strategy.find_unused_parameters=true"])
    strategy = cli.trainer.strategy
    assert type(strategy) is RayDDPStrategy
    assert (strategy.num_workers, strategy.worker_bundle) == (2, {"CPU": 0.5})
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert cli.trainer.world_size == 2


def test_lightning_cli_builds_the_twin_in_pytorch_lightning():
    import pytorch_lightning.cli  # noqa: F401  (the submodule LightningCLI lives in)

    from lightning_tune import pytorch_lightning as twins
    from tests.models_pl import PLDigitsClassifier, PLDigitsDataModule

    cli = _lightning_cli(pytorch_lightning, (PLDigitsClassifier, PLDigitsDataModule), [
        "--trainer.strategy=lightning_tune.pytorch_lightning.RayDDPStrategy",
        "--trainer.strategy.num_workers=2"])
    assert type(cli.trainer.strategy) is twins.RayDDPStrategy
    assert cli.trainer.world_size == 2


def test_lightning_cli_builds_the_fsdp_strategy_with_its_options():
    from lightning_tune import RayFSDPStrategy
    from lightning_tune.examples import DigitsClassifier, DigitsDataModule

    cli = _lightning_cli(lightning.pytorch, (DigitsClassifier, DigitsDataModule), [
        "--trainer.strategy=lightning_tune.RayFSDPStrategy", "--trainer.strategy.num_workers=2",
        "--trainer.strategy.state_dict_type=sharded",
        "--trainer.strategy.sharding_strategy=SHARD_GRAD_OP"])
    strategy = cli.trainer.strategy
    assert type(strategy) is RayFSDPStrategy
    assert strategy.state_dict_type == "sharded" and strategy.sharding_strategy.name == "SHARD_GRAD_OP"
    assert cli.trainer.world_size == 2


def test_every_ray_strategy_meets_the_launchers_contract():
    from lightning_tune import RayFSDPStrategy, RayHorovodStrategy
    from lightning_tune import pytorch_lightning as twins
    from lightning_tune.launchers.contract import RayLaunchedStrategy

    for strategy_cls in (RayDDPStrategy, RayFSDPStrategy, RayHorovodStrategy,
                         twins.RayDDPStrategy, twins.RayFSDPStrategy, twins.RayHorovodStrategy):
        strategy = strategy_cls(num_workers=2, worker_timeout_s=30.0)
        assert isinstance(strategy, RayLaunchedStrategy), strategy_cls
        assert strategy.worker_bundle == {"CPU": 1} and strategy.worker_timeout_s == 30.0
    assert not isinstance(lightning.pytorch.strategies.DDPStrategy(), RayLaunchedStrategy)


def test_copies_and_unpickled_strategies_keep_their_class_whatever_the_caller():
    import copy

    strategy = RayDDPStrategy.for_tree(LIGHTNING)(num_workers=3)
    pytorch_lightning_code = {"pl": pytorch_lightning, "copy": copy, "pickle": pickle,
                              "strategy": strategy}
    for expression in ("copy.deepcopy(strategy)", "pickle.loads(pickle.dumps(strategy))"):
        again = eval(expression, pytorch_lightning_code)
        assert type(again) is RayDDPStrategy and again.num_workers == 3


def test_horovod_names_a_keyword_it_does_not_take():
    from lightning_tune import RayHorovodStrategy
    from lightning_tune.errors import UnknownArgumentError

    with pytest.raises(UnknownArgumentError, match="'num_cpus_per_worker'. Did you mean cpus_per_worker"):
        RayHorovodStrategy(num_workers=2, num_cpus_per_worker=2)


def test_make_for_tree_takes_the_tree_it_is_told_whatever_the_caller():
    pytorch_lightning_code = {"pl": pytorch_lightning, "RayDDPStrategy": RayDDPStrategy,
                              "LIGHTNING": LIGHTNING}
    made = eval("RayDDPStrategy.make_for_tree(LIGHTNING, num_workers=2)", pytorch_lightning_code)
    assert type(made) is RayDDPStrategy and made.num_workers == 2
    guessed = eval("RayDDPStrategy(num_workers=2)", pytorch_lightning_code)
    assert isinstance(guessed, pytorch_lightning.strategies.DDPStrategy)
