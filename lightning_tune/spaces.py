"""One search space spec for every searcher: parsed, validated, turned into Tune domains.

A space is a mapping of parameter names to one of:

- a constant (number, string, list ...), passed to every trial as is;
- a Tune domain (``tune.loguniform(...)``) or ``tune.grid_search([...])``, passed through;
- a spec dict ``{"distribution": NAME, ...}`` with NAME one of ``uniform`` / ``quniform`` /
  ``loguniform`` / ``qloguniform`` (``low``, ``high``, ``q`` for the quantised ones),
  ``randint`` (``low`` inclusive, ``high`` exclusive), ``choice`` / ``grid`` (``values``);
  optional ``when: {other: value}`` makes it conditional (sampled only when ``other`` has
  that value, else None) and ``why:`` says why its range is what it is.

The same space goes to random, grid, Optuna and HyperOpt search; what a searcher cannot
express is an error before Ray starts, naming the parameter and what would work.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

import yaml
from ray import tune
from ray.tune.search import sample

from lightning_tune.errors import (InvalidArgumentError, InvalidTypeError, NotFoundError,
                                   UnknownNameError)

_RANGES = ("uniform", "quniform", "loguniform", "qloguniform", "randint")
_SETS = ("choice", "grid")
DISTRIBUTIONS = _RANGES + _SETS


@dataclass(frozen=True)
class Parameter:
    """One searched parameter of a spec."""

    name: str
    distribution: str
    low: Optional[float] = None
    high: Optional[float] = None
    q: Optional[float] = None
    values: Optional[List[Any]] = None
    when: Dict[str, Any] = field(default_factory=dict)
    why: str = ""

    def domain(self) -> Any:
        """The Tune domain (or grid) this parameter samples from."""
        if self.distribution == "grid":
            return tune.grid_search(list(self.values))
        if self.distribution == "choice":
            return tune.choice(list(self.values))
        if self.distribution == "randint":
            return tune.randint(int(self.low), int(self.high))
        maker = getattr(tune, self.distribution)
        args = (self.low, self.high, self.q) if self.distribution.startswith("q") else (self.low, self.high)
        return maker(*args)


class SearchSpace:
    """A validated space: constants, passed-through Tune domains and spec parameters."""

    def __init__(self, entries: Mapping[str, Any]) -> None:
        if not isinstance(entries, Mapping):
            raise InvalidTypeError(f"A search space must be a mapping of names to values, got "
                            f"{type(entries).__name__}.")
        self.entries: Dict[str, Any] = {}
        for name, value in entries.items():
            self.entries[str(name)] = _parse_entry(str(name), value)
        for parameter in self.parameters.values():
            for other, wanted in parameter.when.items():
                condition = self.entries.get(other)
                if other not in self.entries:
                    raise InvalidArgumentError(f"Parameter {parameter.name!r} is conditional on {other!r}, "
                                     f"which is not in the space.")
                if isinstance(condition, Parameter) and condition.values is not None \
                        and wanted not in condition.values:
                    raise InvalidArgumentError(f"Parameter {parameter.name!r} is sampled when {other} == "
                                     f"{wanted!r}, but {other!r} only takes {condition.values}.")

    @property
    def parameters(self) -> Dict[str, Parameter]:
        return {name: entry for name, entry in self.entries.items() if isinstance(entry, Parameter)}

    @property
    def conditional(self) -> List[str]:
        return [name for name, parameter in self.parameters.items() if parameter.when]

    def names(self) -> List[str]:
        return list(self.entries)

    def grid_parameters(self) -> List[str]:
        return [name for name, entry in self.entries.items()
                if (isinstance(entry, Parameter) and entry.distribution == "grid") or _is_grid(entry)]

    def sampled_parameters(self) -> List[str]:
        """Names drawn from a distribution (not constants, not grids)."""
        return [name for name, entry in self.entries.items()
                if (isinstance(entry, Parameter) and entry.distribution != "grid")
                or isinstance(entry, sample.Domain)]

    def nested_parameters(self) -> List[str]:
        """Entries that hold parameters inside them (a dict or list of Tune domains)."""
        return [name for name, entry in self.entries.items()
                if not isinstance(entry, (Parameter, sample.Domain)) and not _is_grid(entry)
                and holds_domain(entry)]

    def to_tune(self, seed: Optional[int] = None) -> Dict[str, Any]:
        """Tune's ``param_space``; conditional parameters become ``tune.sample_from``.

        Their draws come from one generator seeded with ``seed``, so a seeded random search
        repeats its configs exactly.
        """
        rng = random.Random(seed)
        space: Dict[str, Any] = {}
        for name, entry in self.entries.items():
            if isinstance(entry, Parameter):
                space[name] = _conditional(entry, rng) if entry.when else entry.domain()
            else:
                space[name] = entry
        return space

    def candidate_values(self) -> Dict[str, List[Any]]:
        """Values each entry can take that a type check should see: every value of a set,
        both ends of a range, the constant itself (a value drawn by a function: none)."""
        return {name: _candidates(entry) for name, entry in self.entries.items()}

    def merged(self, *others: "SearchSpace") -> "SearchSpace":
        """This space with the entries of ``others`` added; a later entry overrides an earlier."""
        entries = dict(self.entries)
        for other in others:
            entries.update(other.entries)
        return SearchSpace(entries)

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(self.entries)})"


def _candidates(entry: Any) -> List[Any]:
    if isinstance(entry, Parameter):
        if entry.values is not None:
            return list(entry.values)
        if entry.distribution == "randint":
            return [int(entry.low), int(entry.high) - 1]
        return [float(entry.low), float(entry.high)]
    if _is_grid(entry):
        return list(entry["grid_search"])
    if isinstance(entry, sample.Categorical):
        return list(entry.categories)
    if isinstance(entry, sample.Integer):
        return [int(entry.lower), int(entry.upper) - 1]
    if isinstance(entry, sample.Float):
        return [float(entry.lower), float(entry.upper)]
    if isinstance(entry, sample.Domain):
        return []
    return [entry]


def _is_grid(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"grid_search"}


def holds_domain(value: Any) -> bool:
    """Whether Tune would draw something in ``value``: a domain or a grid, at any depth."""
    if isinstance(value, sample.Domain) or _is_grid(value):
        return True
    if isinstance(value, Mapping):
        return any(holds_domain(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_domain(item) for item in value)
    return False


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"Parameter {name!r}: {key} must be a number, got {value!r}.")
    return value


def _parse_entry(name: str, value: Any) -> Any:
    if isinstance(value, (sample.Domain, Parameter)) or _is_grid(value):
        return value
    if not (isinstance(value, Mapping) and "distribution" in value):
        return value  # a constant
    spec = dict(value)
    distribution = spec.pop("distribution")
    when, why = spec.pop("when", {}) or {}, spec.pop("why", "")
    if distribution not in DISTRIBUTIONS:
        raise InvalidArgumentError(f"Parameter {name!r}: unknown distribution {distribution!r}; use one of "
                         f"{', '.join(DISTRIBUTIONS)}.")
    if not isinstance(when, Mapping):
        raise InvalidArgumentError(f"Parameter {name!r}: when must map a parameter to a value, got {when!r}.")
    expected = {"values"} if distribution in _SETS else (
        {"low", "high", "q"} if distribution.startswith("q") else {"low", "high"})
    missing, unknown = expected - set(spec), set(spec) - expected
    if missing or unknown:
        raise InvalidArgumentError(f"Parameter {name!r}: a {distribution} takes {sorted(expected)}"
                         + (f"; missing {sorted(missing)}" if missing else "")
                         + (f"; unknown {sorted(unknown)}" if unknown else "") + ".")
    if distribution in _SETS:
        values = spec["values"]
        if not isinstance(values, (list, tuple)) or not values:
            raise InvalidArgumentError(f"Parameter {name!r}: a {distribution} needs a non-empty list of "
                             f"values, got {values!r}.")
        return Parameter(name, distribution, values=list(values), when=dict(when), why=why)
    low, high = _number(name, "low", spec["low"]), _number(name, "high", spec["high"])
    if low >= high:
        raise InvalidArgumentError(f"Parameter {name!r}: low ({low}) must be below high ({high}).")
    if distribution in ("loguniform", "qloguniform") and low <= 0:
        raise InvalidArgumentError(f"Parameter {name!r}: a {distribution} needs low > 0 (got {low}); "
                         "log scale is undefined at and below zero.")
    if distribution == "randint" and not (float(low).is_integer() and float(high).is_integer()):
        raise InvalidArgumentError(f"Parameter {name!r}: randint needs integer bounds, got {low}, {high}.")
    q = None
    if distribution.startswith("q"):
        q = _number(name, "q", spec["q"])
        if q <= 0:
            raise InvalidArgumentError(f"Parameter {name!r}: q must be > 0, got {q}.")
    return Parameter(name, distribution, low=low, high=high, q=q, when=dict(when), why=why)


def _conditional(parameter: Parameter, rng: random.Random) -> Any:
    domain = parameter.domain()

    def draw(spec: Any) -> Any:
        config = spec.config
        if all(config.get(other) == wanted for other, wanted in parameter.when.items()):
            return domain.sample(random_state=rng.randrange(2**31))
        return None

    return tune.sample_from(draw)


def load_space(space: Union[str, os.PathLike, Mapping[str, Any], SearchSpace]) -> SearchSpace:
    """A space from a dict, a YAML file path, or the name of a curated space in search_spaces."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        return SearchSpace(space)
    if isinstance(space, (str, os.PathLike)):
        path = os.fspath(space)
        if path.endswith((".yaml", ".yml")) or os.path.sep in path:
            if not os.path.exists(path):
                raise NotFoundError(f"Search space file {path!r} does not exist.")
            with open(path) as handle:
                try:
                    data = yaml.safe_load(handle)
                except yaml.YAMLError as error:
                    raise InvalidArgumentError(f"Search space file {path!r} is not valid YAML: {error}") from error
            return SearchSpace(data.get("parameters", data) if isinstance(data, Mapping) else data)
        return load_curated(path)
    raise InvalidTypeError(f"space must be a dict, a YAML file path or a search_spaces name, got "
                    f"{type(space).__name__}.")


# --- curated spaces: YAML files in the top-level search_spaces/ folder ---------------------
# Read as data from beside this package (an editable or a regular install alike), so this
# module does not import search_spaces; search_spaces re-exports the functions below.
CURATED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "search_spaces")


def curated_names() -> List[str]:
    """The names of the curated spaces."""
    return sorted(name[:-5] for name in os.listdir(CURATED_DIR) if name.endswith(".yaml"))


def _read_curated(name: str) -> Dict[str, Any]:
    path = os.path.join(CURATED_DIR, f"{name}.yaml")
    if not os.path.exists(path):
        raise UnknownNameError(f"No curated search space named {name!r}. Available: "
                               f"{', '.join(curated_names())}.")
    with open(path) as handle:
        return yaml.safe_load(handle)


def describe_curated(name: str) -> str:
    """What a curated space is for, and why each range is what it is."""
    data = _read_curated(name)
    lines = [f"{name}: {data.get('description', '')}"]
    for parameter, spec in data["parameters"].items():
        why = spec.get("why", "") if isinstance(spec, Mapping) else "constant"
        lines.append(f"  {parameter}: {why}")
    return "\n".join(lines)


def load_curated(*space_names: str, overrides: Optional[Mapping[str, Any]] = None) -> SearchSpace:
    """One space from curated spaces, merged in order (a later one overrides an earlier)."""
    if not space_names:
        raise InvalidArgumentError(
            f"Name at least one search space: {', '.join(curated_names())}.")
    entries: Dict[str, Any] = {}
    for name in space_names:
        entries.update(_read_curated(name)["parameters"])
    entries.update(overrides or {})
    return SearchSpace(entries)
