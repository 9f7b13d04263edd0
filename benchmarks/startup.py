"""How close a cold distributed trial starts to the floor of starting one Ray process.

``floor_s``: one fresh Ray actor comes up and imports torch and Lightning (what any rank,
ours or anyone's, must pay before it can train), timed from ``.remote()`` to its answer.
Against it, one cold trial alone on the cluster (a new search each time, so its trial
process and its workers are new): Tune's trial start to rank 0's first training batch,
for DDP over 2 ranks (the target; rank 0 trains in the trial process), over 1 rank, over 2
ranks with rank 0 in a worker actor as before (``rank_zero_in_trial=False``), and without a
strategy (``strategy=None``). Tune starts its trial clock once the trial process is up, so that
process's own imports fall before it. Rank 0 also records when its process was created:
Ray keeps idle worker processes ready, so an actor's process often predates the trial,
and what remains is its imports. Each measurement waits ``SETTLE_S`` first, so none pays
for the clean-up of the one before (a first run without the wait saw the floor swing from
5 to 10 s).

    .venv/bin/python -m benchmarks.startup [--repeats 5] [--output ...]

Writes ``benchmarks/results/startup.json`` and prints the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Dict, List

import ray

from benchmarks import _digits_mlp as digits
from benchmarks.overhead import Run, clocked_tuners, machine, quiet, read_events
from lightning_tune import tune_lightning
from lightning_tune.cluster import start_local_ray

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "startup.json")
RAY_CPUS = 3  # the trial process and its 2 workers, 1 CPU each: a free CPU per process
TARGET = 1.3
# the trial's strategy settings; rank 0 trains in the trial process unless turned off
SETTINGS = {"ddp": {"num_workers": 2}, "ddp_1_worker": {"num_workers": 1},
            "ddp_rank0_in_a_worker": {"num_workers": 2,
                                      "strategy_kwargs": {"rank_zero_in_trial": False}}}
# before each measurement: the processes of the one before have exited, Ray's idle pool refilled
SETTLE_S = 8.0


@ray.remote(num_cpus=1)
class _ImportingActor:
    """A fresh process that imports what every rank imports before it can train."""

    def __init__(self) -> None:
        for module in ("torch", "lightning.pytorch"):
            importlib.import_module(module)

    def resident_mb(self) -> float:
        import psutil

        return psutil.Process().memory_info().rss / 1e6


def measure_floor() -> Dict[str, float]:
    """Seconds to a fresh actor's first answer once it imported; its resident memory then."""
    started = time.time()
    actor = _ImportingActor.remote()
    resident = ray.get(actor.resident_mb.remote())
    elapsed = time.time() - started
    ray.kill(actor)
    return {"seconds": elapsed, "resident_mb": resident}


def measure_cold_trial(root: str, repeat: int, strategy: str) -> Dict[str, float]:
    """One trial alone; a new search, so every process it trains in is new."""
    run = Run(f"cold_{strategy}", repeat, root)
    workers = {"strategy": "ddp", **SETTINGS[strategy]} if strategy in SETTINGS else {}
    with clocked_tuners() as trial_times:
        tune_lightning(digits.DigitsMLP, {"lr": 1e-3, "record_dir": run.record_dir},
                       datamodule=digits.DigitsMLPData, num_samples=1, max_epochs=1,
                       scheduler="fifo", trainer_kwargs={"num_sanity_val_steps": 0},
                       verbose=0, storage_path=run.storage, name=run.name, **workers)
        start = trial_times[1e-3]["start"]
    first = read_events(run.record_dir, "first_batch")[0]
    return {"start_to_first_batch_s": first["time"] - start,
            "rank0_process_created_after_s": first["process_created"] - start}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    quiet()
    start_local_ray(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    root = tempfile.mkdtemp(prefix="lightning_tune_startup_")
    floors: List[Dict[str, float]] = []
    trials: Dict[str, List[Dict[str, float]]] = {name: [] for name in [*SETTINGS, "single"]}
    try:
        for repeat in range(args.repeats):  # interleaved, as in the overhead benchmark
            time.sleep(SETTLE_S)
            floors.append(measure_floor())
            for strategy in trials:
                time.sleep(SETTLE_S)
                trials[strategy].append(measure_cold_trial(root, repeat, strategy))
            colds = ", ".join(f"{name} {runs[-1]['start_to_first_batch_s']:.2f} s"
                              for name, runs in trials.items())
            print(f"repeat {repeat}: floor {floors[-1]['seconds']:.2f} s, cold trials {colds}",
                  flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    floor = statistics.median(figure["seconds"] for figure in floors)
    resident = statistics.median(figure["resident_mb"] for figure in floors)
    medians = {strategy: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for strategy, runs in trials.items()}
    ratio = medians["ddp"]["start_to_first_batch_s"] / floor
    one_worker = medians["ddp_1_worker"]["start_to_first_batch_s"] / floor
    in_a_worker = medians["ddp_rank0_in_a_worker"]["start_to_first_batch_s"] / floor
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
              "settings": {"ray_cpus": RAY_CPUS, "repeats": args.repeats, "ddp_workers": 2,
                           "settle_s": SETTLE_S,
                           "workload": "digits-mlp, 1 epoch"},
              "floor_s": floor, "floors": floors, "importing_process_resident_mb": resident,
              "cold_trials": trials, "medians": medians,
              "target": {"what": "cold 2-worker trial start to first batch / floor_s",
                         "value": ratio, "limit": TARGET,
                         "verdict": "pass" if ratio <= TARGET else "FAIL"},
              "one_worker_ratio": one_worker, "rank0_in_a_worker_ratio": in_a_worker}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nfloor_s (fresh actor importing torch + Lightning): {floor:.2f} s, "
          f"then {resident:.0f} MB resident")
    for strategy, figures in medians.items():
        print(f"cold {strategy:21s} trial: start to first batch "
              f"{figures['start_to_first_batch_s']:.2f} s (rank 0's process existed after "
              f"{figures['rank0_process_created_after_s']:.2f} s)")
    print(f"ratio {ratio:.2f} (target <= {TARGET}): {report['target']['verdict']}; "
          f"a 1-worker trial: {one_worker:.2f}; rank 0 in a worker: {in_a_worker:.2f}")
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
