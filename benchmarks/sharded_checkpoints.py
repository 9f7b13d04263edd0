"""What reporting a large model's checkpoint costs: full vs sharded, against a local torch.save.

Workload: an MLP on the digits data (64 -> 4096 -> 4096 -> 4096 -> 10, 33.8 M parameters)
trained with Adam, so parameters plus optimizer state are ~405 MB, by a 2-worker FSDP trial
on a local Ray. Each epoch (2 training batches, 1 validation batch) reports a checkpoint.
Timed on rank 0, by callbacks around the report callback (Lightning runs callbacks in list
order):

    report_s   from the start of rank 0's save_checkpoint call to its report returning,
               which is when the trial process's tune.report has returned (plus one RPC);
               split into
    gather_s   until the state dicts are made (Lightning's on_save_checkpoint hook),
    write_s    until the strategy has written them (every rank its part, for sharded),
    deliver_s  until Tune has the checkpoint in its storage (the bridge, tune.report's copy)

and against it, in this process: ``local_save_s``, torch.save of the same state (model and
Adam state, whole) to a file on the same disk, and ``local_copy_s``, copying that file once
(what Tune's storage copy costs at least). Medians over the reports after the first.
Writes ``benchmarks/results/sharded_checkpoints.json`` and prints a table.

    .venv/bin/python -m benchmarks.sharded_checkpoints [--epochs 4]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from typing import Dict, List

import lightning.pytorch as pl
import ray
import torch
from torch import nn

from lightning_tune import TuneReportCheckpointCallback, tune_lightning
from lightning_tune.cluster import start_local_ray
from lightning_tune.examples import DigitsDataModule

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "sharded_checkpoints.json")
WIDTH = 4096
TARGET = 1.5  # sharded report / local save


class WideMLP(pl.LightningModule):
    """Big enough that the checkpoint, not the training, is what a report costs."""

    def __init__(self, lr: float = 1e-4, clock_dir: str = "") -> None:
        super().__init__()
        self.lr, self.clock_dir = lr, clock_dir
        self.net = nn.Sequential(nn.Linear(64, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH),
                                 nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
                                 nn.Linear(WIDTH, 10))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def training_step(self, batch, batch_idx):
        features, targets = batch
        return nn.functional.cross_entropy(self(features), targets)

    def validation_step(self, batch, batch_idx):
        features, targets = batch
        self.log("val_loss", nn.functional.cross_entropy(self(features), targets),
                 sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def on_save_checkpoint(self, checkpoint) -> None:
        _stamp(self.trainer, self.clock_dir, "gathered")

    def setup(self, stage: str) -> None:
        """Note when the strategy has written the checkpoint (every rank's part on disk)."""
        strategy = self.trainer.strategy
        save = strategy.save_checkpoint

        def timed_save(*args, **kwargs):
            save(*args, **kwargs)
            _stamp(self.trainer, self.clock_dir, "written")

        strategy.save_checkpoint = timed_save


class ReportClock(pl.Callback):
    """Notes, on rank 0, when validation ended at its place in the callback list."""

    def __init__(self, clock_dir: str, label: str) -> None:
        self.clock_dir, self.label = clock_dir, label

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            _stamp(trainer, self.clock_dir, self.label)


def _stamp(trainer, clock_dir: str, label: str) -> None:
    if trainer.global_rank == 0 and clock_dir and not trainer.sanity_checking:
        with open(os.path.join(clock_dir, f"{label}_{trainer.current_epoch}.json"), "w") as handle:
            json.dump({"t": time.time()}, handle)


def report_costs(clock_dir: str) -> List[Dict[str, float]]:
    def read(label: str, epoch: int) -> float:
        with open(os.path.join(clock_dir, f"{label}_{epoch}.json")) as handle:
            return json.load(handle)["t"]

    epochs = sorted(int(path.rsplit("_", 1)[1].split(".")[0])
                    for path in glob.glob(os.path.join(clock_dir, "start_*.json")))
    return [{"epoch": epoch, "report_s": read("end", epoch) - read("start", epoch),
             "gather_s": read("gathered", epoch) - read("start", epoch),
             "write_s": read("written", epoch) - read("gathered", epoch),
             "deliver_s": read("end", epoch) - read("written", epoch)} for epoch in epochs]


def local_save(directory: str, repeats: int = 3) -> Dict[str, float]:
    """torch.save of the whole state (model + Adam after a step), and one copy of the file."""
    model = WideMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.randn(8, 64)).sum().backward()  # Adam's state exists after a step
    optimizer.step()
    state = {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()]}
    path = os.path.join(directory, "local.ckpt")
    saves, copies = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.save(state, path)
        saves.append(time.perf_counter() - started)
        started = time.perf_counter()
        shutil.copyfile(path, path + ".copy")
        copies.append(time.perf_counter() - started)
        os.remove(path + ".copy")
    size = os.path.getsize(path)
    os.remove(path)
    return {"state_mb": size / 1e6, "local_save_s": statistics.median(saves),
            "local_copy_s": statistics.median(copies)}


def measure(state_dict_type: str, epochs: int, root: str) -> Dict[str, object]:
    clock_dir = tempfile.mkdtemp(prefix=f"clock_{state_dict_type}_", dir=root)
    started = time.perf_counter()
    result = tune_lightning(
        WideMLP, {"lr": 1e-4, "clock_dir": clock_dir}, datamodule=DigitsDataModule,
        num_samples=1, max_epochs=epochs, strategy="fsdp", num_workers=2, scheduler="fifo",
        strategy_kwargs={"state_dict_type": state_dict_type},
        trainer_kwargs={"limit_train_batches": 2, "limit_val_batches": 1,
                        "num_sanity_val_steps": 0},
        callbacks=[ReportClock(clock_dir, "start"), TuneReportCheckpointCallback(),
                   ReportClock(clock_dir, "end")],
        storage_path=os.path.join(root, "storage"), name=f"ckpt_{state_dict_type}", verbose=0)
    wall_s = time.perf_counter() - started
    with result.best_checkpoint.as_directory() as directory:
        stored = sum(os.path.getsize(path) for path in glob.glob(
            os.path.join(directory, "**"), recursive=True) if os.path.isfile(path))
    costs = report_costs(clock_dir)
    later = costs[1:] or costs
    return {"state_dict_type": state_dict_type, "checkpoint_mb": stored / 1e6,
            "report_s": statistics.median(c["report_s"] for c in later),
            "gather_s": statistics.median(c["gather_s"] for c in later),
            "write_s": statistics.median(c["write_s"] for c in later),
            "deliver_s": statistics.median(c["deliver_s"] for c in later),
            "search_wall_s": wall_s, "reports": costs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="lightning_tune_ckpt_bench_")
    try:
        start_local_ray(num_cpus=2, log_to_driver=False)
        runs = [measure(kind, args.epochs, root) for kind in ("full", "sharded")]
        ray.shutdown()
        reference = local_save(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for run in runs:
        run["ratio"] = run["report_s"] / reference["local_save_s"]
    figures = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "torch": torch.__version__, "ray": ray.__version__},
               "reference": reference, "runs": runs, "target_sharded_ratio": TARGET,
               "command": "python -m benchmarks.sharded_checkpoints "
                          f"--epochs {args.epochs}"}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump(figures, handle, indent=2)
    print(f"state {reference['state_mb']:.0f} MB: local torch.save "
          f"{reference['local_save_s']:.2f} s, one copy of it {reference['local_copy_s']:.2f} s")
    print(f"{'format':<8} {'stored MB':>9} {'report s':>9} {'gather s':>9} {'write s':>8} "
          f"{'deliver s':>9} {'x local save':>13}")
    for run in runs:
        print(f"{run['state_dict_type']:<8} {run['checkpoint_mb']:>9.0f} {run['report_s']:>9.2f} "
              f"{run['gather_s']:>9.2f} {run['write_s']:>8.2f} {run['deliver_s']:>9.2f} "
              f"{run['ratio']:>13.2f}")
    sharded = next(run for run in runs if run["state_dict_type"] == "sharded")
    print(f"target: sharded <= {TARGET} x local save: "
          f"{'met' if sharded['ratio'] <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
