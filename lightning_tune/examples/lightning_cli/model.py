"""A digits classifier whose encoder is chosen by class path, as LightningCLI projects do.

The model takes any ``nn.Module`` as ``encoder`` (``model.init_args.encoder.class_path`` in the
config); the optimizer and learning-rate scheduler come from LightningCLI's own ``optimizer:``
and ``lr_scheduler:`` sections, so the model defines no ``configure_optimizers``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F

PIXELS = 64  # an 8x8 digit, flattened
CLASSES = 10


class MLPEncoder(nn.Module):
    """``depth`` hidden layers of ``width`` units on the 64 pixels."""

    def __init__(self, depth: int = 1, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        layers, inputs = [], PIXELS
        for _ in range(depth):
            layers += [nn.Linear(inputs, width), nn.ReLU(), nn.Dropout(dropout)]
            inputs = width
        self.layers = nn.Sequential(*layers)
        self.out_features = inputs

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


class ConvEncoder(nn.Module):
    """One convolution over the 8x8 image, then pooling."""

    def __init__(self, channels: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, channels, kernel_size, padding=kernel_size // 2), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten())
        self.out_features = channels * 16

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


class DigitsModel(pl.LightningModule):
    """An encoder and a linear head; logs ``val_loss`` and ``val_acc`` every validation."""

    def __init__(self, encoder: nn.Module, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_features, CLASSES)
        self.label_smoothing = label_smoothing

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(pixels))

    def _loss_and_accuracy(self, batch):
        pixels, labels = batch
        logits = self(pixels)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return loss, (logits.argmax(dim=1) == labels).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss_and_accuracy(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, accuracy = self._loss_and_accuracy(batch)
        self.log_dict({"val_loss": loss, "val_acc": accuracy}, sync_dist=True)
