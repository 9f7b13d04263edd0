"""Config routing: which constructor receives which key (no Ray needed)."""

import lightning.pytorch as pl
import pytest

from lightning_tune.routing import ConfigRouting
from lightning_tune.examples import DigitsClassifier, DigitsDataModule


class ConfigModel(pl.LightningModule):
    def __init__(self, config):
        super().__init__()
        self.config = config


class KwargsModel(pl.LightningModule):
    def __init__(self, lr=0.1, **extra):
        super().__init__()
        self.lr, self.extra = lr, extra


def test_keys_go_to_the_constructor_that_names_them():
    routing = ConfigRouting(DigitsClassifier, DigitsDataModule)
    model, datamodule = routing.build({"lr": 0.05, "hidden_size": 16, "batch_size": 8})
    assert model.hparams.lr == 0.05 and model.hparams.hidden_size == 16
    assert datamodule.batch_size == 8


def test_a_single_config_parameter_receives_the_whole_dict():
    routing = ConfigRouting(ConfigModel, DigitsDataModule)
    model, datamodule = routing.build({"lr": 0.05, "batch_size": 8})
    assert model.config == {"lr": 0.05, "batch_size": 8}
    assert datamodule.batch_size == 8  # the datamodule still gets its own keys


def test_var_keyword_accepts_any_key():
    model, _ = ConfigRouting(KwargsModel).build({"lr": 0.2, "depth": 3})
    assert model.lr == 0.2 and model.extra == {"depth": 3}


def test_datamodule_instance_is_used_as_is():
    instance = DigitsDataModule(batch_size=5)
    _, datamodule = ConfigRouting(DigitsClassifier, instance).build({"lr": 0.1})
    assert datamodule is instance


def test_unknown_key_names_it_and_lists_the_accepted_ones():
    routing = ConfigRouting(DigitsClassifier, DigitsDataModule)
    with pytest.raises(ValueError) as error:
        routing.check_keys(["lr", "learning_rate"])
    message = str(error.value)
    assert "['learning_rate']" in message
    assert "DigitsClassifier or DigitsDataModule" in message
    for accepted in ("batch_size", "dropout", "hidden_size", "lr", "weight_decay"):
        assert accepted in message
