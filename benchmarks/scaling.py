"""How lightning_tune's cost per trial grows with the size of a search and the workers per trial.

Each search runs the "digits-mlp" workload (``benchmarks/_digits_mlp.py``) for one epoch per
trial: a grid of distinct Adam learning rates spaced geometrically over [1e-3, 3e-2], the FIFO
scheduler, 2 trials at a time, on one local Ray of 6 CPUs started once (its start is timed on
its own and left out of every search's time). Two series of searches:

    trials   16 and 64 trials: tune_lightning with DDP over 2 workers x 0.5 CPU, next to
             plain Ray Tune (a 1-CPU function trainable with reuse_actors and one Lightning
             Trainer per trial, reporting with Ray's own TuneReportCheckpointCallback)
    workers  16 trials (the smallest trial count) with DDP over 1, 2 and 4 workers x 0.5 CPU;
             plain Tune at that trial count is the baseline (the same search, measured once)

Per search: its wall time, the time per trial, the overhead per trial over plain Tune with the
same number of trials, how many trials finished with one training iteration (any failure
stops the benchmark), the median trial duration (Tune's start to completion, driver clock) of
the first 2 trials (new processes) and of the others (reused ones), and the actors and
placement groups Ray created during the search. Writes ``benchmarks/results/scaling.json``,
a plot beside it with the same stem (``scaling.png``), and prints a table.

    .venv/bin/python -m benchmarks.scaling [--trials 16,64] [--workers 1,2,4] [--quick]
                                           [--output benchmarks/results/scaling.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional

import lightning.pytorch as pl
import ray
from ray import tune

from benchmarks import _digits_mlp as digits
from benchmarks import _gcs_counts as gcs_counts
from benchmarks.overhead import Run, clocked_tuners, machine, quiet
from lightning_tune import tune_lightning
from lightning_tune.cluster import start_local_ray

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scaling.json")
RAY_CPUS = 6  # 2 concurrent trials x (1 head CPU + 4 workers x 0.5)
CONCURRENT = 2
CPUS_PER_WORKER = 0.5
TRIALS_SERIES_WORKERS = 2
EPOCHS = 1
LR_RANGE = (1e-3, 3e-2)


def lrs(count: int) -> List[float]:
    """``count`` distinct learning rates spaced geometrically over LR_RANGE."""
    low, high = LR_RANGE
    if count == 1:
        return [low]
    return [low * (high / low) ** (i / (count - 1)) for i in range(count)]


def check_trials(result_grid: Any, expected: int) -> int:
    """The number of trials that finished with one training iteration; raises on any failure."""
    problems = []
    for result in result_grid:
        if result.error:
            problems.append(f"lr={result.config.get('lr')}: {result.error}")
        elif (result.metrics or {}).get("training_iteration") != EPOCHS:
            problems.append(f"lr={result.config.get('lr')}: "
                            f"{(result.metrics or {}).get('training_iteration')} iterations")
    if problems or len(result_grid) != expected:
        raise RuntimeError(f"{len(problems)} of {len(result_grid)} trials failed (expected "
                           f"{expected} trials); first: {problems[:1]}")
    return expected


def run_toolkit(run: Run, trials: int, workers: int) -> int:
    result = tune_lightning(
        digits.DigitsMLP, {"lr": tune.grid_search(lrs(trials))}, datamodule=digits.DigitsMLPData,
        num_samples=1, max_epochs=EPOCHS, strategy="ddp", num_workers=workers,
        cpus_per_worker=CPUS_PER_WORKER, search_alg="grid", scheduler="fifo",
        max_concurrent_trials=CONCURRENT, trainer_kwargs={"num_sanity_val_steps": 0},
        verbose=0, storage_path=run.storage, name=run.name, reuse_workers=True)
    return check_trials(result.result_grid, trials)


def _plain_trial(config: Dict[str, Any]) -> None:
    """One single-process Lightning trial reporting with Ray's own Lightning callback."""
    from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

    trainer = pl.Trainer(**digits.trainer_kwargs(max_epochs=EPOCHS, callbacks=[
        TuneReportCheckpointCallback(metrics={"val_loss": "val_loss"}, on="validation_end")]))
    trainer.fit(digits.DigitsMLP(lr=config["lr"]), datamodule=digits.DigitsMLPData())


def run_plain(run: Run, trials: int) -> int:
    tuner = tune.Tuner(
        tune.with_resources(_plain_trial, {"cpu": 1}),
        param_space={"lr": tune.grid_search(lrs(trials))},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min",
                                    max_concurrent_trials=CONCURRENT, reuse_actors=True),
        run_config=tune.RunConfig(name=run.name, storage_path=run.storage, verbose=0))
    return check_trials(tuner.fit(), trials)


def ray_objects() -> Dict[str, Dict[str, Any]]:
    """Every actor (by id, with its class) and placement group Ray has known, dead ones too."""
    from ray._private import state
    from ray.util import placement_group_table

    return {"actors": {key: info.get("ActorClassName") for key, info in state.actors().items()},
            "groups": dict.fromkeys(placement_group_table())}


def median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def measure(contender: str, trials: int, workers: Optional[int], root: str) -> dict:
    """One search, timed; its trial durations and the Ray objects it created."""
    key = "plain_tune" if workers is None else f"toolkit_ddp{workers}"
    run = Run(f"{key}_{trials}", 0, root)
    before, requests_before = ray_objects(), gcs_counts.snapshot()
    with clocked_tuners() as trial_times:
        started = time.perf_counter()
        finished = run_plain(run, trials) if workers is None else run_toolkit(run, trials, workers)
        wall_s = time.perf_counter() - started
        times = {lr: dict(clock) for lr, clock in trial_times.items()}
    after, requests = ray_objects(), gcs_counts.difference(requests_before,
                                                          gcs_counts.snapshot())
    new_actors = [cls for key_, cls in after["actors"].items() if key_ not in before["actors"]]
    spans = sorted((clock["start"], clock["complete"] - clock["start"]) for clock in times.values()
                   if "start" in clock and "complete" in clock)
    durations = [duration for _, duration in spans]
    shutil.rmtree(os.path.join(run.storage, run.name), ignore_errors=True)
    return {"contender": contender, "trials": trials, "workers": workers, "wall_s": wall_s,
            "per_trial_s": wall_s / trials, "trials_ok": finished,
            "cold_median_s": median(durations[:CONCURRENT]),
            "warm_median_s": median(durations[CONCURRENT:]), "trial_durations_s": durations,
            "actors_created": len(new_actors),
            "actors_by_class": dict(collections.Counter(new_actors)),
            "placement_groups_created": len(set(after["groups"]) - set(before["groups"])),
            "gcs_writes": gcs_counts.writes(requests), "gcs_requests": requests}


def table_rows(searches: List[dict], trial_counts: List[int], worker_counts: List[int],
               workers_trials: int) -> List[dict]:
    """The printed rows of both series; the overhead is against plain Tune at the same count."""
    plain = {s["trials"]: s for s in searches if s["workers"] is None}
    toolkit = {(s["trials"], s["workers"]): s for s in searches if s["workers"] is not None}
    picks = [("trials", plain[n]) for n in trial_counts]
    picks += [("trials", toolkit[(n, TRIALS_SERIES_WORKERS)]) for n in trial_counts]
    picks += [("workers", toolkit[(workers_trials, w)]) for w in worker_counts]
    rows = []
    for series, search in picks:
        base = plain[search["trials"]]
        overhead = (None if search is base
                    else (search["wall_s"] - base["wall_s"]) / search["trials"])
        rows.append({"series": series, **{k: search[k] for k in (
            "contender", "trials", "workers", "wall_s", "per_trial_s", "trials_ok",
            "cold_median_s", "warm_median_s", "actors_created", "placement_groups_created",
            "gcs_writes")},
            "overhead_per_trial_s": overhead})
    return rows


def _fmt(value: Optional[float], width: int, digits_: int = 2) -> str:
    return f"{value:{width}.{digits_}f}" if value is not None else f"{'-':>{width}s}"


def print_table(rows: List[dict], ray_init_s: float) -> None:
    print(f"\nray.init: {ray_init_s:.1f} s (not in any search's time)")
    print(f"\n{'series':8s} {'contender':12s} {'trials':>6s} {'workers':>7s} {'wall s':>8s} "
          f"{'s/trial':>8s} {'over/trial':>10s} {'ok':>4s} {'cold s':>7s} {'warm s':>7s} "
          f"{'actors':>6s} {'PGs':>5s}")
    for row in rows:
        workers = str(row["workers"]) if row["workers"] is not None else "-"
        print(f"{row['series']:8s} {row['contender']:12s} {row['trials']:6d} {workers:>7s} "
              f"{_fmt(row['wall_s'], 8, 1)} {_fmt(row['per_trial_s'], 8)} "
              f"{_fmt(row['overhead_per_trial_s'], 10)} {row['trials_ok']:4d} "
              f"{_fmt(row['cold_median_s'], 7)} {_fmt(row['warm_median_s'], 7)} "
              f"{row['actors_created']:6d} {row['placement_groups_created']:5d}")


def print_counts(searches: List[dict]) -> None:
    print("\ncounts per trial (Ray objects created during each search / its trials):")
    for s in searches:
        name = s["contender"] + (f" DDP-{s['workers']}" if s["workers"] else "")
        classes = ", ".join(f"{count} {cls}" for cls, count in sorted(s["actors_by_class"].items()))
        print(f"  {name}, {s['trials']} trials: {s['actors_created'] / s['trials']:.2f} actors "
              f"and {s['placement_groups_created'] / s['trials']:.2f} placement groups per trial"
              f", {s['gcs_writes'] / s['trials']:.1f} GCS writes per trial"
              f" ({classes or 'no actors'})")


def plot(rows: List[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for contender, label in (("toolkit", f"lightning_tune DDP-{TRIALS_SERIES_WORKERS}"),
                             ("plain_tune", "plain Ray Tune")):
        points = [(r["trials"], r["per_trial_s"]) for r in rows
                  if r["series"] == "trials" and r["contender"] == contender]
        left.plot(*zip(*points), marker="o", label=label)
    left.set(xlabel="trials in the search", ylabel="seconds per trial",
             title="as the search grows", xticks=sorted({r["trials"] for r in rows}))
    workers_rows = [r for r in rows if r["series"] == "workers"]
    right.plot([r["workers"] for r in workers_rows], [r["per_trial_s"] for r in workers_rows],
               marker="o", label="lightning_tune DDP")
    base = next(r for r in rows if r["contender"] == "plain_tune"
                and r["trials"] == workers_rows[0]["trials"])
    right.axhline(base["per_trial_s"], color="grey", linestyle="--", label="plain Ray Tune")
    right.set(xlabel="DDP workers per trial", ylabel="seconds per trial",
              title=f"as trials get more workers ({base['trials']} trials)",
              xticks=[r["workers"] for r in workers_rows])
    for axis in (left, right):
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def counts(text: str) -> List[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=counts, default=[16, 64],
                        help="trial counts of the trials series (the smallest: workers series)")
    parser.add_argument("--workers", type=counts, default=[1, 2, 4],
                        help="DDP workers per trial of the workers series")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: --trials 4 --workers 1,2")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    trial_counts, worker_counts = ([4], [1, 2]) if args.quick else (args.trials, args.workers)
    if not trial_counts or not worker_counts or min(trial_counts + worker_counts) < 1:
        parser.error("--trials and --workers need positive integers")
    workers_trials = trial_counts[0]
    plan = [(n, None) for n in trial_counts] + [(n, TRIALS_SERIES_WORKERS) for n in trial_counts]
    plan += [(workers_trials, w) for w in worker_counts if (workers_trials, w) not in plan]
    quiet()

    gcs_counts.enable()
    started = time.perf_counter()
    start_local_ray(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - started
    root = tempfile.mkdtemp(prefix="lightning_tune_scaling_")
    searches = []
    try:
        for trials, workers in plan:
            contender = "plain_tune" if workers is None else "toolkit"
            searches.append(measure(contender, trials, workers, root))
            print(f"{contender:10s} trials={trials:3d} workers={workers or '-'}: "
                  f"{searches[-1]['wall_s']:.1f} s", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    rows = table_rows(searches, trial_counts, worker_counts, workers_trials)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "settings": {"workload": "digits-mlp", "epochs": EPOCHS, "lr_range": list(LR_RANGE),
                     "lr_spacing": "geometric grid", "scheduler": "fifo", "search_alg": "grid",
                     "concurrent_trials": CONCURRENT, "cpus_per_worker": CPUS_PER_WORKER,
                     "trials_series_workers": TRIALS_SERIES_WORKERS, "trials": trial_counts,
                     "workers": worker_counts, "workers_series_trials": workers_trials,
                     "ray_cpus": RAY_CPUS, "reuse_workers": True,
                     "plain_tune": "function trainable, 1 CPU, reuse_actors, Ray's "
                                   "TuneReportCheckpointCallback", "quick": args.quick},
        "ray_init_s": ray_init_s,
        "searches": searches,
        "table": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    png = os.path.splitext(args.output)[0] + ".png"
    plot(rows, png)
    print_table(rows, ray_init_s)
    print_counts(searches)
    print(f"written to {args.output} and {png}")
    return report


if __name__ == "__main__":
    main()
