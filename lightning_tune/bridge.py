"""The bridge that carries rank 0's reports from a worker actor to its Tune trial process.

``tune.report`` only works in the trial process: called in a worker actor it warns and drops
the result. So rank 0 puts each report (metrics, and the checkpoint) on a small queue actor
that takes no CPU from the trial's bundles, and waits until the trial process has handed it
to Tune. That keeps training in step with Tune: when the scheduler stops a trial, its
workers have not trained ahead. A checkpoint travels as its directory's path when rank 0
shares the trial's node (Tune copies it into storage from there), else as its files' bytes
in Ray's object store.

Nothing here is process-wide state: the launcher gives each rank a :class:`ReportChannel`
(the strategy holds it), and a report names what it must contain.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

import ray
from ray import tune

from lightning_tune.errors import MetricNotReportedError


def in_tune_trial() -> bool:
    """True in a Tune trial's own process (not in a worker actor it started)."""
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    return bool(_in_tune_session())


@dataclass
class Report:
    """One result on its way to ``tune.report``: metrics, and checkpoint files (in the object store)."""

    metrics: Dict[str, Any]
    # a list so Ray passes the reference through instead of fetching the bytes into the queue
    checkpoint_files: List[ray.ObjectRef] = field(default_factory=list)
    checkpoint_dir: Optional[str] = None  # instead of the files, on the trial's own node


class ReportChannel(NamedTuple):
    """What a worker needs to report: the queue, and the node the trial process runs on."""

    queue: Any
    trial_node_id: str


@ray.remote(num_cpus=0)
class _BridgeQueue:
    """An asyncio queue; ``put`` returns once the trial process acknowledged the item."""

    def __init__(self) -> None:
        self._items: asyncio.Queue = asyncio.Queue()
        self._unacknowledged: Optional[asyncio.Future] = None

    async def put(self, report: Report) -> None:
        delivered = asyncio.get_running_loop().create_future()
        await self._items.put((report, delivered))
        await delivered

    async def get(self) -> Report:
        report, delivered = await self._items.get()
        self._unacknowledged = delivered
        return report

    def acknowledge(self) -> None:
        if self._unacknowledged is not None and not self._unacknowledged.done():
            self._unacknowledged.set_result(None)
        self._unacknowledged = None


class Bridge:
    """The trial process's end: create it, hand its channel to the workers, drain it."""

    def __init__(self) -> None:
        # outside the trial's placement group: the queue needs no bundle of its own
        self.queue = _BridgeQueue.options(scheduling_strategy="DEFAULT").remote()
        self._next: Optional[ray.ObjectRef] = None

    def channel(self) -> ReportChannel:
        return ReportChannel(self.queue, ray.get_runtime_context().get_node_id())

    def next_report(self) -> ray.ObjectRef:
        """A reference that resolves when rank 0 sends its next report (for ``ray.wait``)."""
        if self._next is None:
            self._next = self.queue.get.remote()
        return self._next

    def deliver(self) -> None:
        """Pass the report that ``next_report`` resolved to Tune, then release rank 0."""
        report = ray.get(self._next)
        self._next = None
        if report.checkpoint_dir is not None:
            report_to_tune(report.metrics, directory=report.checkpoint_dir)
        else:
            report_to_tune(report.metrics, files=ray.get(report.checkpoint_files[0])
                           if report.checkpoint_files else None)
        self.queue.acknowledge.remote()

    def close(self) -> None:
        ray.kill(self.queue, no_restart=True)


def check_metric_present(metrics: Mapping[str, Any], required_metric: Optional[str]) -> None:
    """Fail a report that lacks the metric the search optimises, naming what was logged."""
    if required_metric is not None and required_metric not in metrics:
        logged = ", ".join(sorted(metrics)) or "none"
        raise MetricNotReportedError(
            f"The search optimises metric {required_metric!r}, but the model never logged it. "
            f"Metrics logged: {logged}. Log it with self.log({required_metric!r}, ...) in "
            "validation_step (or pass metric= one of the logged names).")


def report(metrics: Mapping[str, Any], *, checkpoint_dir: Optional[str] = None,
           channel: Optional[ReportChannel] = None, rank: int = 0,
           required_metric: Optional[str] = None) -> None:
    """Send one result to Tune from wherever training runs.

    On a worker (``channel`` given) rank 0 sends it over the bridge and other ranks send
    nothing; in a trial process it goes straight to ``tune.report``; elsewhere it is dropped.
    ``required_metric``: checked where the report starts, so a missing metric fails there.
    """
    metrics = dict(metrics)
    if channel is not None:
        if rank != 0:
            return
        check_metric_present(metrics, required_metric)
        if not checkpoint_dir:
            sent = Report(metrics)
        elif ray.get_runtime_context().get_node_id() == channel.trial_node_id:
            sent = Report(metrics, checkpoint_dir=checkpoint_dir)  # the directory outlives the put
        else:
            sent = Report(metrics, [ray.put(_read_files(checkpoint_dir))])
        ray.get(channel.queue.put.remote(sent))
    elif in_tune_trial():
        check_metric_present(metrics, required_metric)
        report_to_tune(metrics, directory=checkpoint_dir)


def report_to_tune(metrics: Dict[str, Any], *, directory: Optional[str] = None,
                   files: Optional[Dict[str, bytes]] = None) -> None:
    """``tune.report``, its checkpoint from a directory or from the files' bytes."""
    if files is not None:
        directory = tempfile.mkdtemp(prefix="lightning_tune_ckpt_")
        _write_files(directory, files)
        owned = True
    else:
        owned = False
    try:
        checkpoint = tune.Checkpoint.from_directory(directory) if directory else None
        tune.report(metrics, checkpoint=checkpoint)  # persists the checkpoint before returning
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


def _read_files(directory: str) -> Dict[str, bytes]:
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, directory)] = handle.read()
    return files


def _write_files(directory: str, files: Dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = os.path.join(directory, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
