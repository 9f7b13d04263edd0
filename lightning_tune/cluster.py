"""Which Ray a search runs on: the one already connected, a cluster, or a loopback-only local one.

A local Ray that the toolkit starts for itself is nobody's cluster, so nothing outside this
machine needs to reach it: it listens on 127.0.0.1 only. A cluster (``RAY_ADDRESS``, or one
started with ``ray start`` on this machine) is joined as it is.
"""

from __future__ import annotations

from typing import Any

import ray

LOOPBACK = "127.0.0.1"


def ensure_ray(**init_kwargs: Any) -> None:
    """Join the running Ray, ``RAY_ADDRESS`` or a ``ray start`` cluster; else start a local one.

    ``init_kwargs`` (``num_cpus``, ``num_gpus``, ...) apply only when a local Ray is started.
    """
    from ray._private import services

    if ray.is_initialized():
        return
    # Ray's own rule for a plain ray.init(): RAY_ADDRESS, else the last `ray start` cluster
    if services.canonicalize_bootstrap_address(None) is not None:
        ray.init()
        return
    start_local_ray(**init_kwargs)


def start_local_ray(**init_kwargs: Any) -> None:
    """Start a Ray of this process's own whose servers all listen on loopback only.

    Ray binds its servers to the node's IP address, and on Linux turns a requested 127.0.0.1
    into the machine's outward address unless clusters are switched off
    (``ray_constants.ENABLE_RAY_CLUSTER``, read when Ray looks up its own address). It is
    switched off only while this node starts, so that 127.0.0.1 stays 127.0.0.1.
    """
    from ray._private import ray_constants

    init_kwargs.setdefault("include_dashboard", False)
    enabled = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", _node_ip_address=LOOPBACK, **init_kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled
