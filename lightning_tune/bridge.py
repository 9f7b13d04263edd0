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
import contextlib
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import (Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import ray

from lightning_tune.checkpoint_write import report_in_place, staging_parent
from lightning_tune.errors import MetricNotReportedError
from lightning_tune.file_transfer import read_tree, write_tree


def in_tune_trial() -> bool:
    """True in a Tune trial's own process (not in a worker actor it started)."""
    if "ray.tune" not in sys.modules:  # a trial process runs Tune's code; workers skip it
        return False
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    return bool(_in_tune_session())


class CheckpointPart(NamedTuple):
    """One node's share of a checkpoint: its folder, on the trial's node, or its files' bytes."""

    directory: Optional[str] = None
    # nested in a tuple, so Ray passes the reference through instead of fetching the bytes
    # into the queue actor
    files: Tuple[ray.ObjectRef, ...] = ()


@dataclass
class Report:
    """One result on its way to ``tune.report``: metrics, and the parts of its checkpoint.

    A checkpoint comes in ``expected_parts`` parts, one per node that holds some of its files
    (one, rank 0's, unless every rank saved a shard); parts of one checkpoint share its
    ``key``, the folder name every rank saved into.
    """

    metrics: Dict[str, Any]
    key: str = ""
    parts: List[CheckpointPart] = field(default_factory=list)
    expected_parts: int = 0


class ReportChannel(NamedTuple):
    """What a worker needs to report: the queue, the node the trial process runs on, and
    where on that node a checkpoint is best saved (see :mod:`lightning_tune.checkpoint_write`)."""

    queue: Any
    trial_node_id: str
    staging_parent: Optional[str] = None


# no task events: three calls a report would otherwise each be recorded in the control store
@ray.remote(num_cpus=0, enable_task_events=False)
class _BridgeQueue:
    """An asyncio queue of reports; ``put`` (and ``put_part``) return once the trial process
    acknowledged the report, and ``get`` returns a report once all its parts are in."""

    def __init__(self) -> None:
        self._items: asyncio.Queue = asyncio.Queue()
        self._parts: Dict[str, List[CheckpointPart]] = {}
        self._arrived = asyncio.Condition()
        self._delivered: Dict[str, asyncio.Future] = {}
        self._unacknowledged: Optional[str] = None

    def _delivery(self, key: str) -> asyncio.Future:
        if key not in self._delivered:
            self._delivered[key] = asyncio.get_running_loop().create_future()
        return self._delivered[key]

    async def put(self, report: Report) -> None:
        delivered = self._delivery(report.key)
        await self._items.put(report)
        await delivered

    async def put_part(self, key: str, part: CheckpointPart) -> None:
        delivered = self._delivery(key)
        async with self._arrived:
            self._parts.setdefault(key, []).append(part)
            self._arrived.notify_all()
        await delivered

    async def get(self) -> Report:
        report = await self._items.get()

        def complete() -> bool:
            return len(report.parts) + len(self._parts.get(report.key, [])) >= report.expected_parts

        async with self._arrived:
            await self._arrived.wait_for(complete)
        report.parts = report.parts + self._parts.pop(report.key, [])
        self._unacknowledged = report.key
        return report

    def acknowledge(self) -> None:
        delivered = self._delivered.pop(self._unacknowledged, None)
        if delivered is not None and not delivered.done():
            delivered.set_result(None)
        self._unacknowledged = None


class Bridge:
    """The trial process's end: create it, hand its channel to the workers, drain it."""

    def __init__(self) -> None:
        # outside the trial's placement group: the queue needs no bundle of its own
        self.queue = _BridgeQueue.options(scheduling_strategy="DEFAULT").remote()
        self._next: Optional[ray.ObjectRef] = None

    def channel(self) -> ReportChannel:
        return ReportChannel(self.queue, ray.get_runtime_context().get_node_id(),
                             staging_parent())

    def next_report(self) -> ray.ObjectRef:
        """A reference that resolves when rank 0 sends its next report (for ``ray.wait``)."""
        if self._next is None:
            self._next = self.queue.get.remote()
        return self._next

    def deliver(self) -> None:
        """Pass the report that ``next_report`` resolved to Tune, then release the ranks."""
        report = ray.get(self._next)
        self._next = None
        if not report.parts:
            report_to_tune(report.metrics)
        else:
            with assembled(report.parts) as directory:
                report_to_tune(report.metrics, directory=directory)
        self.queue.acknowledge.remote()

    def close(self) -> None:
        ray.kill(self.queue, no_restart=True)


def check_metric_present(metrics: Mapping[str, Any],
                         required_metric: Union[None, str, Sequence[str]]) -> None:
    """Fail a report that lacks a metric the search optimises, naming what was logged."""
    required = [required_metric] if isinstance(required_metric, str) else required_metric or []
    for name in required:
        if name not in metrics:
            logged = ", ".join(sorted(metrics)) or "none"
            raise MetricNotReportedError(
                f"The search optimises metric {name!r}, but the model never logged it. "
                f"Metrics logged: {logged}. Log it with self.log({name!r}, ...) in "
                "validation_step (or pass metric= one of the logged names).")


def report(metrics: Mapping[str, Any], *, checkpoint_dir: Optional[str] = None,
           channel: Optional[ReportChannel] = None, rank: int = 0,
           required_metric: Union[None, str, Sequence[str]] = None,
           checkpoint_parts: int = 1) -> None:
    """Send one result to Tune from wherever training runs.

    On a worker (``channel`` given) rank 0 sends it over the bridge and other ranks send
    nothing; in a trial process it goes straight to ``tune.report``; elsewhere it is dropped.
    ``required_metric``: checked where the report starts, so a missing metric fails there.
    ``checkpoint_parts``: how many nodes hold files of the checkpoint (every rank saved a
    shard into ``checkpoint_dir``); the other nodes send theirs with :func:`send_checkpoint_part`.
    """
    metrics = dict(metrics)
    if channel is not None:
        if rank != 0:
            return
        check_metric_present(metrics, required_metric)
        sent = Report(metrics, key=checkpoint_dir or uuid.uuid4().hex)
        if checkpoint_dir:
            sent.parts.append(_part(checkpoint_dir, channel))
            sent.expected_parts = checkpoint_parts
        ray.get(channel.queue.put.remote(sent))
    elif in_tune_trial():
        check_metric_present(metrics, required_metric)
        report_to_tune(metrics, directory=checkpoint_dir)


def send_checkpoint_part(checkpoint_dir: str, channel: Optional[ReportChannel]) -> None:
    """From one rank of each node but rank 0's: this node's files of a sharded checkpoint.

    Returns once the checkpoint reached Tune, so the folder may then be removed.
    """
    if channel is not None:
        ray.get(channel.queue.put_part.remote(checkpoint_dir, _part(checkpoint_dir, channel)))


def _part(directory: str, channel: ReportChannel) -> CheckpointPart:
    """This node's files: by path on the trial's node (the folder outlives the put), else bytes."""
    if ray.get_runtime_context().get_node_id() == channel.trial_node_id:
        return CheckpointPart(directory=directory)
    return CheckpointPart(files=(ray.put(read_tree(directory)),))


@contextlib.contextmanager
def assembled(parts: List[CheckpointPart]) -> Iterator[str]:
    """One folder with every part's files: the trial node's folder, or a new one."""
    local = next((part.directory for part in parts if part.directory), None)
    directory = local or tempfile.mkdtemp(prefix="lightning_tune_ckpt_")
    try:
        for part in parts:
            if part.files:
                write_tree(directory, ray.get(part.files[0]))
        yield directory
    finally:
        if local is None:
            shutil.rmtree(directory, ignore_errors=True)


def checkpoint_parent(channel: Optional[ReportChannel]) -> Optional[str]:
    """Where this process should make the folder of a checkpoint it will report: beside the
    trial's storage folder when the trial process can move it there (same node, local
    storage), else None (the system's temporary folder)."""
    if channel is not None:
        same_node = ray.get_runtime_context().get_node_id() == channel.trial_node_id
        return channel.staging_parent if same_node else None
    return staging_parent() if in_tune_trial() else None


def report_to_tune(metrics: Dict[str, Any], *, directory: Optional[str] = None) -> None:
    """``tune.report``, with a checkpoint of ``directory`` if given (moved into Tune's
    folder where it can be; it persists before this returns)."""
    from ray import tune

    if directory:
        report_in_place(metrics, directory)
    else:
        tune.report(metrics)
