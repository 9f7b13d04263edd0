"""An MLP on scikit-learn's 8x8 digits: 1,797 real images shipped with scikit-learn, no download.

Split (fixed seed, stratified): 1,257 train, 270 validation, 270 test. The test split is
held out from the search and only used to score the best model.
"""

from __future__ import annotations

from typing import Dict, Optional

import lightning.pytorch as pl
import torch
from ray import tune
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class DigitsDataModule(pl.LightningDataModule):
    """Digits as float pixels in [0, 1]; ``batch_size`` is searchable."""

    def __init__(self, batch_size: int = 64, split_seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.split_seed = split_seed
        self._splits: Dict[str, TensorDataset] = {}

    def setup(self, stage: Optional[str] = None) -> None:
        if self._splits:
            return
        images, labels = load_digits(return_X_y=True)
        features = torch.tensor(images / 16.0, dtype=torch.float32)
        targets = torch.tensor(labels, dtype=torch.long)
        index = torch.arange(len(targets))
        train_index, rest = train_test_split(index.numpy(), test_size=540, stratify=labels,
                                             random_state=self.split_seed)
        val_index, test_index = train_test_split(rest, test_size=270, stratify=labels[rest],
                                                 random_state=self.split_seed)
        for name, part in (("train", train_index), ("val", val_index), ("test", test_index)):
            self._splits[name] = TensorDataset(features[part], targets[part])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._splits["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._splits["val"], batch_size=256)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._splits["test"], batch_size=256)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class DigitsClassifier(pl.LightningModule):
    """An MLP on the 64 pixels; logs ``val_loss`` and ``val_acc`` each validation epoch.

    Every parameter is searchable, matching the curated spaces in ``search_spaces``:
    ``optimizer`` ("adam", "adamw", "sgd"; ``momentum`` applies to SGD only, None elsewhere),
    ``lr_schedule`` ("constant", "cosine" or "step" over ``max_epochs`` epochs).
    """

    def __init__(self, hidden_size: int = 64, lr: float = 1e-3, dropout: float = 0.0,
                 weight_decay: float = 0.0, num_layers: int = 1, optimizer: str = "adam",
                 momentum: Optional[float] = None, lr_schedule: str = "constant") -> None:
        super().__init__()
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {optimizer!r}.")
        if lr_schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"lr_schedule must be constant, cosine or step, got {lr_schedule!r}.")
        self.save_hyperparameters()
        layers, width = [], 64
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        self.net = nn.Sequential(*layers, nn.Linear(width, 10))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def _loss_and_accuracy(self, batch):
        features, targets = batch
        logits = self(features)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(dim=1) == targets).float().mean()
        return loss, accuracy

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss_and_accuracy(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, accuracy = self._loss_and_accuracy(batch)
        self.log_dict({"val_loss": loss, "val_acc": accuracy}, sync_dist=True)
        if self.trainer.optimizers:  # the lr this epoch trained with, after restores and PBT
            self.log("lr_used", self.trainer.optimizers[0].param_groups[0]["lr"])

    def test_step(self, batch, batch_idx):
        loss, accuracy = self._loss_and_accuracy(batch)
        self.log_dict({"test_loss": loss, "test_acc": accuracy}, sync_dist=True)

    def predict_step(self, batch, batch_idx):
        return self(batch[0]).argmax(dim=1)

    def configure_optimizers(self):
        hparams = self.hparams
        extra = {"momentum": hparams.momentum or 0.0} if hparams.optimizer == "sgd" else {}
        optimizer = _OPTIMIZERS[hparams.optimizer](self.parameters(), lr=hparams.lr,
                                                   weight_decay=hparams.weight_decay, **extra)
        if hparams.lr_schedule == "constant":
            return optimizer
        epochs = max(1, self.trainer.max_epochs or 1)
        if hparams.lr_schedule == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        else:
            schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.3)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def digits_space() -> dict:
    """The search space the example uses: why these ranges is in each comment."""
    return {
        "lr": tune.loguniform(1e-4, 3e-2),     # Adam on a small MLP: useful lr spans two decades
        "hidden_size": tune.choice([32, 64, 128]),  # 64 inputs: a wider layer than 128 overfits
        "batch_size": tune.choice([32, 64]),   # 1,257 rows: small batches give enough steps
    }


def held_out_accuracy(model: pl.LightningModule, datamodule: DigitsDataModule) -> float:
    """Accuracy on the test split, computed in this process (no Trainer needed)."""
    datamodule.setup("test")
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for features, targets in datamodule.test_dataloader():
            correct += (model(features).argmax(dim=1) == targets).sum().item()
            total += len(targets)
    return correct / total


class DigitsCNN(DigitsClassifier):
    """A small convnet on the 8x8 digit images (``channels`` and ``kernel_size`` searchable)."""

    def __init__(self, channels: int = 16, kernel_size: int = 3, lr: float = 1e-3,
                 dropout: float = 0.0, weight_decay: float = 0.0, optimizer: str = "adam",
                 momentum: Optional[float] = None, lr_schedule: str = "constant") -> None:
        super().__init__(lr=lr, dropout=dropout, weight_decay=weight_decay, optimizer=optimizer,
                         momentum=momentum, lr_schedule=lr_schedule)
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, channels, kernel_size, padding=kernel_size // 2), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(dropout), nn.Flatten(),
            nn.Linear(channels * 16, 10))
