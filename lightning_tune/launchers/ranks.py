"""Where each rank stands: what a worker reports about its host, and ranks assigned from that.

A pure function of the workers' hosts in bundle order, so it is tested without Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple


@dataclass(frozen=True)
class WorkerPlacement:
    """Where one rank stands in the worker group."""

    global_rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    num_nodes: int
    gpu_index: Optional[int] = None  # index into the node's CUDA_VISIBLE_DEVICES
    shares_gpu: bool = False  # another rank trains on the same GPU (fractional GPUs)


class WorkerHost(NamedTuple):
    """What a worker reports about the machine it runs on."""

    node_id: str
    ip: str
    gpu_ids: List[str]
    interface: str  # the network interface that carries ``ip`` (gloo and Horovod use it)


def interface_of(ip: str) -> str:
    """The name of the network interface that holds ``ip`` ("lo" when none does)."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(address.address == ip for address in addresses):
            return name
    return "lo"


def assign_ranks(described: List[WorkerHost]
                 ) -> Tuple[List[WorkerPlacement], List[Dict[str, str]]]:
    """Placements and environment variables for the workers, in bundle order.

    Global rank is the worker's position; nodes are numbered in order of their first rank and
    local ranks count within a node, so uneven or interleaved layouts are ranked correctly.
    A worker sees all of its node's GPUs (NCCL wants its peers visible) and uses its own.
    ``MASTER_ADDR`` names rank 0's node, for code that reads it; no server listens there
    (the ranks meet through :mod:`lightning_tune.rendezvous`).
    """
    node_ids = list(dict.fromkeys(host.node_id for host in described))
    node_gpus: Dict[str, List[str]] = {node_id: [] for node_id in node_ids}
    for host in described:
        node_gpus[host.node_id].extend(gpu for gpu in host.gpu_ids
                                       if gpu not in node_gpus[host.node_id])
    main_address = described[0].ip
    placements, envs = [], []
    for rank, host in enumerate(described):
        node_id, gpus = host.node_id, host.gpu_ids
        on_node = [other_rank for other_rank, other in enumerate(described)
                   if other.node_id == node_id]
        placement = WorkerPlacement(
            global_rank=rank, world_size=len(described), local_rank=on_node.index(rank),
            local_world_size=len(on_node), node_rank=node_ids.index(node_id),
            num_nodes=len(node_ids),
            gpu_index=node_gpus[node_id].index(gpus[0]) if gpus else None,
            shares_gpu=bool(gpus) and sum(1 for other in described if other.node_id == node_id
                                          and other.gpu_ids[:1] == gpus[:1]) > 1)
        env = {
            "MASTER_ADDR": main_address,
            "WORLD_SIZE": str(placement.world_size), "RANK": str(rank),
            "LOCAL_RANK": str(placement.local_rank), "NODE_RANK": str(placement.node_rank),
            "LOCAL_WORLD_SIZE": str(placement.local_world_size),
            "GLOO_SOCKET_IFNAME": host.interface,
        }
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(node_gpus[node_id])
        placements.append(placement)
        envs.append(env)
    return placements, envs
