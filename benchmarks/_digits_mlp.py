"""The "digits-mlp" workload shared by the overhead benchmark's contenders.

Built so that every way of running it does bit-for-bit (up to float rounding) the same
arithmetic: the weights are seeded in the model's constructor, nothing is shuffled, and the
per-process batch is the global batch divided by the world size. With an unshuffled
DistributedSampler rank r of 2 takes rows r, r+2, r+4, ..., so the two ranks'
batch k together are rows 64k..64k+63, exactly one process's batch k; DDP averages the two
equal-size gradients, which is the gradient of the mean over all 64 rows.

``val_loss`` is computed on the whole validation split at the end of each validation epoch,
not through the sampler (which would pad 397 rows to 398 under DDP). Every rank holds the
same weights, so it needs no synchronisation.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Optional, Tuple

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lightning_tune.callbacks import TuneReportCheckpointCallback

TRAIN_ROWS = 1400
GLOBAL_BATCH = 64
LRS = (1e-3, 3e-3, 1e-2, 3e-2)
EPOCHS = 3


@functools.lru_cache(maxsize=1)
def digits_arrays() -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_val, y_val): pixels / 16 as float32, first 1400 rows train."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.long)
    return x[:TRAIN_ROWS], y[:TRAIN_ROWS], x[TRAIN_ROWS:], y[TRAIN_ROWS:]


def build_net() -> nn.Module:
    """Linear(64, 64)-ReLU-Linear(64, 10) with the same initial weights in every process."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def full_val_loss(net: nn.Module) -> torch.Tensor:
    _, _, x_val, y_val = digits_arrays()
    with torch.no_grad():
        return F.cross_entropy(net(x_val), y_val)


def write_event(record_dir: Optional[str], event: str, lr: float, **extra) -> None:
    """Drop a timestamp where the benchmark driver can read it (one small file per event)."""
    if not record_dir:
        return
    import psutil

    record = {"event": event, "time": time.time(), "pid": os.getpid(), "lr": lr,
              "process_created": psutil.Process().create_time(), **extra}
    path = os.path.join(record_dir, f"{event}_{lr!r}_{os.getpid()}_{time.monotonic_ns()}.json")
    with open(path, "w") as handle:
        json.dump(record, handle)


class DigitsMLPData(pl.LightningDataModule):
    """Unshuffled digits; each process's batch is ``64 // world_size`` so global batches match.

    Under DDP the training sampler is an unshuffled DistributedSampler made here: the one
    Lightning would inject always shuffles (with a seed), whatever the DataLoader says.
    """

    def setup(self, stage: Optional[str] = None) -> None:
        x_train, y_train, x_val, y_val = digits_arrays()
        self.train_set = TensorDataset(x_train, y_train)
        self.val_set = TensorDataset(x_val, y_val)

    def train_dataloader(self) -> DataLoader:
        world_size = self.trainer.world_size if self.trainer is not None else 1
        if GLOBAL_BATCH % world_size:
            raise ValueError(f"global batch {GLOBAL_BATCH} does not split over {world_size} ranks")
        sampler = None
        if world_size > 1:
            # Lightning always shuffles the training sampler it injects; one of our own is kept
            sampler = DistributedSampler(self.train_set, num_replicas=world_size,
                                         rank=self.trainer.global_rank, shuffle=False)
        return DataLoader(self.train_set, batch_size=GLOBAL_BATCH // world_size, shuffle=False,
                          sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        # only there so Lightning runs its validation loop (and the report callbacks fire)
        return DataLoader(self.val_set, batch_size=len(self.val_set), shuffle=False)


class DigitsMLP(pl.LightningModule):
    """The benchmark model; the extra arguments serve the benchmark's side measurements.

    ``record_dir``: rank 0 writes the times of the first training batch and of the end of
    training there. ``step_sleep_s``: each training step sleeps that long (a long trial
    without burning CPU). ``ballast_floats``: a float32 buffer of that many elements, in the
    state dict and every checkpoint (a large checkpoint on a tiny model).
    """

    def __init__(self, lr: float = 1e-3, record_dir: Optional[str] = None,
                 step_sleep_s: float = 0.0, ballast_floats: int = 0) -> None:
        super().__init__()
        self.lr, self.record_dir, self.step_sleep_s = lr, record_dir, step_sleep_s
        self.net = build_net()
        if ballast_floats:
            self.register_buffer("ballast", torch.zeros(int(ballast_floats)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        return None

    def on_validation_epoch_end(self) -> None:
        self.log("val_loss", full_val_loss(self.net))

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if batch_idx == 0 and self.current_epoch == 0 and self.global_rank == 0:
            write_event(self.record_dir, "first_batch", self.lr)

    def on_train_end(self) -> None:
        if self.global_rank == 0:
            write_event(self.record_dir, "train_end", self.lr)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def train_bare(lr: float, epochs: int = EPOCHS) -> float:
    """One trial's work as a plain PyTorch loop, the floor; returns the final val_loss."""
    x_train, y_train, _, _ = digits_arrays()
    net = build_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss = None
    for _ in range(epochs):
        for start in range(0, TRAIN_ROWS, GLOBAL_BATCH):
            x, y = x_train[start:start + GLOBAL_BATCH], y_train[start:start + GLOBAL_BATCH]
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
        loss = full_val_loss(net)  # every epoch, as the Lightning contenders validate
    return float(loss)


def trainer_kwargs(**overrides) -> dict:
    """A quiet single-process Trainer for the contenders that build their own."""
    kwargs = dict(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                  enable_progress_bar=False, enable_model_summary=False,
                  enable_checkpointing=False, num_sanity_val_steps=0)
    kwargs.update(overrides)
    return kwargs


class TimedReportCallback(TuneReportCheckpointCallback):
    """lightning_tune's report-with-checkpoint, timed on rank 0, next to a plain local save.

    After each report rank 0 also saves the module's state dict with ``torch.save`` to a
    file in the system temp directory, before and after the report (the page cache then
    favours neither side); the durations go to ``record_dir/checkpoint_*.json``.
    """

    def __init__(self, record_dir: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.record_dir = record_dir

    def _local_save(self, module: nn.Module) -> Tuple[float, int]:
        import tempfile

        handle, path = tempfile.mkstemp(prefix="overhead_local_save_", suffix=".pt")
        os.close(handle)
        try:
            started = time.perf_counter()
            torch.save(module.state_dict(), path)
            return time.perf_counter() - started, os.path.getsize(path)
        finally:
            os.remove(path)

    def _report(self, trainer, metrics) -> None:
        rank_zero = trainer.global_rank == 0
        before = self._local_save(trainer.lightning_module) if rank_zero else None
        started = time.perf_counter()
        super()._report(trainer, metrics)
        bridge_s = time.perf_counter() - started
        if not rank_zero:
            return
        after, size = self._local_save(trainer.lightning_module)
        record = {"bridge_s": bridge_s, "local_save_s": [before[0], after],
                  "state_dict_bytes": size, "epoch": trainer.current_epoch, "pid": os.getpid()}
        path = os.path.join(self.record_dir, f"checkpoint_{trainer.current_epoch}.json")
        with open(path, "w") as handle:
            json.dump(record, handle)
