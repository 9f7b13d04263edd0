"""Curated search spaces, loadable by name and composable.

    import search_spaces
    search_spaces.names()                       # ['adam', 'adamw', ...]
    space = search_spaces.load("adam", "mlp_classifier", "batch_size")
    space = search_spaces.load("adam", overrides={"lr": {"distribution": "loguniform",
                                                          "low": 1e-3, "high": 3e-3}})

Each space is a YAML file in this folder; every parameter says in ``why`` why its range is
what it is. Several names merge in order: a later space overrides a parameter of an earlier.
The loading lives in :mod:`lightning_tune.spaces` (which reads this folder as data); this
package only gives it the short names.
"""

from lightning_tune.spaces import curated_names as names
from lightning_tune.spaces import describe_curated as describe
from lightning_tune.spaces import load_curated as load

__all__ = ["names", "describe", "load"]
