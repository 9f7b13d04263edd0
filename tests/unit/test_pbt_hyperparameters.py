"""PBT's exploit: a trial restored from a donor's checkpoint trains with its *new* learning
rate and keeps the donor's optimizer state (Adam's moments), which a plain restore would not
combine (it puts the donor's learning rate back)."""

import lightning.pytorch as pl
import pytest
import torch

from lightning_tune.callbacks import TrialHyperparameters
from lightning_tune.examples import DigitsClassifier, DigitsDataModule


class OptimizerProbe(pl.Callback):
    """What the optimizer holds when training starts (after every restore and callback)."""

    def on_train_start(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]
        self.lr = optimizer.param_groups[0]["lr"]
        self.moments = [optimizer.state[p]["exp_avg"].clone()
                        for group in optimizer.param_groups for p in group["params"]]


def trainer(max_epochs, callbacks):
    return pl.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=False,
                      enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False, limit_train_batches=3, limit_val_batches=1)


@pytest.fixture(scope="module")
def donor_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("donor") / "donor.ckpt")
    first = trainer(1, [TrialHyperparameters({"lr": 1e-2})])
    first.fit(DigitsClassifier(lr=1e-2), datamodule=DigitsDataModule())
    first.save_checkpoint(path)
    return path, torch.load(path, weights_only=True)["optimizer_states"][0]["state"]


def restored(checkpoint, callbacks):
    probe = OptimizerProbe()
    trainer(2, callbacks + [probe]).fit(DigitsClassifier(lr=5e-2), datamodule=DigitsDataModule(),
                                        ckpt_path=checkpoint, weights_only=True)
    return probe


def test_the_new_learning_rate_applies_and_the_optimizer_state_is_kept(donor_checkpoint):
    path, donor_state = donor_checkpoint
    probe = restored(path, [TrialHyperparameters({"lr": 5e-2})])
    assert probe.lr == pytest.approx(5e-2)
    assert len(probe.moments) == len(donor_state)
    for moment, (index, state) in zip(probe.moments, sorted(donor_state.items())):
        assert torch.equal(moment, state["exp_avg"]), f"Adam's moments of parameter {index} were lost"
        assert moment.abs().sum() > 0  # a real state, not a fresh optimizer's zeros


def test_without_it_the_restore_puts_the_donors_learning_rate_back(donor_checkpoint):
    path, _ = donor_checkpoint
    assert restored(path, []).lr == pytest.approx(1e-2)
