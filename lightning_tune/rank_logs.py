"""Each rank's output kept in its trial folder (``rank_0.log``, ``rank_1.log``, ...).

In a search, what a rank prints (Lightning's messages, warnings, the user's prints, output of
C++ extensions) goes to its log file instead of the console, where Ray would forward it,
prefixed, from every rank of every trial. The file descriptors themselves are redirected, so
nothing that writes to stdout or stderr escapes; they are restored after the job, so a warm
worker's next job logs to its own trial. A failed rank's error carries the end of its log.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from typing import Iterator, Optional

TAIL_LINES = 20
TRIAL_LOG = "trial.log"  # a trial process's own output, when worker actors train for it
_FAILED = "--- the job failed:"


def rank_log_path(trial_dir: str, rank: int) -> str:
    return os.path.join(trial_dir, f"rank_{rank}.log")


@contextlib.contextmanager
def output_to(path: Optional[str]) -> Iterator[None]:
    """This process's stdout and stderr appended to ``path`` while inside (None: unchanged).

    A rank on another node than its trial writes to the same path on its own node.
    """
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
    shows), or "" where the log cannot be read from here (a rank on another node)."""
    if path is None or not os.path.isfile(path):
        return ""
    with open(path, errors="replace") as handle:
        written = handle.readlines()
    if _FAILED + "\n" in written:
        written = written[:len(written) - 1 - written[::-1].index(_FAILED + "\n")]
    return "".join(written[-lines:])
