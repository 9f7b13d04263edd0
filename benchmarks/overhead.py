"""What lightning_tune costs over the other ways of running the same small search.

Workload "digits-mlp" (see ``benchmarks/_digits_mlp.py``): 4 trials (Adam lr 1e-3, 3e-3,
1e-2, 3e-2) x 3 epochs, FIFO, 2 trials at a time, on a local Ray of 6 CPUs whose start is
timed on its own. Contenders, each timed over the whole 4-trial search (wall clock):

    tune_ddp_warm  tune_lightning, DDP over 2 Ray workers x 1 CPU (gloo), warm worker pool
    tune_ddp_cold  the same with reuse_workers=False (new workers for every trial)
    tune_single    tune_lightning, each trial trains in its own process (1 CPU)
    torchtrainer   Ray's own path: a Tune function that runs a Ray Train TorchTrainer
                   (2 workers x 1 CPU) with ray.train.lightning's strategy and callbacks
    plain_tune     a Tune function trainable (1 CPU, reuse_actors), one Trainer, Ray's Lightning callback
    optuna         Optuna alone, grid over the 4 lrs, one process, trials one after another
    bare_loop      a plain PyTorch loop, one process: the floor

Runs are interleaved (every contender once per repeat) and medians reported. Every
contender must end each lr at the same val_loss as the bare loop (the workload is built for
that): it is the proof they did the same work. Also measured: trial start to first training
batch (``first_batch``), the report-with-checkpoint of a ~400 MB state against a local
``torch.save`` (``checkpoint``), and the orchestration share of one long DDP trial
(``overhead_60s``, its length set by ``--long-trial-s``). Writes
``benchmarks/results/overhead.json`` and prints a table.

    .venv/bin/python -m benchmarks.overhead [--repeats 3] [--only tune_ddp_warm,plain_tune]
                                            [--skip-extras] [--long-trial-s 60]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

import lightning
import lightning.pytorch as pl
import ray
import torch
from ray import tune

from benchmarks import _digits_mlp as digits
from lightning_tune import tune_lightning
from lightning_tune.cluster import start_local_ray

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "overhead.json")
CONTENDERS = ("tune_ddp_warm", "tune_ddp_cold", "tune_single", "torchtrainer", "plain_tune",
              "optuna", "bare_loop")
RAY_CPUS = 6  # 2 concurrent TorchTrainer trials: 1 CPU each for the Tune function + 2 workers
CONCURRENT = 2
NUM_WORKERS = 2
MATCH_TOLERANCE = 1e-3  # relative; the workload is built to agree to ~1e-6
CHECKPOINT_FLOATS = 100_000_000  # 400 MB of float32
# one report per epoch, each between two local saves: the page cache swings one save by 3 x
CHECKPOINT_REPORTS = 3
# (name, numerator, denominator or None for an absolute figure, target, what)
TARGETS = (
    ("warm_vs_torchtrainer", "tune_ddp_warm", "torchtrainer", 0.2, "search time ratio"),
    ("warm_vs_plain_tune", "tune_ddp_warm", "plain_tune", 1.2, "search time ratio"),
    ("single_vs_plain_tune", "tune_single", "plain_tune", 1.0, "search time ratio"),
)


# --- driver-side trial timing ------------------------------------------------------------
_TRIAL_TIMES: Dict[Any, Dict[str, float]] = {}


class TrialClock(tune.Callback):
    """Driver-side time of each trial's start and completion, keyed by its lr.

    The times go to a module-level dict, so a copy Tune might make of the callback still
    records into the same place.
    """

    def on_trial_start(self, iteration, trials, trial, **info):
        _TRIAL_TIMES.setdefault(trial.config.get("lr"), {})["start"] = time.time()

    def on_trial_complete(self, iteration, trials, trial, **info):
        _TRIAL_TIMES.setdefault(trial.config.get("lr"), {})["complete"] = time.time()


@contextlib.contextmanager
def clocked_tuners():
    """Give every Tuner built meanwhile (tune_lightning's too) a TrialClock.

    tune_lightning takes no Tune callbacks, so ``ray.tune.Tuner``, which it looks up at call
    time, is swapped for a subclass that adds one; restored on exit.
    """
    original = tune.Tuner

    class ClockedTuner(original):
        def __init__(self, *args, run_config=None, **kwargs):
            run_config = run_config or tune.RunConfig()
            run_config.callbacks = list(run_config.callbacks or []) + [TrialClock()]
            super().__init__(*args, run_config=run_config, **kwargs)

    _TRIAL_TIMES.clear()
    tune.Tuner = ClockedTuner
    try:
        yield _TRIAL_TIMES
    finally:
        tune.Tuner = original


def read_events(record_dir: str, event: str) -> List[dict]:
    records = []
    for path in glob.glob(os.path.join(record_dir, f"{event}_*.json")):
        with open(path) as handle:
            records.append(json.load(handle))
    return records


def first_batch_delays(record_dir: str, trial_times: Dict[Any, Dict[str, float]]) -> List[dict]:
    """Per trial: seconds from Tune's trial start to rank 0's first batch, cold or warm.

    A trial is warm when its rank 0 ran in a process an earlier trial's rank 0 already used
    (a reused worker or trial actor), cold when the process was new.
    """
    batches = sorted(read_events(record_dir, "first_batch"), key=lambda record: record["time"])
    seen, delays = set(), []
    for record in batches:
        start = trial_times.get(record["lr"], {}).get("start")
        if start is None:
            continue
        delays.append({"lr": record["lr"], "seconds": record["time"] - start,
                       "kind": "warm" if record["pid"] in seen else "cold"})
        seen.add(record["pid"])
    return delays


# --- the contenders ------------------------------------------------------------------------
def grid_space(record_dir: str) -> Dict[str, Any]:
    return {"lr": tune.grid_search(list(digits.LRS)), "record_dir": record_dir}


def losses_of(result_grid: Any) -> Dict[float, float]:
    """Final reported val_loss per lr, from a Tune ResultGrid."""
    losses = {}
    for result in result_grid:
        if result.error:
            raise RuntimeError(f"trial lr={result.config.get('lr')} failed: {result.error}")
        if result.metrics.get("training_iteration") != digits.EPOCHS:
            raise RuntimeError(f"trial lr={result.config['lr']} reported "
                               f"{result.metrics.get('training_iteration')} epochs, not "
                               f"{digits.EPOCHS}")
        losses[result.config["lr"]] = float(result.metrics["val_loss"])
    return losses


def run_tune_lightning(strategy: Optional[str], reuse: bool, run: "Run") -> Dict:
    ddp = {"strategy": "ddp", "num_workers": NUM_WORKERS} if strategy else {}
    result = tune_lightning(
        digits.DigitsMLP, grid_space(run.record_dir), datamodule=digits.DigitsMLPData,
        num_samples=1, max_epochs=digits.EPOCHS, search_alg="grid", scheduler="fifo",
        max_concurrent_trials=CONCURRENT, trainer_kwargs={"num_sanity_val_steps": 0},
        verbose=0, storage_path=run.storage, name=run.name, reuse_workers=reuse, **ddp)
    return losses_of(result.result_grid)


def _torchtrainer_worker(config: Dict[str, Any]) -> None:
    """One Ray Train worker: a Lightning Trainer set up as Ray's docs show."""
    from ray.train.lightning import (RayDDPStrategy, RayLightningEnvironment,
                                     RayTrainReportCallback, prepare_trainer)

    model = digits.DigitsMLP(lr=config["lr"], record_dir=config["record_dir"])
    trainer = pl.Trainer(**digits.trainer_kwargs(
        devices="auto", strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()],
        callbacks=[RayTrainReportCallback()]))
    trainer = prepare_trainer(trainer)
    trainer.fit(model, datamodule=digits.DigitsMLPData())


def _torchtrainer_trial(config: Dict[str, Any]) -> None:
    """One Tune trial (default 1 CPU) that drives a TorchTrainer and forwards its reports."""
    from ray.train import RunConfig as TrainRunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = TorchTrainer(
        _torchtrainer_worker, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=NUM_WORKERS, use_gpu=False,
                                     resources_per_worker={"CPU": 1}),
        run_config=TrainRunConfig(name=f"train_{tune.get_context().get_trial_id()}",
                                  storage_path=config["train_storage"],
                                  callbacks=[TuneReportCallback()]))
    trainer.fit()


def run_torchtrainer(run: "Run") -> Dict:
    space = {**grid_space(run.record_dir), "train_storage": run.storage}
    tuner = tune.Tuner(
        _torchtrainer_trial, param_space=space,
        tune_config=tune.TuneConfig(metric="val_loss", mode="min",
                                    max_concurrent_trials=CONCURRENT),
        run_config=tune.RunConfig(name=run.name, storage_path=run.storage, verbose=0))
    result_grid = tuner.fit()
    # RayTrainReportCallback leaves an empty folder per worker in the system temp directory
    for result in result_grid:
        pattern = f"lightning_checkpoints-*-name=train_{result.metrics.get('trial_id')}-*"
        for path in glob.glob(os.path.join(tempfile.gettempdir(), pattern)):
            shutil.rmtree(path, ignore_errors=True)
    return losses_of(result_grid)


def _plain_tune_trial(config: Dict[str, Any]) -> None:
    """A single-process Lightning trial reporting each epoch with Ray's own callback."""
    from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

    model = digits.DigitsMLP(lr=config["lr"], record_dir=config["record_dir"])
    trainer = pl.Trainer(**digits.trainer_kwargs(callbacks=[TuneReportCheckpointCallback(
        metrics={"val_loss": "val_loss"}, on="validation_end")]))
    trainer.fit(model, datamodule=digits.DigitsMLPData())


def run_plain_tune(run: "Run") -> Dict:
    tuner = tune.Tuner(
        tune.with_resources(_plain_tune_trial, {"cpu": 1}), param_space=grid_space(run.record_dir),
        # reuse_actors, as tune_lightning runs Tune and as README tells users of their own
        # Tuner to do: without it this baseline would pay a process start per trial
        tune_config=tune.TuneConfig(metric="val_loss", mode="min",
                                    max_concurrent_trials=CONCURRENT, reuse_actors=True),
        run_config=tune.RunConfig(name=run.name, storage_path=run.storage, verbose=0))
    return losses_of(tuner.fit())


@contextlib.contextmanager
def one_thread():
    """In-driver contenders get one intra-op thread, like a 1-CPU Ray trial or worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_optuna(run: "Run") -> Dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_categorical("lr", list(digits.LRS))
        trainer = pl.Trainer(**digits.trainer_kwargs())
        trainer.fit(digits.DigitsMLP(lr=lr), datamodule=digits.DigitsMLPData())
        return float(trainer.callback_metrics["val_loss"])

    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.GridSampler({"lr": list(digits.LRS)}))
    with one_thread():
        study.optimize(objective, n_trials=len(digits.LRS))
    return {trial.params["lr"]: trial.value for trial in study.trials}


def run_bare_loop(run: "Run") -> Dict:
    with one_thread():
        return {lr: digits.train_bare(lr) for lr in digits.LRS}


RUNNERS: Dict[str, Callable[["Run"], Dict]] = {
    "tune_ddp_warm": lambda run: run_tune_lightning("ddp", True, run),
    "tune_ddp_cold": lambda run: run_tune_lightning("ddp", False, run),
    "tune_single": lambda run: run_tune_lightning(None, True, run),
    "torchtrainer": run_torchtrainer,
    "plain_tune": run_plain_tune,
    "optuna": run_optuna,
    "bare_loop": run_bare_loop,
}


class Run:
    """One contender's search in one repeat: its experiment name and record directory."""

    def __init__(self, contender: str, repeat: int, root: str) -> None:
        self.name = f"{contender}_{repeat}"
        self.storage = os.path.join(root, "storage")
        self.record_dir = os.path.join(root, "records", self.name)
        os.makedirs(self.record_dir, exist_ok=True)


def timed_search(contender: str, repeat: int, root: str) -> dict:
    run = Run(contender, repeat, root)
    with clocked_tuners() as trial_times:
        started = time.perf_counter()
        try:
            losses = RUNNERS[contender](run)
        except Exception as error:  # one broken contender should not sink the others
            return {"contender": contender, "repeat": repeat, "wall_s": None,
                    "error": f"{type(error).__name__}: {error}"}
        wall_s = time.perf_counter() - started
    return {"contender": contender, "repeat": repeat, "wall_s": wall_s,
            "val_loss": {repr(lr): loss for lr, loss in sorted(losses.items())},
            "first_batch": first_batch_delays(run.record_dir, dict(trial_times))}


# --- the side measurements -----------------------------------------------------------------
def measure_checkpoint(root: str) -> dict:
    """A ~400 MB state reported with its checkpoint from rank 0, against a local torch.save.

    Both are timed in rank 0's process (see ``TimedReportCallback``); the local figure is the
    median of a save just before and one just after the report.
    """
    run = Run("checkpoint", 0, root)
    callback = digits.TimedReportCallback(run.record_dir)
    started = time.perf_counter()
    tune_lightning(digits.DigitsMLP, {"lr": 1e-3, "ballast_floats": CHECKPOINT_FLOATS},
                   datamodule=digits.DigitsMLPData, num_samples=1,
                   max_epochs=CHECKPOINT_REPORTS, strategy="ddp", num_workers=NUM_WORKERS,
                   scheduler="fifo",
                   trainer_kwargs={"num_sanity_val_steps": 0}, callbacks=[callback],
                   verbose=0, storage_path=run.storage, name=run.name)
    wall_s = time.perf_counter() - started
    shutil.rmtree(os.path.join(run.storage, run.name), ignore_errors=True)  # 400 MB+ of disk
    records = []
    for path in sorted(glob.glob(os.path.join(run.record_dir, "checkpoint_*.json"))):
        with open(path) as handle:
            records.append(json.load(handle))
    if not records:
        raise RuntimeError("the timed report callback wrote nothing")
    bridge = statistics.median(record["bridge_s"] for record in records)
    local = statistics.median(s for record in records for s in record["local_save_s"])
    return {"state_dict_mb": records[0]["state_dict_bytes"] / 1e6, "bridge_s": bridge,
            "local_save_s": local, "ratio": bridge / local, "search_wall_s": wall_s,
            "reports": records}


def measure_long_trial(root: str, long_trial_s: float) -> dict:
    """One DDP trial that trains ~long_trial_s: the share of its wall that is not training.

    The trial's wall runs from Tune's trial start to its completion (driver clock); training
    from rank 0's first batch to its end of training. Each step sleeps, so the trial takes
    its time without competing for the two cores.
    """
    run = Run("long_trial", 0, root)
    steps = digits.EPOCHS * -(-digits.TRAIN_ROWS // digits.GLOBAL_BATCH)
    with clocked_tuners() as trial_times:
        tune_lightning(digits.DigitsMLP, {"lr": 1e-3, "record_dir": run.record_dir,
                                          "step_sleep_s": long_trial_s / steps},
                       datamodule=digits.DigitsMLPData, num_samples=1,
                       max_epochs=digits.EPOCHS, strategy="ddp", num_workers=NUM_WORKERS,
                       scheduler="fifo", trainer_kwargs={"num_sanity_val_steps": 0},
                       verbose=0, storage_path=run.storage, name=run.name)
        times = dict(trial_times[1e-3])
    first = read_events(run.record_dir, "first_batch")[0]["time"]
    end = read_events(run.record_dir, "train_end")[0]["time"]
    trial_wall = times["complete"] - times["start"]
    training = end - first
    return {"long_trial_s": long_trial_s, "trial_wall_s": trial_wall, "training_s": training,
            "overhead_s": trial_wall - training, "fraction": (trial_wall - training) / trial_wall,
            "start_to_first_batch_s": first - times["start"],
            "train_end_to_complete_s": times["complete"] - end}


# --- report --------------------------------------------------------------------------------
def verdict(value: Optional[float], target: float) -> str:
    if value is None:
        return "n/a"
    return "pass" if value <= target else "FAIL"


def summarise(runs: List[dict], contenders: List[str]) -> dict:
    reference = next((run["val_loss"] for run in runs
                      if run["contender"] == "bare_loop" and run.get("val_loss")), None)
    if reference is None:  # no bare loop in this run: it is cheap, compute it here
        with one_thread():
            reference = {repr(lr): digits.train_bare(lr) for lr in digits.LRS}
    summary = {}
    for contender in contenders:
        mine = [run for run in runs if run["contender"] == contender]
        times = [run["wall_s"] for run in mine if run["wall_s"] is not None]
        worst = None
        for run in mine:
            for lr, loss in (run.get("val_loss") or {}).items():
                diff = abs(loss - reference[lr]) / abs(reference[lr]) if lr in reference else 1.0
                worst = diff if worst is None else max(worst, diff)
            if run.get("val_loss") and set(run["val_loss"]) != set(reference):
                worst = 1.0  # a trial is missing
        delays = [delay for run in mine for delay in run.get("first_batch", [])]
        first_batch = {}
        for kind in ("cold", "warm"):
            seconds = [delay["seconds"] for delay in delays if delay["kind"] == kind]
            if seconds:
                first_batch[kind] = {"median_s": statistics.median(seconds), "n": len(seconds)}
        summary[contender] = {
            "median_s": statistics.median(times) if times else None, "times_s": times,
            "errors": [run["error"] for run in mine if run.get("error")],
            "val_loss": [run.get("val_loss") for run in mine],
            "max_rel_diff_vs_bare": worst,
            "same_work": None if worst is None else worst <= MATCH_TOLERANCE,
            "first_batch": first_batch,
        }
    return {"reference_val_loss": reference, "contenders": summary}


def ratios(summary: dict, extras: dict) -> List[dict]:
    medians = {name: row["median_s"] for name, row in summary["contenders"].items()}
    rows = []
    for name, numerator, denominator, target, what in TARGETS:
        top, bottom = medians.get(numerator), medians.get(denominator)
        value = top / bottom if top is not None and bottom else None
        rows.append({"name": name, "what": f"{what} {numerator} / {denominator}",
                     "value": value, "target": target, "verdict": verdict(value, target)})
    for contender, kind, target in (("tune_ddp_warm", "warm", 1.0), ("tune_ddp_warm", "cold", 3.0),
                                    ("tune_ddp_cold", "cold", 3.0)):
        figure = summary["contenders"].get(contender, {}).get("first_batch", {}).get(kind)
        value = figure["median_s"] if figure else None
        rows.append({"name": f"first_batch_{contender}_{kind}",
                     "what": f"seconds, trial start to first batch, {kind} ({contender})",
                     "value": value, "target": target, "verdict": verdict(value, target)})
    checkpoint = extras.get("checkpoint") or {}
    rows.append({"name": "checkpoint", "what": "report-with-checkpoint / local torch.save",
                 "value": checkpoint.get("ratio"), "target": 1.5,
                 "verdict": verdict(checkpoint.get("ratio"), 1.5)})
    long_trial = extras.get("overhead_60s") or {}
    rows.append({"name": "orchestration", "what": "share of a long DDP trial not training",
                 "value": long_trial.get("fraction"), "target": 0.05,
                 "verdict": verdict(long_trial.get("fraction"), 0.05)})
    return rows


def print_table(summary: dict, target_rows: List[dict], extras: dict, ray_init_s: float) -> None:
    print(f"\nray.init: {ray_init_s:.1f} s (not in any contender's time)")
    print(f"\n{'contender':14s} {'median s':>9s} {'runs':>5s} {'cold 1st':>9s} {'warm 1st':>9s}"
          f" {'max rel diff':>13s}  same work")
    for name, row in summary["contenders"].items():
        median = f"{row['median_s']:9.1f}" if row["median_s"] is not None else f"{'-':>9s}"
        firsts = [f"{row['first_batch'][kind]['median_s']:9.2f}" if kind in row["first_batch"]
                  else f"{'-':>9s}" for kind in ("cold", "warm")]
        diff = row["max_rel_diff_vs_bare"]
        same = {None: "-", True: "yes", False: "NO (differs > 1e-3)"}[row["same_work"]]
        print(f"{name:14s} {median} {len(row['times_s']):5d} {firsts[0]} {firsts[1]} "
              f"{(f'{diff:.1e}' if diff is not None else '-'):>13s}  {same}"
              + (f"  errors: {row['errors'][0][:80]}" if row["errors"] else ""))
    print(f"\n{'final val_loss':14s} " + " ".join(f"{lr:>10s}" for lr in
                                                 summary["reference_val_loss"]))
    print(f"{'(bare loop)':14s} " + " ".join(f"{loss:10.6f}" for loss in
                                              summary["reference_val_loss"].values()))
    for name, row in summary["contenders"].items():
        last = next((losses for losses in reversed(row["val_loss"]) if losses), None)
        if last:
            print(f"{name:14s} " + " ".join(f"{last.get(lr, float('nan')):10.6f}"
                                            for lr in summary["reference_val_loss"]))
    print(f"\n{'target':34s} {'value':>8s} {'limit':>6s}  verdict")
    for row in target_rows:
        value = f"{row['value']:8.3f}" if row["value"] is not None else f"{'-':>8s}"
        print(f"{row['name']:34s} {value} {row['target']:6g}  {row['verdict']}")
    checkpoint, long_trial = extras.get("checkpoint"), extras.get("overhead_60s")
    if checkpoint:
        print(f"\ncheckpoint: {checkpoint['state_dict_mb']:.0f} MB state, report "
              f"{checkpoint['bridge_s']:.2f} s vs local torch.save "
              f"{checkpoint['local_save_s']:.2f} s")
    if long_trial:
        print(f"long trial: wall {long_trial['trial_wall_s']:.1f} s, training "
              f"{long_trial['training_s']:.1f} s, overhead {long_trial['overhead_s']:.2f} s "
              f"({100 * long_trial['fraction']:.1f} %)")
    for name, error in extras.get("errors", {}).items():
        print(f"{name}: failed: {error[:200]}")


def quiet() -> None:
    """Keep the table readable: Lightning's banners and library warnings off."""
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new console output ignores verbose=0


def machine() -> dict:
    """What the figures were measured on."""
    return {"platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "ray": ray.__version__, "torch": torch.__version__,
            "lightning": lightning.__version__}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(CONTENDERS),
                        help="comma-separated subset of: " + ", ".join(CONTENDERS))
    parser.add_argument("--skip-extras", action="store_true",
                        help="leave out the checkpoint and long-trial measurements")
    parser.add_argument("--long-trial-s", type=float, default=60.0,
                        help="training time of the long trial (overhead share)")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    contenders = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        parser.error(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    quiet()

    started = time.perf_counter()
    start_local_ray(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - started
    root = tempfile.mkdtemp(prefix="lightning_tune_overhead_")
    runs, extras = [], {"errors": {}}
    try:
        for repeat in range(args.repeats):  # interleaved: contenders share the machine's drift
            for contender in contenders:
                runs.append(timed_search(contender, repeat, root))
                run = runs[-1]
                status = (f"{run['wall_s']:.1f} s" if run["wall_s"] is not None
                          else f"failed: {run['error'][:300]}")
                print(f"repeat {repeat} {contender:14s} {status}", flush=True)
        if not args.skip_extras:
            for name, measure in (("checkpoint", lambda: measure_checkpoint(root)),
                                  ("overhead_60s", lambda: measure_long_trial(
                                      root, args.long_trial_s))):
                try:
                    extras[name] = measure()
                    print(f"{name}: done", flush=True)
                except Exception as error:
                    extras["errors"][name] = f"{type(error).__name__}: {error}"
                    print(f"{name}: failed: {extras['errors'][name][:300]}", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    summary = summarise(runs, contenders)
    target_rows = ratios(summary, extras)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "settings": {"workload": "digits-mlp", "lrs": list(digits.LRS), "epochs": digits.EPOCHS,
                     "global_batch": digits.GLOBAL_BATCH, "train_rows": digits.TRAIN_ROWS,
                     "concurrent_trials": CONCURRENT, "ddp_workers": NUM_WORKERS,
                     "ray_cpus": RAY_CPUS, "repeats": args.repeats, "contenders": contenders,
                     "long_trial_s": args.long_trial_s, "checkpoint_floats": CHECKPOINT_FLOATS,
                     "checkpoint_reports": CHECKPOINT_REPORTS,
                     "match_tolerance": MATCH_TOLERANCE,
                     "in_driver_threads": 1},
        "ray_init_s": ray_init_s,
        "runs": runs,
        "medians_s": {name: row["median_s"] for name, row in summary["contenders"].items()},
        "summary": summary,
        "targets": target_rows,
        "checkpoint": extras.get("checkpoint"),
        "overhead_60s": extras.get("overhead_60s"),
        "extra_errors": extras["errors"],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print_table(summary, target_rows, extras, ray_init_s)
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
