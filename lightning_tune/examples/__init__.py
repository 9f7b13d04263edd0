"""A real, small example: handwritten digits (scikit-learn's bundled ``load_digits``)."""

from lightning_tune.examples.digits import DigitsClassifier, DigitsDataModule, digits_space

__all__ = ["DigitsClassifier", "DigitsDataModule", "digits_space"]
