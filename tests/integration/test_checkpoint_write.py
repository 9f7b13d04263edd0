"""A reported checkpoint is written once and moved, not copied, into Tune's folder."""

import glob
import json
import os

import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_tune import TuneReportCheckpointCallback, tune_lightning
from lightning_tune.checkpoint_write import direct_save
from lightning_tune.examples import DigitsClassifier, DigitsDataModule
from lightning_tune.examples.digits import held_out_accuracy

pytestmark = pytest.mark.timeout(300)


class _Strategy:
    def __init__(self, checkpoint_io):
        self.checkpoint_io = checkpoint_io


class _Trainer:
    def __init__(self, checkpoint_io):
        self.strategy = _Strategy(checkpoint_io)


class _CountingIO(TorchCheckpointIO):
    """A user's own checkpoint IO: it must keep doing the writing."""

    saved = 0

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        type(self).saved += 1
        super().save_checkpoint(checkpoint, path, storage_options=storage_options)


def test_direct_save_writes_the_same_checkpoint_in_place_of_lightnings_default(tmp_path):
    default = TorchCheckpointIO()
    trainer = _Trainer(default)
    state = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3}
    with direct_save(trainer):
        assert trainer.strategy.checkpoint_io is not default
        trainer.strategy.checkpoint_io.save_checkpoint(state, tmp_path / "sub" / "ckpt")
    assert trainer.strategy.checkpoint_io is default  # put back
    loaded = torch.load(tmp_path / "sub" / "ckpt", weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert os.listdir(tmp_path / "sub") == ["ckpt"]  # no partial file left behind


def test_direct_save_leaves_a_users_own_checkpoint_io_alone(tmp_path):
    own = _CountingIO()
    trainer = _Trainer(own)
    with direct_save(trainer):
        assert trainer.strategy.checkpoint_io is own
        trainer.strategy.checkpoint_io.save_checkpoint({"epoch": 1}, tmp_path / "ckpt")
    assert _CountingIO.saved == 1


class InodeRecordingCallback(TuneReportCheckpointCallback):
    """Rank 0 records the inode of each checkpoint file right after saving it."""

    def __init__(self, record_dir: str) -> None:
        super().__init__(metrics=["val_loss"])
        self.record_dir = record_dir

    def _report(self, trainer, metrics, checkpoint_dir=None):
        save = trainer.save_checkpoint

        def recorded(path, *args, **kwargs):
            save(path, *args, **kwargs)
            if trainer.global_rank == 0:
                with open(os.path.join(self.record_dir, f"{trainer.current_epoch}.json"),
                          "w") as handle:
                    json.dump({"inode": os.stat(path).st_ino, "path": str(path)}, handle)

        trainer.save_checkpoint = recorded
        try:
            super()._report(trainer, metrics)
        finally:
            del trainer.save_checkpoint


@pytest.mark.parametrize("ddp", [True, False], ids=["ddp", "single_process"])
def test_the_file_rank_zero_wrote_is_the_file_tune_keeps(ray_cluster, tmp_path, ddp):
    records = tmp_path / "records"
    records.mkdir()
    workers = {"strategy": "ddp", "num_workers": 2} if ddp else {}
    result = tune_lightning(DigitsClassifier, {"lr": 3e-2}, datamodule=DigitsDataModule,
                            num_samples=1, max_epochs=2, scheduler="fifo",
                            callbacks=[InodeRecordingCallback(str(records))],
                            storage_path=str(tmp_path / "results"), name="moved", verbose=0,
                            **workers)
    written = [json.load(open(path)) for path in sorted(glob.glob(str(records / "*.json")))]
    trial = result.result_grid[0]
    kept = sorted(os.stat(os.path.join(checkpoint.path, "checkpoint")).st_ino
                  for checkpoint, _ in trial.best_checkpoints)
    assert len(written) == 2 and len(kept) == 2
    # the same files: renamed into the checkpoint folders, not copied there by Tune
    assert sorted(record["inode"] for record in written) == kept
    # saved beside the trial's checkpoint folders, and nothing of that left over
    assert all(os.path.dirname(os.path.dirname(record["path"])) == trial.path
               for record in written)
    assert not glob.glob(os.path.join(trial.path, ".lightning_tune_save_*"))
    assert held_out_accuracy(result.load_best_model(), DigitsDataModule()) > 0.5
