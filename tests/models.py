"""Test models: the digits example with one behaviour added each (importable by Ray workers),
and a project's own LightningCLI subclass."""

from __future__ import annotations

import json
import os
import threading
from typing import Optional

import ray
import torch
from lightning.pytorch.cli import LightningCLI

from lightning_tune.examples.digits import DigitsClassifier, DigitsDataModule

def write_record(path: str, record: dict) -> None:
    """Write ``record`` as JSON at ``path`` at once: a test polling the folder never reads
    half a file (written beside it, then renamed into place)."""
    with open(path + ".partial", "w") as handle:
        json.dump(record, handle)
    os.replace(path + ".partial", path)


__all__ = ["DigitsDataModule", "FailingOnRank", "RecordingClassifier", "UnpicklableClassifier",
           "FailOnceClassifier", "WrongMetricClassifier", "EpochLoggingClassifier"]


class FailingOnRank(DigitsClassifier):
    """Raises in training_step on one rank only."""

    def __init__(self, fail_rank: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.fail_rank = fail_rank

    def training_step(self, batch, batch_idx):
        if self.global_rank == self.fail_rank and batch_idx == 2:
            raise ValueError(f"deliberate failure on rank {self.global_rank}")
        return super().training_step(batch, batch_idx)


class RecordingClassifier(DigitsClassifier):
    """Writes where each rank ran (placement group, ranks, backend) into ``record_dir``."""

    def __init__(self, record_dir: str, trial_tag: int = 0, lr: float = 1e-2, **kwargs):
        super().__init__(lr=lr, **kwargs)
        self.record_dir, self.trial_tag = record_dir, trial_tag

    def on_fit_start(self):
        import torch.distributed as dist

        record = {
            "trial_tag": self.trial_tag, "pid": os.getpid(),
            "placement_group": ray.get_runtime_context().get_placement_group_id(),
            "global_rank": self.global_rank, "local_rank": self.trainer.local_rank,
            "node_rank": self.trainer.node_rank, "world_size": self.trainer.world_size,
            "backend": dist.get_backend() if dist.is_initialized() else None,
            "env_rank": os.environ.get("RANK"), "node_id": ray.get_runtime_context().get_node_id(),
            "num_nodes": self.trainer.num_nodes, "device": str(self.device),
        }
        self._write("fit", record)

    def on_train_end(self):
        # DDP keeps every rank's weights equal; a sum that differs means gradients were not shared
        total = float(sum(parameter.detach().double().sum() for parameter in self.parameters()))
        self._write("end", {"trial_tag": self.trial_tag, "global_rank": self.global_rank,
                            "param_sum": total})

    def _write(self, kind, record):
        path = os.path.join(self.record_dir,
                            f"{kind}_{self.trial_tag}_{self.global_rank}_{os.getpid()}.json")
        write_record(path, record)


class UnpicklableClassifier(DigitsClassifier):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metrics_lock = threading.Lock()


class EpochLoggingClassifier(DigitsClassifier):
    """Logs the epoch, and the first epoch this process trained (>0 after a resume)."""

    def on_train_epoch_start(self):
        if not hasattr(self, "_first_epoch_here"):
            self._first_epoch_here = self.current_epoch

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log("epoch_seen", float(self.current_epoch))
        self.log("first_epoch_here", float(getattr(self, "_first_epoch_here", self.current_epoch)))


class FailOnceClassifier(EpochLoggingClassifier):
    """Fails at the start of ``fail_at_epoch`` the first time only (a marker file remembers)."""

    def __init__(self, marker_path: str, fail_at_epoch: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.marker_path, self.fail_at_epoch = marker_path, fail_at_epoch

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        if self.current_epoch == self.fail_at_epoch and not os.path.exists(self.marker_path):
            open(self.marker_path, "w").close()
            raise RuntimeError("deliberate one-time failure")


class PausingClassifier(EpochLoggingClassifier):
    """Holds the trial whose lr is ``pause_lr`` after ``pause_after_epochs`` reported epochs,
    the first time only: it creates ``pause_marker`` and sleeps, so a test can act on a
    search at a known point instead of racing its epochs."""

    def __init__(self, pause_marker: str = "", pause_lr: float = -1.0,
                 pause_after_epochs: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pause_marker, self.pause_lr = pause_marker, pause_lr
        self.pause_after_epochs = pause_after_epochs

    def on_train_epoch_end(self):
        import time

        if (self.hparams.lr == self.pause_lr and self.pause_marker
                and self.current_epoch + 1 == self.pause_after_epochs
                and not os.path.exists(self.pause_marker)):
            open(self.pause_marker, "w").close()
            time.sleep(3600)


class WrongMetricClassifier(DigitsClassifier):
    """Logs ``valid_loss`` where the search expects ``val_loss``."""

    def validation_step(self, batch, batch_idx):
        loss, accuracy = self._loss_and_accuracy(batch)
        self.log_dict({"valid_loss": loss, "valid_acc": accuracy})


class TwoOptimizerClassifier(DigitsClassifier):
    """Manual optimization with one optimizer per layer (Lightning 2.x's way to use several)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        first, second = self.optimizers()
        loss, _ = self._loss_and_accuracy(batch)
        first.zero_grad()
        second.zero_grad()
        self.manual_backward(loss)
        first.step()
        second.step()
        self.log("train_loss", loss, on_epoch=True, on_step=False, sync_dist=True)

    def configure_optimizers(self):
        import torch

        return (torch.optim.Adam(self.net[0].parameters(), lr=self.hparams.lr),
                torch.optim.SGD(self.net[3].parameters(), lr=self.hparams.lr * 10))


class SlowEpochClassifier(EpochLoggingClassifier):
    """Sleeps after each training epoch, so a test can interrupt a search part-way."""

    def __init__(self, epoch_sleep: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.epoch_sleep = epoch_sleep

    def on_train_epoch_end(self):
        import time

        time.sleep(self.epoch_sleep)


class NodeRecordingClassifier(EpochLoggingClassifier):
    """Every rank notes, each epoch, which Ray node it trains on (``record_dir``, one file each),
    and the node of its trial process. On ``hold_on_node`` every rank holds after its second
    reported epoch (it notes that too) until the test takes that node away."""

    def __init__(self, record_dir: str, trial_tag: int = 0, hold_on_node: str = "", **kwargs):
        super().__init__(**kwargs)
        self.record_dir, self.trial_tag, self.hold_on_node = record_dir, trial_tag, hold_on_node

    def _note(self, kind: str) -> str:
        channel = getattr(self.trainer.strategy, "report_channel", None)
        node_id = ray.get_runtime_context().get_node_id()
        record = {"trial_tag": self.trial_tag, "epoch": self.current_epoch, "kind": kind,
                  "global_rank": self.global_rank, "pid": os.getpid(), "node_id": node_id,
                  "trial_node_id": channel.trial_node_id if channel else None}
        name = f"{kind}_{self.trial_tag}_{self.current_epoch}_{self.global_rank}_{os.getpid()}.json"
        write_record(os.path.join(self.record_dir, name), record)
        return node_id

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._note("epoch")

    def on_train_epoch_end(self):
        import time

        if self.current_epoch == 1 and self.hold_on_node == ray.get_runtime_context().get_node_id():
            self._note("held")
            time.sleep(3600)


class LaggingClassifier(EpochLoggingClassifier):
    """Reports a scripted ``val_loss``: ``1 / epoch`` plus ``lag``. Trials with a lag are
    made bad on purpose; trials without one report the very same values (ties)."""

    def __init__(self, lag: float = 0.0, trial: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.lag, self.trial = lag, trial

    def validation_step(self, batch, batch_idx):
        self._loss_and_accuracy(batch)
        self.log("val_loss", 1.0 / (self.current_epoch + 1) + self.lag)
        self.log("epoch_seen", float(self.current_epoch))


class ListenerProbeClassifier(DigitsClassifier):
    """Every rank, in the middle of training, says where it runs (``ready_<rank>``) and holds
    until the test has listed the listening sockets (``checked``) or two minutes pass."""

    def __init__(self, handshake_dir: str, **kwargs):
        super().__init__(**kwargs)
        self.handshake_dir = handshake_dir

    def on_train_epoch_end(self):
        import time

        if self.current_epoch != 0:
            return
        ready = os.path.join(self.handshake_dir, f"ready_{self.global_rank}")
        with open(ready + ".partial", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(ready + ".partial", ready)  # the test never reads a half-written file
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(self.handshake_dir, "checked")):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never listed the listening sockets")
            time.sleep(0.1)


class StallingClassifier(DigitsClassifier):
    """One rank says it stalls, then sleeps inside training_step; the others wait in a
    collective."""

    def __init__(self, stall_rank: int = 1, stall_s: float = 600.0, **kwargs):
        super().__init__(**kwargs)
        self.stall_rank, self.stall_s = stall_rank, stall_s

    def training_step(self, batch, batch_idx):
        import time

        if self.global_rank == self.stall_rank and batch_idx == 3:
            print(f"stalling on rank {self.global_rank}", flush=True)
            time.sleep(self.stall_s)
        return super().training_step(batch, batch_idx)


class LeakyClassifier(DigitsClassifier):
    """Records, on each rank, what a trial finds in its worker process; can leave state behind.

    ``leave``: at the end of training, set an environment variable, seed every generator
    with Lightning (``PL_GLOBAL_SEED``) and create a process subgroup, as careless user code
    might. ``fail``: raise in training after recording.
    """

    def __init__(self, record_dir: str, trial_tag: int = 0, leave: bool = False,
                 fail: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.record_dir, self.trial_tag, self.leave, self.fail = record_dir, trial_tag, leave, fail
        self.trial_pid = os.getpid()  # built in the trial process
        self.built_sum = self._parameter_sum()

    def _parameter_sum(self) -> float:
        return float(sum(parameter.detach().double().sum() for parameter in self.parameters()))

    def on_train_start(self):
        import torch
        import torch.distributed as dist

        record = {
            "trial_tag": self.trial_tag, "global_rank": self.global_rank, "pid": os.getpid(),
            "trial_pid": self.trial_pid, "initial_seed": torch.initial_seed(),
            "leaked_variable": os.environ.get("LIGHTNING_TUNE_TEST_LEFT"),
            "pl_global_seed": os.environ.get("PL_GLOBAL_SEED"),
            "process_groups": len(dist.distributed_c10d._world.pg_map),
            "optimizer_state": len(self.trainer.optimizers[0].state),
            "parameter_sum": self._parameter_sum(), "built_sum": self.built_sum,
            "cuda_allocated": torch.cuda.memory_allocated() if torch.cuda.is_available() else None,
        }
        write_record(os.path.join(self.record_dir, f"{self.trial_tag}_{self.global_rank}.json"),
                     record)

    def training_step(self, batch, batch_idx):
        if self.fail and batch_idx == 1:
            raise RuntimeError("deliberate failure after recording")
        return super().training_step(batch, batch_idx)

    def on_train_end(self):
        if not self.leave:
            return
        import lightning.pytorch as pl
        import torch.distributed as dist

        os.environ["LIGHTNING_TUNE_TEST_LEFT"] = str(self.trial_tag)
        pl.seed_everything(1234 + self.trial_tag)
        dist.new_group([0, 1])


class ShardRecordingClassifier(FailOnceClassifier):
    """Notes, per rank at the end of training, how many parameter elements the rank holds
    (its FSDP shards); fails once like FailOnceClassifier
    (``marker_path`` empty: never)."""

    def __init__(self, record_dir: str, marker_path: str = "", fail_at_epoch: int = 1, **kwargs):
        super().__init__(marker_path=marker_path or os.path.join(record_dir, "never"),
                         fail_at_epoch=fail_at_epoch if marker_path else -1, **kwargs)
        self.record_dir = record_dir

    def on_train_end(self):
        strategy = self.trainer.strategy
        record = {"global_rank": self.global_rank, "world_size": self.trainer.world_size,
                  "local_parameters": strategy.local_parameter_count()}
        write_record(os.path.join(self.record_dir, f"shards_{self.global_rank}_{os.getpid()}.json"),
                     record)


class TaggedCLI(LightningCLI):
    """A project's own LightningCLI: a ``run_tag`` section, a ``smoothing`` setting linked into
    the model, and its own optimizer step."""

    def add_arguments_to_parser(self, parser):
        parser.add_argument("--run_tag", type=str, default="untagged")
        parser.add_argument("--smoothing", type=float, default=0.0)
        parser.link_arguments("smoothing", "model.init_args.label_smoothing")

    @staticmethod
    def configure_optimizers(lightning_module, optimizer, lr_scheduler=None):
        optimizer.param_groups[0]["tagged_by"] = "TaggedCLI"
        return optimizer


class GreetingClassifier(DigitsClassifier):
    """Prints a line from each rank as fit starts; ``fail_rank`` fails there after saying so."""

    def __init__(self, fail_rank: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.fail_rank = fail_rank

    def on_fit_start(self):
        print(f"hello from rank {self.global_rank}", flush=True)

    def training_step(self, batch, batch_idx):
        if self.global_rank == self.fail_rank and batch_idx == 2:
            print(f"about to fail on rank {self.global_rank}", flush=True)
            raise ValueError(f"deliberate failure on rank {self.global_rank}")
        return super().training_step(batch, batch_idx)


class SizedClassifier(DigitsClassifier):
    """Logs its size (thousands of parameters) beside its loss: a trade-off to search."""

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log("kparams", sum(p.numel() for p in self.parameters()) / 1000.0)


class BallastDataModule(DigitsDataModule):
    """The digits, and ``megabytes`` of tensors beside them: a datamodule too big to copy."""

    def __init__(self, megabytes: int = 300, **kwargs):
        super().__init__(**kwargs)
        self.ballast = torch.ones(megabytes * 2 ** 20 // 4)  # float32


class TableDataModule(DigitsDataModule):
    """The digits, with a large tensor the search gives as a constant of its space beside them
    (as the ballast, which :class:`BallastClassifier` measures)."""

    def __init__(self, table: Optional[torch.Tensor] = None, batch_size: int = 64):
        super().__init__(batch_size=batch_size)
        self.ballast = table


class BallastClassifier(DigitsClassifier):
    """Logs how many megabytes of ballast its trainer's datamodule holds, where it trains."""

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        ballast = self.trainer.datamodule.ballast
        self.log("ballast_mb", ballast.sum().item() * 4 / 2 ** 20)


class SlowBallastClassifier(BallastClassifier, SlowEpochClassifier):
    """Measures the ballast, and sleeps after each training epoch (a budget can cut it short)."""

    def __init__(self, epoch_sleep: float = 1.0, lr: float = 1e-3):  # no **kwargs: the
        super().__init__(epoch_sleep=epoch_sleep, lr=lr)  # datamodule's keys stay its own


class PoolProbeClassifier(DigitsClassifier):
    """Records, as the trial process builds it, how many worker actors already wait for it."""

    def __init__(self, record_dir: str, trial_tag: int = 0, **kwargs):
        from lightning_tune.launchers.warm_pool import WARM_POOL

        super().__init__(**kwargs)
        write_record(os.path.join(record_dir, f"built_{trial_tag}.json"),
                     {"waiting_workers": len(WARM_POOL)})
