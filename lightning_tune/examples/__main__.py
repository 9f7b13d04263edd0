"""``python -m lightning_tune.examples``: a real search on digits, every trial on 2 DDP workers.

The search prints its summary (best trial, config, folder); then this prints the best
model's accuracy on the held-out test split.
"""

from __future__ import annotations

import argparse
import tempfile

from lightning_tune import tune_lightning
from lightning_tune.examples.digits import (DigitsClassifier, DigitsDataModule, digits_space,
                                            held_out_accuracy)


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--num-workers", type=int, default=2, help="DDP workers per trial")
    parser.add_argument("--storage-path", default=None,
                        help="where Tune writes the experiment (default: a temporary folder)")
    args = parser.parse_args(argv)
    storage = args.storage_path or tempfile.mkdtemp(prefix="lightning_tune_digits_")
    result = tune_lightning(
        DigitsClassifier, digits_space(), datamodule=DigitsDataModule, metric="val_loss",
        mode="min", num_samples=args.num_samples, max_epochs=args.max_epochs, strategy="ddp",
        num_workers=args.num_workers, scheduler="asha", storage_path=storage, seed=0, verbose=1)
    accuracy = held_out_accuracy(result.load_best_model(),
                                 DigitsDataModule(batch_size=result.best_config["batch_size"]))
    # the search's own summary above names the best trial, its config and the folder
    print(f"held-out test accuracy of the best model: {accuracy:.3f} (chance: 0.100)")
    return accuracy


if __name__ == "__main__":
    main()
