"""What a user sees and keeps: the console of a real DDP search, run as a script would run it,
and the rank logs each trial folder holds."""

import glob
import os
import subprocess
import sys

import pytest

from tests.integration.test_cli import environment
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(420)

SCRIPT = """
import sys
from ray import tune
from lightning_tune import tune_lightning
from tests.models import DigitsDataModule, GreetingClassifier

common = dict(datamodule=DigitsDataModule, strategy="ddp", num_workers=2, max_epochs=1,
              num_samples=1, scheduler="fifo", storage_path=sys.argv[1], verbose=1)
tune_lightning(GreetingClassifier, {"lr": tune.grid_search([0.01, 0.02])}, name="quiet",
               **common)
print("FIRST SEARCH DONE", flush=True)
tune_lightning(GreetingClassifier, {"fail_rank": 1}, name="failing", **common)
"""


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """The two searches' folder, and all the script printed (stdout and stderr, in order)."""
    storage = tmp_path_factory.mktemp("console")
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(storage)], cwd=ROOT,
                               env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=400)
    assert "FIRST SEARCH DONE" in completed.stdout, completed.stdout[-4000:]
    assert completed.returncode != 0  # the second search's trial fails, as it should
    return storage, completed.stdout


def test_the_console_shows_the_search_not_its_ranks(console):
    storage, text = console
    first = text[:text.index("FIRST SEARCH DONE")]
    for noise in ["GPU available", "TrainingWorker pid", "hello from rank",
                  "Checkpoint successfully created", "snapshotting has been triggered",
                  "Initializing distributed", "driver_artifacts"]:
        assert noise not in first, f"{noise!r} reached the console"
    assert "Trial status:" in first  # Tune's table
    experiment = storage / "quiet"
    for line in ["best config: {'lr': ", f"experiment: {experiment}",
                 f"lightning-tune report {experiment}", f"lightning-tune resume {experiment}",
                 f"tensorboard --logdir {experiment}"]:
        assert line in first
    # a warning about the model: once for the search, not once per rank per trial
    assert "warnings the trials logged, each once" in first
    assert first.count("is smaller than the logging interval") == 1
    assert "_pytree" not in first


def test_tensorboard_shows_one_run_per_trial_with_its_config(console):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    storage, _ = console
    experiment = storage / "quiet"
    runs = {os.path.dirname(path) for path in
            glob.glob(str(experiment / "**" / "events.out.tfevents.*"), recursive=True)}
    trials = set(glob.glob(str(experiment / "*_0000*")))
    assert runs == trials  # Tune's own TensorBoard logger is left out
    learning_rates = set()
    for run in runs:
        events = EventAccumulator(run)
        events.Reload()
        assert len(events.Scalars("val_loss")) >= 1
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        learning_rates.add(start.hparams["lr"].number_value)
    assert learning_rates == {0.01, 0.02}


def test_each_rank_keeps_its_output_in_its_trial_folder(console):
    storage, _ = console
    trials = sorted(glob.glob(str(storage / "quiet" / "*_0000*")))
    assert len(trials) == 2
    for trial in trials:
        for rank in (0, 1):
            with open(os.path.join(trial, f"rank_{rank}.log")) as handle:
                log = handle.read()
            assert f"hello from rank {rank}" in log
            assert f"hello from rank {1 - rank}" not in log
        with open(os.path.join(trial, "trial.log")) as handle:
            assert "GPU available" in handle.read()  # Lightning's banner: kept, not shown


def test_a_failing_ranks_error_names_it_with_the_end_of_its_log(console):
    storage, text = console
    failed = text[text.index("FIRST SEARCH DONE"):]
    (trial,) = glob.glob(str(storage / "failing" / "*_00000*"))
    with open(os.path.join(trial, "error.txt")) as handle:
        error = handle.read()
    for kept in (error, failed):
        assert "Training worker rank 1 failed" in kept
        assert "ValueError: deliberate failure on rank 1" in kept
        assert "The last lines of its log" in kept and "about to fail on rank 1" in kept
    with open(os.path.join(trial, "rank_1.log")) as handle:
        assert "ValueError: deliberate failure on rank 1" in handle.read()
