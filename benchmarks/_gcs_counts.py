"""Requests Ray's control store (the GCS) handled, read from its own periodic statistics.

The GCS server prints cumulative per-method request counts to ``gcs_server.out``; with
``RAY_event_stats_print_interval_ms`` set low before Ray starts (``enable``), the last block
is at most that old. ``snapshot`` reads it; ``writes`` sums the methods that change state
(actors, placement groups, the key-value store, workers, task events, published messages).
"""

from __future__ import annotations

import os
import re
import time
from typing import Dict

import ray

PRINT_INTERVAL_MS = 500
_COUNT = re.compile(r"^\s*(\w+)\.grpc_server\.(\w+)\.HandleRequestImpl - (\d+) total")
WRITE_METHODS = ("RegisterActor", "CreateActor", "KillActorViaGcs", "ReportActorOutOfScope",
                 "CreatePlacementGroup", "RemovePlacementGroup", "InternalKVPut",
                 "InternalKVDel", "AddWorkerInfo", "ReportWorkerFailure", "AddTaskEventData",
                 "GcsPublish", "AddJob", "MarkJobFinished")


def enable() -> None:
    """Before ``ray.init``: the GCS prints its statistics every PRINT_INTERVAL_MS."""
    os.environ["RAY_event_stats_print_interval_ms"] = str(PRINT_INTERVAL_MS)


def snapshot() -> Dict[str, int]:
    """The GCS's request counts by method, once a fresh statistics block was printed."""
    time.sleep(3 * PRINT_INTERVAL_MS / 1000)
    node = ray._private.worker._global_node  # the local Ray this benchmark started
    path = os.path.join(node.get_logs_dir_path(), "gcs_server.out")
    counts: Dict[str, int] = {}
    with open(path, errors="replace") as handle:
        for line in handle:  # later blocks overwrite earlier ones: the last one wins
            match = _COUNT.match(line)
            if match:
                counts[f"{match.group(1)}.{match.group(2)}"] = int(match.group(3))
    return counts


def difference(before: Dict[str, int], after: Dict[str, int]) -> Dict[str, int]:
    """Requests per method between two snapshots (methods with none left out)."""
    return {name: after[name] - before.get(name, 0) for name in sorted(after)
            if after[name] - before.get(name, 0)}


def writes(requests: Dict[str, int]) -> int:
    return sum(count for name, count in requests.items()
               if name.split(".")[-1] in WRITE_METHODS)
