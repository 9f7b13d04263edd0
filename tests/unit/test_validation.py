"""Bad input to tune_lightning fails with a clear message before Ray starts."""

import lightning.pytorch as pl
import pytest
from ray import tune

from lightning_tune import tune_lightning
from lightning_tune.errors import InvalidArgumentError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule

SPACE = {"lr": tune.loguniform(1e-4, 1e-1)}


class NeedsWidth(DigitsClassifier):
    def __init__(self, width, lr=0.01, **kwargs):
        super().__init__(lr=lr, **kwargs)
        self.width = width


class NotAModule:
    def __init__(self, lr=0.1):
        self.lr = lr


pytestmark = pytest.mark.usefixtures("ray_must_not_start")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"model_cls": DigitsClassifier()}, TypeError, "Pass the class itself"),
    ({"model_cls": NotAModule}, TypeError, "must be a LightningModule subclass"),
    ({"space": {"lr": 0.1, "learnig_rate": 0.2}}, ValueError, r"\['learnig_rate'\].*Accepted keys"),
    ({"space": [0.1]}, TypeError, "space must be a dict"),
    ({"mode": "maximise"}, ValueError, "mode must be 'min' or 'max'"),
    ({"metric": ""}, ValueError, "metric must be the name"),
    ({"num_workers": 0, "strategy": "ddp"}, ValueError, "num_workers must be an integer >= 1"),
    ({"cpus_per_worker": 0}, ValueError, "cpus_per_worker must be > 0"),
    ({"cpus_per_worker": -1.0}, ValueError, "cpus_per_worker must be > 0"),
    ({"strategy": "deepspeed"}, ValueError, "strategy must be one of"),
    ({"max_epochs": 0}, ValueError, "max_epochs must be an integer >= 1"),
    ({"num_samples": 0}, ValueError, "num_samples must be an integer >= 1"),
    ({"search_alg": "bayes"}, ValueError, "search_alg must be one of"),
    ({"search_alg": "grid"}, ValueError, r"\['lr'\] are sampled distributions"),
    ({"scheduler": "pbtx"}, ValueError, "scheduler must be one of"),
    ({"trainer_kwargs": {"max_epochs": 3}}, ValueError, "may not set 'max_epochs'"),
    ({"datamodule": pl.LightningModule}, TypeError, "datamodule must be a LightningDataModule"),
    ({"model_cls": NeedsWidth}, ValueError, r"NeedsWidth.__init__ requires \['width'\].*Add them"),
    ({"strategy": "ddp", "worker_timeout_s": -1}, ValueError, "worker_timeout_s must be"),
])
def test_bad_input(kwargs, error, message):
    arguments = {"model_cls": DigitsClassifier, "space": SPACE, "datamodule": DigitsDataModule}
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        tune_lightning(arguments.pop("model_cls"), arguments.pop("space"), **arguments)


def test_our_errors_keep_their_built_in_bases():
    from lightning_tune.errors import LightningTuneError

    with pytest.raises(LightningTuneError) as caught:
        tune_lightning(DigitsClassifier, {"lr": 0.1, "learnig_rate": 0.2})
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("arguments, words", [
    ({"metric": ["val_loss", "kparams"], "mode": "min"}, "lists of the same length"),
    ({"metric": ["val_loss", "kparams"], "mode": ["min"]}, "lists of the same length"),
    ({"metric": ["val_loss", "val_loss"], "mode": ["min", "min"]}, "two or more different"),
    ({"metric": ["val_loss", "kparams"], "mode": ["min", "low"]}, "'min' or 'max'"),
    ({"metric": ["val_loss", "kparams"], "mode": ["min", "min"], "search_alg": "hyperopt"},
     r"search_alg='hyperopt' optimises one metric.*\('optuna', 'random', 'grid'\)"),
    ({"metric": ["val_loss", "kparams"], "mode": ["min", "min"], "scheduler": "asha"},
     r"scheduler='asha' ranks trials by one metric.*'mo-asha'"),
    ({"metric": ["val_loss", "kparams"], "mode": ["min", "min"], "scheduler": "pbt"},
     r"scheduler='pbt' ranks trials by one metric"),
    ({"scheduler": "mo-asha"}, "give metric and mode as lists"),
])
def test_several_objectives_are_checked_before_ray_starts(ray_must_not_start, tmp_path,
                                                          arguments, words):
    with pytest.raises(InvalidArgumentError, match=words):
        tune_lightning(DigitsClassifier, {"lr": tune.loguniform(1e-3, 1e-1)},
                       storage_path=str(tmp_path), **arguments)
