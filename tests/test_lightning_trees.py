"""Strategies and callbacks are made for the Lightning tree the user trains with."""

import pickle

import lightning.pytorch
import pytest
import pytorch_lightning
import ray.cloudpickle

from lightning_tune import RayDDPStrategy, TuneReportCallback, TuneReportCheckpointCallback
from lightning_tune._lightning import LIGHTNING, PYTORCH_LIGHTNING, guess_user_tree, tree_of


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


def test_strategy_arguments_are_checked():
    with pytest.raises(ValueError, match="num_workers"):
        RayDDPStrategy(num_workers=0)
    with pytest.raises(ValueError, match="cpus_per_worker"):
        RayDDPStrategy(num_workers=2, cpus_per_worker=0)
    with pytest.raises(TypeError, match="init_hook"):
        RayDDPStrategy(num_workers=2, init_hook="not callable")
    gpu = RayDDPStrategy(num_workers=2, use_gpu=True, resources_per_worker={"GPU": 0.5})
    assert gpu.worker_bundle == {"CPU": 1, "GPU": 0.5}
