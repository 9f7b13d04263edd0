"""Resuming an interrupted experiment from its directory, and the errors around it."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from lightning_tune import resume, tune_lightning
from lightning_tune.record import RECORD_FILE, read_record, write_record
from lightning_tune.spec import TrialSpec
from tests.conftest import ROOT
from tests.models import DigitsDataModule, EpochLoggingClassifier, FailOnceClassifier

pytestmark = pytest.mark.timeout(300)


def progress(experiment):
    """Each trial's reported rows, by the trial's lr."""
    rows = {}
    for path in glob.glob(os.path.join(experiment, "*", "result.json")):
        with open(path) as handle:
            reports = [json.loads(line) for line in handle if line.strip()]
        if reports:
            rows[reports[0]["config"]["lr"]] = pd.DataFrame(reports)
    return rows


def settled(experiment, quiet_s=0.5):
    """No file in the experiment changed for ``quiet_s``: Tune is not half-way through copying
    its state into storage (a kill then leaves an empty state file, which resume refuses)."""
    def snapshot():
        stamps = {}
        for path in glob.glob(os.path.join(experiment, "**"), recursive=True):
            try:
                stamps[path] = (os.stat(path).st_mtime_ns, os.stat(path).st_size)
            except FileNotFoundError:  # removed while we looked: not settled
                stamps[path] = None
        return stamps

    before = snapshot()
    time.sleep(quiet_s)
    return snapshot() == before


def test_driver_killed_part_way_then_resumed(tmp_path, request):
    experiment = str(tmp_path / "interrupted")
    marker = tmp_path / "paused"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.interrupted_search", str(tmp_path), str(marker)], cwd=ROOT,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="3600"))
    deadline = time.monotonic() + 240
    try:
        # the second trial holds after two epochs; once Tune has synced that second epoch
        # (its state with it) nothing more is written, so the kill cannot cut a file short
        while not (marker.exists() and len(progress(experiment).get(0.02, [])) == 2
                   and settled(experiment, quiet_s=1.0)):
            assert process.poll() is None, "the search ended before it could be interrupted"
            assert time.monotonic() < deadline, "the search never reached its pause"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    reported_before = len(progress(experiment)[0.02])

    request.getfixturevalue("ray_cluster")
    result = resume(experiment)
    rows = progress(experiment)
    finished, interrupted = rows[0.01], rows[0.02]
    assert list(finished["training_iteration"]) == [1, 2, 3, 4]  # not run again
    assert list(finished["epoch_seen"]) == [0, 1, 2, 3]
    assert reported_before == 2
    # continued from its epoch-2 checkpoint: every epoch once, the last two in a new process
    assert list(interrupted["epoch_seen"]) == [0, 1, 2, 3]
    assert list(interrupted["first_epoch_here"]) == [0, 0, 2, 2]
    assert len(result.dataframe) == 2 and (result.dataframe["status"] == "TERMINATED").all()
    # the resumed trial went on logging into its MLflow run: one run per trial, every epoch
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{experiment}/mlflow.db")
    (mlflow_experiment,) = client.search_experiments(filter_string="name = 'interrupted'")
    runs = client.search_runs([mlflow_experiment.experiment_id])
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    for run in runs:
        epochs = client.get_metric_history(run.info.run_id, "epoch_seen")
        assert sorted(point.value for point in epochs) == [0, 1, 2, 3]


def test_errored_trials_are_retried_only_when_asked(ray_cluster, tmp_path):
    marker = str(tmp_path / "failed_once")
    space = {"marker_path": marker, "fail_at_epoch": 1, "lr": 0.01}
    with pytest.raises(Exception, match="deliberate one-time failure"):
        tune_lightning(FailOnceClassifier, space, datamodule=DigitsDataModule, max_epochs=3,
                       num_samples=1, scheduler="fifo", storage_path=str(tmp_path), name="errored",
                       verbose=0)
    experiment = str(tmp_path / "errored")
    with pytest.raises(Exception, match="deliberate one-time failure"):
        resume(experiment)  # still errored: not retried
    result = resume(experiment, resume_errored=True)
    frame = result.result_grid[0].metrics_dataframe
    assert result.result_grid[0].error is None
    assert list(frame["epoch_seen"]) == [0.0, 1.0, 2.0]  # retried from its epoch-0 checkpoint


def test_an_existing_experiment_is_neither_overwritten_nor_silently_resumed(ray_cluster, tmp_path):
    arguments = dict(datamodule=DigitsDataModule, max_epochs=1, num_samples=1, scheduler="fifo",
                     storage_path=str(tmp_path), name="twice", verbose=0)
    first = tune_lightning(EpochLoggingClassifier, {"lr": 0.01}, **arguments)
    with pytest.raises(FileExistsError, match="already exists .* resume=True"):
        tune_lightning(EpochLoggingClassifier, {"lr": 0.01}, **arguments)
    again = tune_lightning(EpochLoggingClassifier, {"lr": 0.01}, resume=True, **arguments)
    assert again.best_config == first.best_config
    assert len(again.result_grid[0].metrics_dataframe) == 1  # the finished trial did not rerun

    completed = subprocess.run([sys.executable, "-m", "lightning_tune.cli", "resume",
                                str(tmp_path / "twice")], cwd=ROOT, capture_output=True,
                               text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr
    assert "best config: {'lr': 0.01}" in completed.stdout


def test_the_record_is_plain_json_and_bad_classes_are_named(tmp_path):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / RECORD_FILE).write_text(json.dumps(
        {"model_cls": "no_such_module:Model", "datamodule": None, "settings": {}}))
    with pytest.raises(ImportError, match="'no_such_module:Model'.*PYTHONPATH"):
        read_record(str(experiment)).model_cls()
    (experiment / RECORD_FILE).write_text(json.dumps(
        {"model_cls": "tests.models:make.<locals>.Model", "datamodule": None, "settings": {}}))
    with pytest.raises(ImportError, match="not a notebook cell, __main__ or a function body"):
        read_record(str(experiment)).model_cls()
    with pytest.raises(FileNotFoundError, match="not an experiment started by tune_lightning"):
        read_record(str(tmp_path))
    completed = subprocess.run([sys.executable, "-m", "lightning_tune.cli", "resume", str(tmp_path)],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "not an experiment started by" in completed.stderr


def test_what_cannot_be_recorded_must_be_given_again(tmp_path):
    from lightning_tune import TuneReportCallback
    from tests.models import DigitsDataModule as Data

    write_record(str(tmp_path), TrialSpec(
        EpochLoggingClassifier, datamodule=Data(), trainer_kwargs={"logger": object()},
        callbacks=[TuneReportCallback()]), searched=["lr"])
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    assert record["must_resupply"] == ["datamodule", "trainer_kwargs", "callbacks"]
    assert record["settings"]["trainer_kwargs"] is None
    with pytest.raises(ValueError, match="datamodule, trainer_kwargs, callbacks that cannot be "
                                         "recorded.*resume\\(path, datamodule=..."):
        resume(str(tmp_path))


class _CreatesAFileWhenUnpickled:
    """What a tampered checkpoint could hold: unpickling it calls open(path, "w")."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_trial_resumes_from_its_checkpoint_as_data_only(tmp_path):
    import pickle

    import lightning.pytorch as pl
    import torch

    from lightning_tune.trainable import fit_as_data as _fit

    def trainer(max_epochs):
        return pl.Trainer(max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                          enable_checkpointing=False, enable_model_summary=False,
                          limit_train_batches=2, limit_val_batches=1)

    first = trainer(1)
    first.fit(EpochLoggingClassifier(), datamodule=DigitsDataModule())
    clean = str(tmp_path / "clean.ckpt")
    first.save_checkpoint(clean, weights_only=False)

    continued = trainer(2)
    _fit(continued, EpochLoggingClassifier(), DigitsDataModule(), clean)
    assert continued.current_epoch == 2 and continued.global_step == 4  # went on from epoch 1

    marker = tmp_path / "code_ran"
    tampered = str(tmp_path / "tampered.ckpt")
    state = torch.load(clean, weights_only=False)
    state["extra"] = _CreatesAFileWhenUnpickled(str(marker))
    torch.save(state, tampered)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        _fit(trainer(2), EpochLoggingClassifier(), DigitsDataModule(), tampered)
    assert not marker.exists(), "loading the checkpoint ran code it carried"


def test_a_cut_short_experiment_state_is_refused_before_anything_runs(tmp_path):
    """An empty state file (driver killed mid-copy) would make Tune restart the search."""
    experiment = tmp_path / "cut_short"
    write_record(str(experiment), TrialSpec(EpochLoggingClassifier, datamodule=DigitsDataModule,
                                            max_epochs=2), searched=["lr"])
    (experiment / "tuner.pkl").write_bytes(b"")
    (experiment / "experiment_state-2026-11-27_09-00-00.json").write_text("")
    with pytest.raises(ValueError, match=r"experiment_state-2026-11-27_09-00-00\.json is empty or "
                                         r"cut short .*Nothing was run"):
        resume(str(experiment))
    assert sorted(os.listdir(experiment)) == [  # no trial was started, nothing was written
        "experiment_state-2026-11-27_09-00-00.json", RECORD_FILE, "tuner.pkl"]
