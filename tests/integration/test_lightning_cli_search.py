"""The LightningCLI example end to end: its search file run by the ``lightning-tune`` command
(DDP trials on a Ray of the command's own), then the best trial re-run alone by the project's
``main.py``, which must reproduce the trial's first epoch exactly."""

import csv
import glob
import os
import subprocess
import sys

import pytest
import yaml

from lightning_tune import load_result
from lightning_tune.cli import main, read_run_config
from lightning_tune.examples.lightning_cli.model import DigitsModel
from tests.conftest import ROOT
from tests.integration.test_cli import environment, run_command

pytestmark = pytest.mark.timeout(420)

EXAMPLE = os.path.join(ROOT, "lightning_tune", "examples", "lightning_cli")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The example search, two trials: its folder and the command's stdout."""
    storage = tmp_path_factory.mktemp("cli_search")
    returncode, stdout, stderr = run_command(
        "run", os.path.join(EXAMPLE, "search.yaml"), "--storage-path", storage,
        "--num-samples", "2", timeout=360)
    assert returncode == 0, stderr[-3000:]
    return storage / "digits_cli_search", stdout


def trial_folders(experiment_path):
    return sorted(glob.glob(os.path.join(experiment_path, "*_0000*")))


def first_epoch(trial_folder):
    with open(os.path.join(trial_folder, "progress.csv")) as handle:
        return next(csv.DictReader(handle))


def test_each_trial_keeps_its_own_resolved_config(experiment):
    path, _ = experiment
    folders = trial_folders(path)
    assert len(folders) == 2
    for folder in folders:
        with open(os.path.join(folder, "params.json")) as handle:
            values = yaml.safe_load(handle)
        with open(os.path.join(folder, "config.yaml")) as handle:
            config = yaml.safe_load(handle)
        assert config["optimizer"]["init_args"]["lr"] == values["optimizer.init_args.lr"]
        assert config["model"]["init_args"]["encoder"]["init_args"]["width"] == \
            values["model.init_args.encoder.init_args.width"]
        assert config["data"]["init_args"]["batch_size"] == values["data.init_args.batch_size"]
        assert config["trainer"]["max_epochs"] == 3  # the search's, written for a re-run
        assert config["seed_everything"] == 0


def test_the_best_trial_re_run_by_main_py_reproduces_its_first_epoch(experiment, tmp_path):
    path, stdout = experiment
    result = load_result(str(path))
    config_file = result.best_config_file
    assert config_file and f"best trial's config: {config_file}" in stdout
    logs = tmp_path / "rerun"
    # as the trial trained: two DDP ranks on CPU (Lightning's own launcher this time)
    completed = subprocess.run(
        [sys.executable, os.path.join(EXAMPLE, "main.py"), "fit", "--config", config_file,
         "--trainer.max_epochs", "1", "--trainer.strategy", "ddp", "--trainer.devices", "2",
         "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
         "--trainer.logger.save_dir", str(logs)],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with open(glob.glob(str(logs / "lightning_logs" / "*" / "metrics.csv"))[0]) as handle:
        rerun = next(row for row in csv.DictReader(handle) if row["val_loss"])
    trial = first_epoch(os.path.dirname(config_file))
    assert float(rerun["val_loss"]) == pytest.approx(float(trial["val_loss"]), abs=1e-5)


def test_the_best_model_loads_with_the_best_trials_encoder(experiment):
    path, _ = experiment
    result = load_result(str(path))
    model = result.load_best_model()
    assert isinstance(model, DigitsModel)
    assert model.encoder.out_features == \
        result.best_config["model.init_args.encoder.init_args.width"]


def test_report_names_the_best_trials_config(experiment, capsys):
    path, _ = experiment
    assert main(["report", str(path), "--out", str(path / "figures")]) == 0
    printed = capsys.readouterr().out
    assert f"best trial's config: {load_result(str(path)).best_config_file}" in printed


def test_the_run_file_names_a_config_relative_to_itself(tmp_path):
    arguments = read_run_config(os.path.join(EXAMPLE, "search.yaml"))
    assert arguments["cli_config"] == os.path.join(EXAMPLE, "config.yaml")
    assert "model_cls" not in arguments
    (tmp_path / "both.yaml").write_text(
        "cli_config: config.yaml\nmodel: lightning_tune.examples.digits:DigitsClassifier\n"
        "space: {optimizer.init_args.lr: 0.01}\n")
    returncode, _, stderr = run_command("run", tmp_path / "both.yaml")
    assert returncode == 2 and "not both" in stderr
    (tmp_path / "inline.yaml").write_text(
        "cli_config:\n  model:\n    class_path: lightning_tune.examples.lightning_cli.model."
        "DigitsModel\n    init_args: {encoder: {class_path: torch.nn.Identity}}\n"
        "space: {model.init_args.label_smoothing: 0.1}\n")
    inline = read_run_config(str(tmp_path / "inline.yaml"))["cli_config"]
    assert inline["model"]["init_args"] == {"encoder": {"class_path": "torch.nn.Identity"}}


def test_a_finished_search_of_a_config_resumes_from_its_folder_alone(experiment, ray_cluster):
    from lightning_tune import resume

    path, _ = experiment
    before = load_result(str(path))
    after = resume(str(path))  # nothing left to run: the record must rebuild the search
    assert after.best_config == before.best_config
    assert after.best_config_file == before.best_config_file


def test_fsdp_trials_build_the_configs_optimizer_and_scheduler_on_their_shards(ray_cluster,
                                                                             tmp_path):
    import torch
    from ray import tune

    from lightning_tune import tune_lightning_cli

    scheduler = {"class_path": "torch.optim.lr_scheduler.StepLR",
                 "init_args": {"step_size": 1, "gamma": 0.5}}
    result = tune_lightning_cli(
        os.path.join(EXAMPLE, "config.yaml"),
        {"optimizer.init_args.lr": tune.grid_search([0.01]), "lr_scheduler": scheduler},
        strategy="fsdp", num_workers=2, num_samples=1, max_epochs=2, scheduler="fifo",
        storage_path=str(tmp_path), verbose=0)
    history = result.result_grid[0].metrics_dataframe
    assert list(history["training_iteration"]) == [1, 2]
    assert history["val_loss"].iloc[-1] < 1.5  # it trained
    # the scheduler of the space's lr_scheduler section stepped once per epoch
    with result.best_checkpoint.as_directory() as directory:
        state = torch.load(os.path.join(directory, "checkpoint"), weights_only=True)
    assert state["lr_schedulers"][0]["_last_lr"] == pytest.approx([0.01 * 0.5 ** 2])
    with open(result.best_config_file) as handle:
        assert yaml.safe_load(handle)["lr_scheduler"]["init_args"]["gamma"] == 0.5
