"""Each rank's output kept in its trial folder (``rank_0.log``, ``rank_1.log``, ...).

In a search, what a rank prints (Lightning's messages, warnings, the user's prints, output of
C++ extensions) goes to its log file instead of the console, where Ray would forward it,
prefixed, from every rank of every trial. The file descriptors themselves are redirected, so
nothing that writes to stdout or stderr escapes; they are restored after the job, so a warm
worker's next job logs to its own trial. A failed rank's error carries the end of its log.

A rank on another node than its trial process logs to a file of its own node and sends the
text back with its result (or its error); the trial process appends it to the rank's log in
the trial folder, marked with the node it came from.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
import traceback
from typing import Dict, Iterator, List, Optional, Sequence, Set

TAIL_LINES = 20
TRIAL_LOG = "trial.log"  # a trial process's own output, when worker actors train for it
_FAILED = "--- the job failed:"
_FROM_NODE = "--- sent back from node"
# a warning as Python (path:line: Category: message) and Lightning (path:line: message) print it
_WARNING = re.compile(r"^(?P<path>/\S+\.py):\d+: (?P<message>.+)$")
_LIGHTNING = ("/lightning/", "/pytorch_lightning/", "/lightning_fabric/")
_NOT_ABOUT_THE_MODEL = ("/_pytree.py",)  # Lightning's note on a torch API it calls itself


def rank_log_path(trial_dir: str, rank: int) -> str:
    return os.path.join(trial_dir, f"rank_{rank}.log")


def node_local_log() -> str:
    """A new log file on this node, for a rank whose trial folder is on another node."""
    handle, path = tempfile.mkstemp(prefix="lightning_tune_rank_", suffix=".log")
    os.close(handle)
    return path


def take_log(path: str) -> str:
    """The text of a node-local log, which is then removed."""
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    finally:
        os.remove(path)


def append_log(path: Optional[str], text: Optional[str], node: str) -> None:
    """Add the log a rank sent back from ``node`` to its log in the trial folder."""
    if path is None or not text:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as log:
        log.write(f"{_FROM_NODE} {node}\n{text}")


@contextlib.contextmanager
def output_to(path: Optional[str]) -> Iterator[None]:
    """This process's stdout and stderr appended to ``path`` while inside (None: unchanged)."""
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n")
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except SystemExit:  # Tune ending a trial it stopped: no failure of the job
            raise
        except BaseException:
            sys.stderr.write(f"{_FAILED}\n")  # the log ends with the error, as a console would
            traceback.print_exc()
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def log_tail(path: Optional[str], lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines the rank wrote before its error (which its exception already
    shows), or "" where there is none (a worker on another node that died sent nothing)."""
    if path is None or not os.path.isfile(path):
        return ""
    with open(path, errors="replace") as handle:
        written = handle.readlines()
    if _FAILED + "\n" in written:
        written = written[:len(written) - 1 - written[::-1].index(_FAILED + "\n")]
    return "".join(written[-lines:])


def failure_log_note(path: Optional[str]) -> str:
    """What a failed rank's error ends with: the end of its log, where it has one."""
    tail = log_tail(path)
    return f"\nThe last lines of its log ({path}):\n{tail}" if tail else ""


def model_warnings(trial_dirs: Sequence[str], limit: int = 10) -> List[str]:
    """Each distinct warning the trials' ranks logged about the model or its data, once, with
    how many trials logged it: the user's own code's and Lightning's (a metric logged without
    ``sync_dist``, a dataloader with few workers), not other libraries'."""
    trials_by_message: Dict[str, Set[str]] = {}
    for trial_dir in trial_dirs:
        logs = [os.path.join(trial_dir, name) for name in sorted(os.listdir(trial_dir))
                if name.endswith(".log")] if os.path.isdir(trial_dir) else []
        for log in logs:
            with open(log, errors="replace") as handle:
                for line in handle:
                    match = _WARNING.match(line.rstrip("\n"))
                    if match is not None and _about_the_model(match["path"]):
                        trials_by_message.setdefault(match["message"], set()).add(trial_dir)
    ordered = sorted(trials_by_message.items(), key=lambda item: (-len(item[1]), item[0]))
    lines = [f"{message} ({len(trials)} trial{'s' if len(trials) > 1 else ''})"
             for message, trials in ordered[:limit]]
    if len(ordered) > limit:
        lines.append(f"... and {len(ordered) - limit} more")
    return lines


def _about_the_model(path: str) -> bool:
    if any(part in path for part in _NOT_ABOUT_THE_MODEL):
        return False
    return "-packages/" not in path or any(part in path for part in _LIGHTNING)
