"""What one trial reserves from Ray: a head bundle for the trial process, one bundle per worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Mapping, Optional, Tuple

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError, TrialShapeError

if TYPE_CHECKING:  # workers import this module; Tune itself is imported where it is used
    from ray.tune import PlacementGroupFactory

_PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def resolve_worker_shape(cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                         resources_per_worker: Optional[Mapping[str, float]] = None
                         ) -> Tuple[float, float, Dict[str, float]]:
    """(CPUs, GPUs, other resources) of one worker; checked.

    ``resources_per_worker`` may hold "CPU" and "GPU" (Ray Train's convention): they override
    ``cpus_per_worker`` and ``gpus_per_worker``, so ``{"GPU": 0}`` turns GPUs off.
    """
    extra = dict(resources_per_worker or {})
    cpus = extra.pop("CPU", cpus_per_worker)
    gpus = extra.pop("GPU", gpus_per_worker)
    check_worker_shape(1, cpus, gpus, extra)
    return cpus, gpus, extra


def worker_bundle(cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                  resources_per_worker: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """The resources of one worker actor, as a placement-group bundle."""
    cpus, gpus, extra = resolve_worker_shape(cpus_per_worker, gpus_per_worker,
                                             resources_per_worker)
    bundle: Dict[str, float] = {"CPU": cpus}
    if gpus:
        bundle["GPU"] = gpus
    bundle.update(extra)
    return bundle


def check_worker_shape(num_workers: int, cpus_per_worker: float, gpus_per_worker: float = 0,
                       resources_per_worker: Optional[Mapping[str, float]] = None) -> None:
    """Reject worker counts and sizes no trial could use, before Ray is involved."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise InvalidArgumentError(f"num_workers must be an integer >= 1, got {num_workers!r}.")
    if isinstance(cpus_per_worker, bool) or not isinstance(cpus_per_worker, (int, float)) \
            or cpus_per_worker <= 0:
        raise InvalidArgumentError(
            f"cpus_per_worker must be > 0, got {cpus_per_worker!r}: every worker needs some CPU "
            "(use a fraction such as 0.5 to pack several workers on one core).")
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, (int, float)) \
            or gpus_per_worker < 0:
        raise InvalidArgumentError(f"gpus_per_worker must be >= 0, got {gpus_per_worker!r}.")
    for name, amount in (resources_per_worker or {}).items():
        if name in ("CPU", "GPU"):
            continue  # overrides, checked by resolve_worker_shape
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise InvalidArgumentError(
                f"resources_per_worker[{name!r}] must be >= 0, got {amount!r}.")


def check_worker_options(worker_timeout_s: Optional[float], reuse_workers: bool) -> None:
    """The two settings of how workers are watched and kept, checked the same everywhere."""
    if worker_timeout_s is not None and (
            isinstance(worker_timeout_s, bool) or not isinstance(worker_timeout_s, (int, float))
            or not 0 < worker_timeout_s < float("inf")):
        raise InvalidArgumentError(
            f"worker_timeout_s must be a number of seconds > 0 (or None for no limit), got "
            f"{worker_timeout_s!r}.")
    if not isinstance(reuse_workers, bool):
        raise InvalidTypeError(f"reuse_workers must be True or False, got {reuse_workers!r}.")


def get_tune_resources(num_workers: int, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                       resources_per_worker: Optional[Mapping[str, float]] = None,
                       head_cpus: float = 1,
                       placement_strategy: str = "PACK") -> PlacementGroupFactory:
    """The placement group one trial needs: ``[head] + [worker] * num_workers``.

    The trial process runs in the head bundle; its worker actors are placed in the worker
    bundles, so a trial never competes with other trials for its workers' CPUs. A head of
    ``head_cpus=0`` is allowed: Tune then places the trial process in the group with no CPU.
    """
    check_worker_shape(num_workers, cpus_per_worker, gpus_per_worker)
    if not isinstance(head_cpus, (int, float)) or head_cpus < 0:
        raise InvalidArgumentError(f"head_cpus must be >= 0, got {head_cpus!r}.")
    if placement_strategy not in _PLACEMENT_STRATEGIES:
        raise InvalidArgumentError(f"placement_strategy must be one of {_PLACEMENT_STRATEGIES}, "
                         f"got {placement_strategy!r}.")
    from ray.tune import PlacementGroupFactory

    worker = worker_bundle(cpus_per_worker, gpus_per_worker, resources_per_worker)
    head = {"CPU": head_cpus}
    return PlacementGroupFactory([head] + [dict(worker) for _ in range(num_workers)],
                                 strategy=placement_strategy)


def bundle_fits(needed: Mapping[str, float], offered: Mapping[str, float]) -> bool:
    """Whether a bundle (or node) offering ``offered`` can hold ``needed``."""
    return all(offered.get(name, 0) >= amount for name, amount in needed.items() if amount)


def check_cluster_can_hold(bundles: list, placement_strategy: str = "PACK",
                           what: str = "This trial") -> None:
    """Fail at once when the connected Ray cluster can never place ``bundles``.

    Without this a trial or a worker group would wait PENDING forever. Needs ``ray.init``.
    """
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    totals: Dict[str, float] = {}
    for node in nodes:
        for name, amount in node.items():
            totals[name] = totals.get(name, 0) + amount
    needed: Dict[str, float] = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            needed[name] = needed.get(name, 0) + amount
    if needed.get("GPU") and not totals.get("GPU"):
        raise TrialShapeError(
            f"{what} asks for GPUs (use_gpu / gpus_per_worker), but the Ray cluster has none. "
            "Set gpus_per_worker=0 (use_gpu=False), or connect to a cluster with GPUs "
            "(ray.init(address=...) or RAY_ADDRESS).")
    cluster = ", ".join(f"{name}={amount:g}" for name, amount in sorted(totals.items())
                        if name in ("CPU", "GPU") or name in needed)
    for bundle in bundles:
        if not any(bundle_fits(bundle, node) for node in nodes):
            raise TrialShapeError(
                f"{what} needs a bundle of {bundle}, which no node of the Ray cluster can hold "
                f"(cluster: {cluster}). Lower cpus_per_worker / gpus_per_worker, or start Ray "
                "with more resources.")
    if placement_strategy == "STRICT_PACK":
        fits = any(bundle_fits(needed, node) for node in nodes)
    else:
        fits = bundle_fits(needed, totals)
    if not fits:
        wanted = ", ".join(f"{name}={amount:g}" for name, amount in sorted(needed.items()))
        raise TrialShapeError(
            f"{what} needs {wanted} in all ({len(bundles)} bundles), more than the Ray cluster "
            f"can ever hold ({cluster}). Use fewer workers or smaller ones, or start Ray with "
            "more resources, e.g. ray.init(num_cpus=...).")
