"""Curated search spaces, loadable by name and composable.

    import search_spaces
    search_spaces.names()                       # ['adam', 'adamw', ...]
    space = search_spaces.load("adam", "mlp_classifier", "batch_size")
    space = search_spaces.load("adam", overrides={"lr": {"distribution": "loguniform",
                                                          "low": 1e-3, "high": 3e-3}})

Each space is a YAML file in this folder; every parameter says in ``why`` why its range is
what it is. Several names merge in order: a later space overrides a parameter of an earlier.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional

import yaml

_HERE = os.path.dirname(os.path.abspath(__file__))


def names() -> List[str]:
    """The names of the curated spaces."""
    return sorted(name[:-5] for name in os.listdir(_HERE) if name.endswith(".yaml"))


def _read(name: str) -> Dict[str, Any]:
    path = os.path.join(_HERE, f"{name}.yaml")
    if not os.path.exists(path):
        raise KeyError(f"No curated search space named {name!r}. Available: {', '.join(names())}.")
    with open(path) as handle:
        return yaml.safe_load(handle)


def describe(name: str) -> str:
    """What a curated space is for, and why each range is what it is."""
    data = _read(name)
    lines = [f"{name}: {data.get('description', '')}"]
    for parameter, spec in data["parameters"].items():
        why = spec.get("why", "") if isinstance(spec, Mapping) else "constant"
        lines.append(f"  {parameter}: {why}")
    return "\n".join(lines)


def load(*space_names: str, overrides: Optional[Mapping[str, Any]] = None):
    """One :class:`lightning_tune.spaces.SearchSpace` from curated spaces, merged in order."""
    from lightning_tune.spaces import SearchSpace

    if not space_names:
        raise ValueError(f"Name at least one search space: {', '.join(names())}.")
    entries: Dict[str, Any] = {}
    for name in space_names:
        entries.update(_read(name)["parameters"])
    entries.update(overrides or {})
    return SearchSpace(entries)
