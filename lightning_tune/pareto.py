"""Trade-offs between objectives: which results no other beats on every objective.

One result dominates another when it is at least as good on every objective and better on
one. Non-dominated sorting puts results in fronts: front 0 is the Pareto front, front 1 the
front once front 0 is set aside, and so on. Within a front, the crowding distance (NSGA-II's)
prefers results in sparse parts of the front, so a cut keeps the front's spread. Objectives
are given with a mode each ("min" or "max"); a missing (NaN) value counts as worst.
"""

from __future__ import annotations

import math
from typing import List, Sequence

from lightning_tune.errors import InvalidArgumentError

Point = Sequence[float]


def _oriented(points: Sequence[Point], modes: Sequence[str]) -> List[List[float]]:
    """Every objective turned into one to minimise, NaN into +inf."""
    if any(len(point) != len(modes) for point in points):
        raise InvalidArgumentError(f"each point needs one value per objective ({len(modes)}).")
    oriented = []
    for point in points:
        values = []
        for value, mode in zip(point, modes):
            value = float(value)
            values.append(math.inf if math.isnan(value) else value if mode == "min" else -value)
        oriented.append(values)
    return oriented


def dominates(first: Sequence[float], second: Sequence[float]) -> bool:
    """``first`` beats ``second`` (both to minimise): nowhere worse, somewhere better."""
    return all(a <= b for a, b in zip(first, second)) and any(
        a < b for a, b in zip(first, second))


def front_ranks(points: Sequence[Point], modes: Sequence[str]) -> List[int]:
    """Each point's front: 0 for the Pareto front, 1 for the next, ..."""
    oriented = _oriented(points, modes)
    ranks = [-1] * len(oriented)
    remaining = set(range(len(oriented)))
    rank = 0
    while remaining:
        front = {i for i in remaining
                 if not any(dominates(oriented[j], oriented[i]) for j in remaining if j != i)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def crowding_distances(points: Sequence[Point], modes: Sequence[str]) -> List[float]:
    """NSGA-II's crowding distance of each point among ``points`` (one front): per objective,
    the gap between its neighbours over the objective's span; the extremes get infinity."""
    oriented = _oriented(points, modes)
    distances = [0.0] * len(oriented)
    for objective in range(len(modes)):
        order = sorted(range(len(oriented)), key=lambda i: oriented[i][objective])
        low, high = oriented[order[0]][objective], oriented[order[-1]][objective]
        distances[order[0]] = distances[order[-1]] = math.inf
        span = high - low
        if not math.isfinite(span) or span == 0:
            continue
        for before, this, after in zip(order, order[1:], order[2:]):
            distances[this] += (oriented[after][objective] - oriented[before][objective]) / span
    return distances


def best_first(points: Sequence[Point], modes: Sequence[str]) -> List[int]:
    """Indices of ``points``, best first: by front, then by crowding distance within it
    (larger first), then by position (the earlier first)."""
    ranks = front_ranks(points, modes)
    crowding = [0.0] * len(points)
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for i, distance in zip(members, crowding_distances([points[i] for i in members], modes)):
            crowding[i] = distance
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowding[i], i))
