"""Exceptions a user may want to catch by type."""

from __future__ import annotations


class WorkerError(RuntimeError):
    """A training worker failed; carries the failing rank and that worker's traceback."""

    def __init__(self, rank: int, detail: str):
        self.rank = rank
        self.detail = detail
        super().__init__(f"Training worker rank {rank} failed:\n{detail}")

    def __reduce__(self):
        return (type(self), (self.rank, self.detail))


class TrialShapeError(ValueError):
    """A trial asks for more than the Ray cluster can ever give it."""


class MetricNotReportedError(KeyError):
    """The metric the search optimises was never logged by the model."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class AllTrialsFailedError(RuntimeError):
    """Every trial of a search failed, so there is no best result to return."""
