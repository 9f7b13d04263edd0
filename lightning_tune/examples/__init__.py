"""A real, small example: handwritten digits (scikit-learn's bundled ``load_digits``)."""

from lightning_tune.examples.digits import DigitsClassifier, DigitsCNN, DigitsDataModule, digits_space

__all__ = ["DigitsClassifier", "DigitsCNN", "DigitsDataModule", "digits_space"]
