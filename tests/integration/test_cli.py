"""The ``lightning-tune`` command, run as a real subprocess: errors, help, run and report.

Each subprocess pays for importing torch, Lightning and Ray (seconds on this machine), so the
quick ones (errors and help) are all started by one fixture, two at a time, and each test
then checks its own.
"""

import inspect
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from lightning_tune import tune_lightning
from lightning_tune.cli import main, read_run_config
from lightning_tune.examples.digits import DigitsClassifier, DigitsDataModule
from lightning_tune.spaces import load_space
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)

MODEL = "lightning_tune.examples.digits:DigitsClassifier"
DATAMODULE = "lightning_tune.examples.digits:DigitsDataModule"
EXAMPLE = os.path.join(ROOT, "lightning_tune", "examples", "digits_search.yaml")

# a run file, and what the one line on stderr must say about it
BAD_RUN_FILES = {
    "unknown_key": (f"model: {MODEL}\nspace: adam\nepochs: 3\n",
                    ["unknown key 'epochs'", "Allowed keys: model, datamodule, space,",
                     "max_epochs"]),
    "yaml_syntax": (f"model: {MODEL}\nspace: [adam\n", ["is not valid YAML", "line 3"]),
    "missing_model": ("space: adam\nnum_samples: 2\n",
                      ["missing `model`", "package.module:Class"]),
    "unimportable_class": ("model: no_such_package.models:Net\nspace: adam\n",
                           ["cannot import model 'no_such_package.models:Net'",
                            "No module named 'no_such_package'", "PYTHONPATH"]),
    "bad_value": (f"model: {MODEL}\ndatamodule: {DATAMODULE}\nspace: adam\nnum_samples: 0\n",
                  ["num_samples must be an integer >= 1, got 0"]),
}


def environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p and p != ROOT])
    env["RAY_ADDRESS"] = "local"  # a Ray of the command's own, never another session's
    return env


def run_command(*args, timeout=240):
    """(exit status, stdout, stderr) of ``lightning-tune ARGS`` in a subprocess."""
    completed = subprocess.run([sys.executable, "-m", "lightning_tune.cli", *map(str, args)],
                               cwd=ROOT, env=environment(), capture_output=True, text=True,
                               timeout=timeout)
    return completed.returncode, completed.stdout, completed.stderr


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Every error and help command, run two at a time (one per core: more only thrash);
    each test waits for its own."""
    folder = tmp_path_factory.mktemp("run_files")
    commands = {}
    for case, (text, _) in BAD_RUN_FILES.items():
        (folder / f"{case}.yaml").write_text(text)
        commands[case] = ("run", folder / f"{case}.yaml")
    commands["report_not_an_experiment"] = ("report", folder)
    for name in ("run", "report", "resume"):
        commands[f"{name}_help"] = (name, "--help")
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {"folder": folder, **{name: pool.submit(run_command, *args)
                                    for name, args in commands.items()}}


def assert_one_error_line(stderr, subcommand, *expected):
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"lightning-tune {subcommand}: ")
    for text in expected:
        assert text in line


@pytest.mark.parametrize("case", list(BAD_RUN_FILES))
def test_a_bad_run_file_is_one_line_and_status_2(quick, case):
    returncode, stdout, stderr = quick[case].result()
    assert returncode == 2, stderr
    assert_one_error_line(stderr, "run", *BAD_RUN_FILES[case][1])


def test_report_on_a_folder_that_is_no_experiment(quick):
    returncode, _, stderr = quick["report_not_an_experiment"].result()
    assert returncode == 2
    assert_one_error_line(stderr, "report", str(quick["folder"]),
                          "not an experiment started by tune_lightning", "storage_path/name")


def test_a_file_that_is_no_mapping_and_a_missing_argument(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- model\n- space\n")
    assert main(["run", str(tmp_path / "list.yaml")]) == 2
    assert_one_error_line(capsys.readouterr().err, "run", "must hold a mapping", "got list")
    with pytest.raises(SystemExit) as exit_:
        main(["run"])
    assert exit_.value.code == 2
    assert "the following arguments are required: CONFIG.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("subcommand, expected", [
    ("run", ["YAML", "model", "space", "import path", "--name NAME", "--storage-path DIR",
             "--num-samples N", "overrides `num_samples`", "digits_search.yaml"]),
    ("report", ["without running", "--out DIR", "optimisation_history.png",
                "learning_curves.png", "experiment folder"]),
    ("resume", ["--resume-errored", "last checkpoint"]),
])
def test_help_of_each_command(quick, subcommand, expected):
    returncode, stdout, stderr = quick[f"{subcommand}_help"].result()
    assert returncode == 0, stderr
    assert stdout.startswith(f"usage: lightning-tune {subcommand}")
    text = " ".join(stdout.split())  # argparse wraps lines
    for phrase in expected:
        assert phrase in text


def test_run_file_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "space.yaml").write_text("parameters:\n  lr: {distribution: loguniform, "
                                         "low: 1.0e-4, high: 1.0e-2}\n")
    (tmp_path / "search.yaml").write_text(f"model: {MODEL}\nspace: space.yaml\n"
                                          "storage_path: results\nmax_epochs: 2\n")
    arguments = read_run_config(str(tmp_path / "search.yaml"))
    assert arguments == {"model_cls": DigitsClassifier, "space": str(tmp_path / "space.yaml"),
                         "storage_path": str(tmp_path / "results"), "max_epochs": 2}
    (tmp_path / "budget.yaml").write_text(
        f"model: {MODEL}\nspace: space.yaml\ntime_budget_s: 600\nwarm_start: earlier\n"
        "stop: {val_acc: 0.97, plateau: 3}\n")
    arguments = read_run_config(str(tmp_path / "budget.yaml"))
    assert (arguments["time_budget_s"], arguments["warm_start"], arguments["stop"]) == (
        600, str(tmp_path / "earlier"), {"val_acc": 0.97, "plateau": 3})
    (tmp_path / "merged.yaml").write_text(f"model: {MODEL}\nspace: [adam, mlp_classifier]\n")
    merged = read_run_config(str(tmp_path / "merged.yaml"))["space"]
    assert set(merged.names()) == {"optimizer", "lr", "hidden_size", "num_layers"}


def test_the_example_run_file_is_a_valid_search():
    arguments = read_run_config(EXAMPLE)
    assert arguments.pop("model_cls") is DigitsClassifier
    assert arguments.pop("datamodule") is DigitsDataModule
    space = load_space(arguments.pop("space"))
    assert {"lr", "hidden_size", "optimizer"} <= set(space.sampled_parameters())
    inspect.signature(tune_lightning).bind(DigitsClassifier, space, **arguments)


def test_run_then_report(tmp_path):
    (tmp_path / "tiny.yaml").write_text(
        f"model: {MODEL}\ndatamodule: {DATAMODULE}\n"
        "space:\n  lr: {distribution: loguniform, low: 1.0e-3, high: 3.0e-2}\n"
        "  optimizer: {distribution: choice, values: [adam, sgd]}\n"
        "num_samples: 5\nmax_epochs: 1\nscheduler: fifo\nstrategy: null\nname: from_file\n"
        "seed: 0\nverbose: 0\n")
    storage = tmp_path / "results"
    returncode, stdout, stderr = run_command(
        "run", tmp_path / "tiny.yaml", "--name", "tiny", "--num-samples", "2",
        "--storage-path", storage)
    assert returncode == 0, stderr[-3000:]
    experiment = storage / "tiny"
    assert "tiny" in os.listdir(storage) and "from_file" not in os.listdir(storage)  # --name won
    trial_ids = sorted(name[:11] for name in os.listdir(experiment)
                       if re.match(r"[0-9a-f]{5}_\d{5}_", name))
    assert len(trial_ids) == 2  # --num-samples won
    assert re.search(r"trial_id\s+status\s+(lr\s+optimizer|optimizer\s+lr)\s+best val_loss"
                     r"\s+epochs", stdout)
    assert stdout.count("TERMINATED") == 2 and "best config: {'lr': " in stdout
    assert f"experiment: {experiment}" in stdout
    for name in ("optimisation_history", "parallel_coordinates", "learning_curves"):
        assert f"{name.replace('_', ' ')}: {experiment / name}.png" in stdout
        assert (experiment / f"{name}.png").stat().st_size > 10_000

    figures = tmp_path / "figures"
    returncode, stdout, stderr = run_command("report", experiment, "--out", figures)
    assert returncode == 0, stderr[-3000:]
    rows = [line for line in stdout.splitlines() if line.split()[:1] in [[t] for t in trial_ids]]
    assert len(rows) == 2 and all("TERMINATED" in row for row in rows)
    assert re.search(rf"best trial: ({'|'.join(trial_ids)}) \(epoch 1\)", stdout)
    assert f"experiment: {experiment}" in stdout
    for name in ("optimisation_history", "parallel_coordinates", "learning_curves"):
        assert f"{name.replace('_', ' ')}: {figures / name}.png" in stdout
        assert (figures / f"{name}.png").stat().st_size > 10_000
