"""Experiment trackers per trial, without Ray: which loggers a trial gets, what they are told
(its config as hyperparameters), and an MLflow run that a restarted trial continues."""

import glob
import os

import lightning.pytorch as pl
import pytest
import pytorch_lightning
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lightning_tune import TrialSpec
from lightning_tune.errors import (InvalidArgumentError, InvalidTypeError,
                                   MissingDependencyError)
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.run_settings import tune_environment
from lightning_tune.trackers import (TRIAL_ID_TAG, TrialConfigLogged, TrialInfo, check_loggers,
                                     prepare_trackers, search_mlflow_uri, tracker_hints,
                                     trial_loggers)



@pytest.fixture(autouse=True)
def mlflow_uri_put_back():
    """MLflow sets MLFLOW_TRACKING_URI when it logs: later tests must not find it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


CONFIG = {"lr": 0.02, "hidden_size": 32, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}}


def trial(tmp_path, trial_id="abc12_00000", config=CONFIG) -> TrialInfo:
    folder = tmp_path / "exp" / f"{trial_id}_lr=0.02"
    folder.mkdir(parents=True, exist_ok=True)
    return TrialInfo(name=folder.name, trial_id=trial_id, directory=str(folder),
                     experiment_name="exp", experiment_path=str(tmp_path / "exp"),
                     config=dict(config))


def fit(info: TrialInfo, loggers, config=CONFIG, epochs=2):
    model = DigitsClassifier(lr=config["lr"], hidden_size=config["hidden_size"])
    trainer = pl.Trainer(max_epochs=epochs, logger=loggers, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         limit_train_batches=3, limit_val_batches=2,
                         callbacks=[TrialConfigLogged(config)], default_root_dir=info.directory)
    trainer.fit(model, datamodule=DigitsDataModule())
    return trainer


@pytest.mark.parametrize("given, expected", [
    (None, None), (True, None), (False, False), ("csv", ["csv"]),
    (["mlflow", "tensorboard", "mlflow"], ["mlflow", "tensorboard"]),
])
def test_names_are_normalised(given, expected):
    assert check_loggers(given) == expected


def test_a_function_is_kept_as_given():
    def make(info):
        return []

    assert check_loggers(make) is make


@pytest.mark.parametrize("given, error, message", [
    (["tensorboard", "wandb"], InvalidArgumentError, "unknown trackers ['wandb']"),
    ([1], InvalidTypeError, "loggers must be tracker names"),
    ({"tensorboard": True}, InvalidTypeError, "or a function trial -> [Lightning loggers]"),
])
def test_bad_loggers_are_refused_with_the_choices(given, error, message):
    with pytest.raises(error, match="tensorboard, csv, mlflow") as raised:
        check_loggers(given)
    assert message in str(raised.value)


def test_the_spec_refuses_two_sources_of_loggers_and_records_what_it_can():
    with pytest.raises(InvalidArgumentError, match=r"loggers= and trainer_kwargs\['logger'\]"):
        TrialSpec(DigitsClassifier, loggers="csv", trainer_kwargs={"logger": False})
    # trainer_kwargs alone still choose the loggers, as before loggers= existed
    assert TrialSpec(DigitsClassifier, trainer_kwargs={"logger": False}).loggers is None
    named = TrialSpec(DigitsClassifier, loggers=["csv", "mlflow"])
    assert named.to_record()["loggers"] == ["csv", "mlflow"] and not named.must_resupply()
    function = TrialSpec(DigitsClassifier, loggers=lambda info: [])
    assert function.to_record()["loggers"] is None
    assert function.must_resupply() == ["loggers"]


def test_tensorboard_writes_into_the_trial_folder_and_csv_beside_it(tmp_path):
    info = trial(tmp_path)
    tensorboard, csv = trial_loggers(["tensorboard", "csv"], info, "lightning.pytorch")
    assert isinstance(tensorboard, pl.loggers.TensorBoardLogger)
    assert os.path.normpath(tensorboard.log_dir) == info.directory
    assert isinstance(csv, pl.loggers.CSVLogger)
    assert os.path.dirname(csv.log_dir) == os.path.join(info.directory, "csv")
    # the default is TensorBoard, for the model's own Lightning tree
    (default,) = trial_loggers(None, info, "pytorch_lightning")
    assert isinstance(default, pytorch_lightning.loggers.TensorBoardLogger)
    assert trial_loggers(False, info, "lightning.pytorch") is False


def test_csv_is_the_default_where_no_tensorboard_is_installed(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name in (
        "tensorboard", "tensorboardX") else real(name, *args))
    (default,) = trial_loggers(None, trial(tmp_path), "lightning.pytorch")
    assert isinstance(default, pl.loggers.CSVLogger)
    with pytest.raises(MissingDependencyError, match="pip install tensorboard"):
        check_loggers("tensorboard")


def test_a_function_gets_the_trial_and_may_return_one_logger(tmp_path):
    info = trial(tmp_path)
    seen = []

    def make(given):
        seen.append(given)
        return pl.loggers.CSVLogger(given.directory, name=given.name)

    (made,) = trial_loggers(make, info, "lightning.pytorch")
    assert seen == [info] and made.name == info.name


def hparams_of(folder):
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    values = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
              for key, value in start.hparams.items()}
    return values, events


def test_tensorboard_gets_the_config_as_hparams_and_each_metric_once(tmp_path):
    info = trial(tmp_path)
    fit(info, trial_loggers(["tensorboard", "csv"], info, "lightning.pytorch"))
    values, events = hparams_of(info.directory)
    assert values["lr"] == pytest.approx(0.02) and values["hidden_size"] == 32
    assert values["optimizer/name"] == "adam"  # nested keys flattened
    # two epochs; the hparams' copy of the first value lands on the step Lightning logged it
    points = {(event.step, event.value) for event in events.Scalars("val_loss")}
    assert len(points) == 2 and len({step for step, _ in points}) == 2
    assert "hp_metric" not in events.Tags()["scalars"]
    with open(glob.glob(os.path.join(info.directory, "csv", "version_0", "hparams.yaml"))[0]) as f:
        assert yaml.safe_load(f)["optimizer/name"] == "adam"


def test_an_mlflow_run_per_trial_that_a_restarted_trial_continues(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow sets it when it logs
    first = trial(tmp_path)
    prepare_trackers(["mlflow"], first.experiment_name, first.experiment_path)
    fit(first, trial_loggers(["mlflow"], first, "lightning.pytorch"), epochs=1)
    # the trial again (a restart, a resume: the same trial id), PBT having changed its lr
    changed = dict(CONFIG, lr=0.05)
    fit(first, trial_loggers(["mlflow"], first, "lightning.pytorch"), config=changed, epochs=2)
    other = trial(tmp_path, trial_id="abc12_00001")
    fit(other, trial_loggers(["mlflow"], other, "lightning.pytorch"), epochs=1)

    mlflow.set_tracking_uri(f"sqlite:///{first.experiment_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["exp"])
    assert sorted(runs[f"tags.{TRIAL_ID_TAG}"]) == ["abc12_00000", "abc12_00001"]
    assert set(runs["tags.mlflow.runName"]) == {first.name, other.name}
    continued = runs[runs[f"tags.{TRIAL_ID_TAG}"] == "abc12_00000"].iloc[0]
    assert continued["params.lr"] == "0.02"  # MLflow keeps a param's first value
    assert continued["params.optimizer/betas"] == "[0.9, 0.99]"
    history = mlflow.MlflowClient().get_metric_history(continued.run_id, "val_loss")
    assert len(history) == 1 + 2  # the first start's epoch, then the restart's two


def test_the_store_named_when_the_search_started_is_the_trials_store(tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    assert search_mlflow_uri(["mlflow"]) == store and search_mlflow_uri(["csv"]) is None
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # a trial process on another node lacks it
    info = trial(tmp_path)
    prepare_trackers(["mlflow"], info.experiment_name, info.experiment_path, store)
    (made,) = trial_loggers(["mlflow"], info, "lightning.pytorch", store)
    assert made._tracking_uri == store and os.path.exists(f"{tmp_path}/elsewhere.db")
    assert not os.path.exists(os.path.join(info.experiment_path, "mlflow.db"))


def test_hints_say_where_to_look(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = str(tmp_path / "exp")
    (tensorboard,) = tracker_hints(None, path)
    assert tensorboard.endswith(f"tensorboard --logdir {path}")
    (mlflow_hint,) = tracker_hints(["mlflow"], path)
    assert f"--backend-store-uri sqlite:///{path}/mlflow.db" in mlflow_hint
    assert tracker_hints(False, path) == [] and tracker_hints(lambda info: [], path) == []


def test_tunes_own_tensorboard_logger_is_left_out_only_while_a_search_runs(monkeypatch):
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.setenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "5")
    with tune_environment():
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
        # a value the user set is theirs
        assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "5"
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
    with tune_environment(own_loggers=False):
        assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
