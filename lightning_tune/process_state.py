"""What a reused process resets before its next job, so a job cannot tell it was reused.

Tune's ``reuse_actors`` keeps a trial process for the next trial, and the warm pool keeps
worker actors for the next trial's workers. Whatever one job left in the process's global
state (random generators, environment variables such as Lightning's ``PL_GLOBAL_SEED``)
would otherwise leak into the next.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator, Mapping, Optional

import numpy as np
import torch

# set by lightning's seed_everything; a new process does not have them
_SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def start_afresh(environ: Optional[Mapping[str, str]] = None) -> None:
    """Reseed every generator from fresh entropy; restore ``environ`` if given.

    Without ``environ`` only the seed variables are dropped: the process's environment is
    otherwise its own (a Tune trial process).
    """
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    else:
        for name in _SEED_VARIABLES:
            os.environ.pop(name, None)
    random.seed()
    np.random.seed()
    torch.seed()  # all devices, from a non-deterministic source


def release_leftovers() -> None:
    """Free what a finished job left: unreachable objects, then cached CUDA blocks."""
    import gc

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def global_state_kept() -> Iterator[None]:
    """Random generators and seed variables as they were before, after code that seeds them.

    LightningCLI seeds the process (``seed_everything``) when it builds from a config; in
    the user's own process (``load_best_model``) that must not change their generators, nor
    leave ``PL_GLOBAL_SEED`` for the Ray workers started after it to inherit.
    """
    variables = {name: os.environ.get(name) for name in _SEED_VARIABLES}
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        yield
    finally:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
