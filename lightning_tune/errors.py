"""The toolkit's exceptions: one root, each also a subclass of the built-in it refines.

``except LightningTuneError`` catches everything this toolkit raises on purpose (bad input,
a trial the cluster cannot hold, a failed rank); ``except ValueError`` and the other
built-ins keep working for code written before the root existed. Anything else that escapes
a search is a bug (ours or the model's) and keeps its own type and traceback.
"""

from __future__ import annotations

import pickle


class LightningTuneError(Exception):
    """Root of every exception lightning-tune raises on purpose."""


class InvalidArgumentError(LightningTuneError, ValueError):
    """An argument's value cannot work; the message names it and says what would."""


class InvalidTypeError(LightningTuneError, TypeError):
    """An argument is of the wrong kind (a class where an instance is wanted, ...)."""


class UnknownArgumentError(LightningTuneError, TypeError):
    """A keyword nothing accepts; the message names the closest one that exists."""


class MissingDependencyError(LightningTuneError, ImportError):
    """A package the chosen feature needs is not installed (e.g. Horovod)."""


class RecordedClassImportError(LightningTuneError, ImportError):
    """A class recorded by name in an experiment cannot be imported again."""


class ExperimentExistsError(LightningTuneError, FileExistsError):
    """An experiment of that name exists already; resume it or choose another name."""


class NotFoundError(LightningTuneError, FileNotFoundError):
    """A file or folder that was named does not exist."""


class ExperimentNotFoundError(NotFoundError):
    """A folder is no experiment of ours, or holds no state to resume or read yet."""


class UnknownNameError(LightningTuneError, KeyError):
    """A name (a curated search space, ...) that does not exist; the message lists those that do."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class TrialShapeError(LightningTuneError, ValueError):
    """A trial asks for more than the Ray cluster can ever give it."""


class MetricNotReportedError(LightningTuneError, KeyError):
    """The metric the search optimises was never logged by the model."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class UnsafeCheckpointError(LightningTuneError, pickle.UnpicklingError):
    """A checkpoint holds more than data (code it would run on load); it is not loaded."""


class WorkerError(LightningTuneError, RuntimeError):
    """A training worker failed; carries the failing rank and that worker's traceback."""

    def __init__(self, rank: int, detail: str):
        self.rank = rank
        self.detail = detail
        super().__init__(f"Training worker rank {rank} failed:\n{detail}")

    def __reduce__(self):
        return (type(self), (self.rank, self.detail))


class AllTrialsFailedError(LightningTuneError, RuntimeError):
    """Every trial of a search failed, so there is no best result to return."""
