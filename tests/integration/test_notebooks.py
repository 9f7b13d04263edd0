"""The notebooks in notebooks/ run top to bottom (small budget) and show what they claim.

Each notebook is executed in memory with nbclient on the ``python3`` kernel; the committed
file, with the outputs of a real run, is never overwritten. Every check reads the fresh
outputs: a notebook that errors, prints the wrong thing or draws nothing fails its test.
"""

import copy
import glob
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = os.path.join(ROOT, "notebooks")
NAMES = ["01_quickstart", "02_ddp_optuna_asha", "03_horovod", "04_pbt", "05_resume"]
CELL_TIMEOUT_S = 360  # the longest cell is a search; ~1-3 min on 2 busy cores
MAX_SIZE_KB = 300


def read(name):
    return nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), as_version=4)


def execute(name, results_dir):
    """The notebook run afresh with the small budget, in memory, from notebooks/."""
    notebook = copy.deepcopy(read(name))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    python_path = os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    env = dict(os.environ, LIGHTNING_TUNE_BUDGET="small", PYTHONPATH=python_path,
               LIGHTNING_TUNE_RESULTS=str(results_dir))
    env.pop("RAY_ADDRESS", None)
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": NOTEBOOKS}})
    client.execute(env=env)  # raises CellExecutionError, naming the cell, if one fails
    return notebook


def outputs(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs]


def printed(notebook):
    """Everything the notebook printed or showed as text, in order."""
    parts = []
    for output in outputs(notebook):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def images(notebook):
    return [output for output in outputs(notebook)
            if output.output_type in ("execute_result", "display_data")
            and "image/png" in output.data]


def tune_tables(notebook):
    """The HTML status tables Tune's notebook reporter displayed (its last update each)."""
    return [output.data["text/html"] for output in outputs(notebook)
            if output.output_type in ("execute_result", "display_data")
            and "tuneStatus" in output.data.get("text/html", "")]


def number_after(label, text):
    match = re.search(re.escape(label) + r"\s*([0-9.]+)", text)
    assert match, f"{label!r} not in the notebook's output:\n{text[-3000:]}"
    return float(match.group(1))


def check_quickstart(notebook, text):
    assert "best config: {'lr':" in text
    assert number_after("held-out test accuracy of the best model:", text) > 0.5
    assert len(images(notebook)) >= 3  # optimisation history, parallel coordinates, curves
    assert "saved: ['learning_curves.png', 'optimisation_history.png', " \
           "'parallel_coordinates.png']" in text
    assert "reloaded best config: {'lr':" in text
    assert "CNN best config: {'channels':" in text  # the second search in the same kernel
    assert len(tune_tables(notebook)) == 2
    fits = re.findall(r"fit (\d): val_loss ([0-9.]+), held-out accuracy ([0-9.]+)", text)
    assert [run for run, _, _ in fits] == ["1", "2"]  # RayDDPStrategy fit twice in one kernel
    for _, val_loss, accuracy in fits:  # and both trained (chance: 2.30, 0.1)
        assert float(val_loss) < 2.0 and float(accuracy) > 0.5


def check_ddp_optuna_asha(notebook, text):
    assert "best config: {'optimizer': 'adam', 'lr':" in text
    assert "'num_layers':" in text and "'batch_size':" in text
    assert re.search(r"2 trials, 2 completed, every one on \[2\] DDP ranks", text)
    assert number_after("held-out test accuracy of the best model:", text) > 0.5
    assert len(images(notebook)) >= 2


def check_horovod(notebook, text):
    assert "2 of 2 trials completed, Horovod ranks per trial: [2.0]" in text
    assert number_after("held-out test accuracy of the best model:", text) > 0.5
    assert len(images(notebook)) >= 1


def check_pbt(notebook, text):
    assert number_after("PBT copied a better trial", text) >= 1
    assert number_after("trials trained with more than one learning rate:", text) >= 1
    assert len(images(notebook)) >= 2


def check_resume(notebook, text):
    assert re.search(r"interrupted the search after \d+ s: first trial 5/5 epochs, second "
                     r"trial [12]/5 epochs", text)
    assert "finished trial not run again: 5 rows, all from before the interruption" in text
    continued = number_after("interrupted trial continued from iteration", text)
    assert 2 <= continued <= 5
    assert re.search(r"continued from iteration \d to 5 after the resume", text)
    assert "status: {0.003: 'TERMINATED', 0.01: 'TERMINATED'}" in text
    assert len(images(notebook)) >= 1


CHECKS = {"01_quickstart": check_quickstart, "02_ddp_optuna_asha": check_ddp_optuna_asha,
          "03_horovod": check_horovod, "04_pbt": check_pbt, "05_resume": check_resume}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_shows_its_results(name, tmp_path):
    before = sorted(os.listdir(NOTEBOOKS))
    notebook = execute(name, tmp_path)
    errors = [output for output in outputs(notebook) if output.output_type == "error"]
    assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
    text = printed(notebook)
    assert "Ray started with 2 CPUs" in text
    assert text.rstrip().endswith("Ray is shut down: True")
    assert glob.glob(os.path.join(str(tmp_path), f"{name}_*")), \
        "the notebook did not write its experiments under LIGHTNING_TUNE_RESULTS"
    assert sorted(os.listdir(NOTEBOOKS)) == before, "the notebook left files in notebooks/"
    CHECKS[name](notebook, text)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_a_clean_small_run(name):
    """What is committed: executed in order, no errors, small, no machine-specific paths."""
    path = os.path.join(NOTEBOOKS, f"{name}.ipynb")
    assert os.path.getsize(path) < MAX_SIZE_KB * 1024
    notebook = read(name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    assert images(notebook) and tune_tables(notebook)
    assert 'SMALL_BUDGET = os.environ.get("LIGHTNING_TUNE_BUDGET", "small") == "small"' \
           in code[0].source
    raw = open(path).read()
    for leak in ("/tmp/", "/work/", "/root/", "/home/"):
        assert leak not in raw, f"{name}.ipynb holds a machine-specific path ({leak}...)"
    assert printed(notebook).rstrip().endswith("Ray is shut down: True")
    CHECKS[name](notebook, printed(notebook))  # what it shows holds for the committed run too
