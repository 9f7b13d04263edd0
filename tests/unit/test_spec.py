"""The trial spec: one place for every trial setting, its validation, resources and record."""

import dataclasses
import json

import pytest

from lightning_tune import TrialSpec, TuneReportCallback, TuneReportCheckpointCallback
from lightning_tune.errors import InvalidArgumentError, LightningTuneError
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.record import RECORD_FILE, read_record, write_record


def test_from_arguments_takes_the_fields_it_knows():
    arguments = {"model_cls": DigitsClassifier, "strategy": "ddp", "num_workers": 2,
                 "num_samples": 8, "search_alg": "optuna", "reuse_workers": False}
    spec = TrialSpec.from_arguments(arguments)
    assert (spec.strategy, spec.num_workers, spec.reuse_workers) == ("ddp", 2, False)
    assert spec.trial_resources().bundles == [{"CPU": 1.0}, {"CPU": 1.0}]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_workers = 3


@pytest.mark.parametrize("kwargs, message", [
    ({"worker_timeout_s": 0}, "worker_timeout_s must be a number of seconds > 0"),
    ({"worker_timeout_s": True}, "worker_timeout_s must be a number of seconds > 0"),
    ({"reuse_workers": "yes"}, "reuse_workers must be True or False"),
    ({"trainer_kwargs": {"devices": 2}}, "may not set 'devices'"),
    ({"callbacks": [TuneReportCallback(), TuneReportCheckpointCallback()]}, "holds 2 Tune report"),
])
def test_settings_are_checked_once_here(kwargs, message):
    with pytest.raises(LightningTuneError, match=message):
        TrialSpec(DigitsClassifier, **kwargs)


def test_the_record_round_trips_and_names_what_it_cannot_hold(tmp_path):
    spec = TrialSpec(DigitsClassifier, datamodule=DigitsDataModule, metric="val_accuracy",
                     mode="max", max_epochs=3, strategy="ddp", num_workers=2,
                     worker_timeout_s=30.0, reuse_workers=False,
                     callbacks=[TuneReportCheckpointCallback(filename="model.ckpt")])
    write_record(str(tmp_path), spec, searched=["lr"])
    raw = json.loads((tmp_path / RECORD_FILE).read_text())
    assert raw["must_resupply"] == ["callbacks"]
    assert raw["settings"]["checkpoint_filename"] == "model.ckpt"
    record = read_record(str(tmp_path))
    assert record.searched == ["lr"] and record.checkpoint_filename == "model.ckpt"
    again = record.trial_spec(callbacks=list(spec.callbacks))
    assert again == spec


def test_a_record_from_an_older_version_takes_the_defaults(tmp_path):
    # format 1: no worker_timeout_s, reuse_workers or checkpoint_filename; searched in settings
    (tmp_path / RECORD_FILE).write_text(json.dumps({
        "model_cls": "lightning_tune.examples.digits:DigitsClassifier",
        "datamodule": "lightning_tune.examples.digits:DigitsDataModule",
        "settings": {"metric": "val_loss", "mode": "min", "max_epochs": 2, "strategy": None,
                     "num_workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0,
                     "trainer_kwargs": {}, "callbacks": [], "searched": ["lr"]}}))
    record = read_record(str(tmp_path))
    assert record.searched == ["lr"] and record.must_resupply == []
    assert record.checkpoint_filename == "checkpoint"
    spec = record.trial_spec()
    assert spec.reuse_workers is True and spec.worker_timeout_s is None
    assert spec.datamodule is DigitsDataModule and spec.max_epochs == 2


def test_the_checkpoint_file_name_follows_the_users_callback():
    assert TrialSpec(DigitsClassifier).checkpoint_filename == "checkpoint"
    named = TrialSpec(DigitsClassifier, callbacks=[TuneReportCheckpointCallback(filename="m.ckpt")])
    assert named.checkpoint_filename == "m.ckpt"
    assert TrialSpec(DigitsClassifier, callbacks=[TuneReportCallback()]).checkpoint_filename is None
    with pytest.raises(InvalidArgumentError, match="relative file name"):
        TuneReportCheckpointCallback(filename="/abs/model.ckpt")
