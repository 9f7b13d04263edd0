"""Searcher comparison on digits: best held-out accuracy for random, Optuna and HyperOpt.

16 trials x 5 epochs each, ASHA, one space for all three (Adam lr, MLP width and depth,
dropout, weight decay, batch size), 3 seeds per searcher, single-process trials on a local
Ray. Writes ``benchmarks/results/searchers.json`` and prints a table.

    .venv/bin/python -m benchmarks.searchers [--trials 16] [--epochs 5] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import ray

import search_spaces
from lightning_tune import tune_lightning
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.examples.digits import held_out_accuracy

SEARCHERS = ("random", "optuna", "hyperopt")
SPACE = ("adam", "mlp_classifier", "regularisation", "batch_size")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "searchers.json")


def run_one(searcher: str, seed: int, trials: int, epochs: int, storage: str) -> dict:
    started = time.perf_counter()
    result = tune_lightning(DigitsClassifier, search_spaces.load(*SPACE),
                            datamodule=DigitsDataModule, metric="val_loss", mode="min",
                            num_samples=trials, max_epochs=epochs, search_alg=searcher,
                            scheduler="asha", seed=seed, storage_path=storage,
                            name=f"{searcher}_{seed}", verbose=0)
    config = result.best_config
    accuracy = held_out_accuracy(result.load_best_model(),
                                 DigitsDataModule(batch_size=config["batch_size"]))
    return {"searcher": searcher, "seed": seed, "held_out_accuracy": accuracy,
            "best_val_loss": result.best_metrics["val_loss"],
            "epochs_trained": int(result.dataframe["training_iteration"].sum()),
            "wall_s": time.perf_counter() - started, "best_config": config}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    ray.init(include_dashboard=False, log_to_driver=False)
    runs = []
    with tempfile.TemporaryDirectory(prefix="lightning_tune_bench_") as storage:
        for seed in args.seeds:  # interleaved: searchers share the machine's drift
            for searcher in SEARCHERS:
                runs.append(run_one(searcher, seed, args.trials, args.epochs, storage))
                print(f"{searcher:9s} seed {seed}: held-out accuracy "
                      f"{runs[-1]['held_out_accuracy']:.3f} ({runs[-1]['wall_s']:.0f} s)", flush=True)
    ray.shutdown()
    summary = {}
    for searcher in SEARCHERS:
        accuracies = [run["held_out_accuracy"] for run in runs if run["searcher"] == searcher]
        summary[searcher] = {"mean": statistics.mean(accuracies), "min": min(accuracies),
                             "max": max(accuracies), "per_seed": accuracies}
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} CPUs", "trials": args.trials, "epochs": args.epochs,
              "scheduler": "asha", "space": list(SPACE), "seeds": args.seeds,
              "summary": summary, "runs": runs}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\n{'searcher':10s} {'mean':>7s} {'min':>7s} {'max':>7s}   held-out accuracy, "
          f"{args.trials} trials x {args.epochs} epochs, seeds {args.seeds}")
    for searcher, row in summary.items():
        print(f"{searcher:10s} {row['mean']:7.3f} {row['min']:7.3f} {row['max']:7.3f}")
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
