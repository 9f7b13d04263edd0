"""The same digits MLP written against ``pytorch_lightning`` (Lightning's other class tree)."""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from lightning_tune.examples.digits import DigitsDataModule as _LightningDataModule


class PLDigitsDataModule(pl.LightningDataModule):
    def __init__(self, batch_size: int = 64):
        super().__init__()
        self._inner = _LightningDataModule(batch_size=batch_size)

    def setup(self, stage=None):
        self._inner.setup(stage)

    def train_dataloader(self):
        return self._inner.train_dataloader()

    def val_dataloader(self):
        return self._inner.val_dataloader()


class PLDigitsClassifier(pl.LightningModule):
    def __init__(self, lr: float = 1e-2):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)
