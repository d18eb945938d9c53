"""Errors raised by sagasim.

Every error is a :class:`SagaSimError`; the command line turns one into a single line on stderr
and exit code 2. Errors in a model also subclass :class:`ValueError` and carry where the problem
is: the file, the line, and the path inside the model (``steps[2].retry.attempts``).

Examples
--------
>>> err = SagaDefinitionError("expected a probability in [0, 1], got 1.5",
...                           path="steps[2].failure", file="models/x.yaml", line=14)
>>> str(err)
'models/x.yaml:14: steps[2].failure: expected a probability in [0, 1], got 1.5'
"""

from __future__ import annotations


class SagaSimError(Exception):
    """Base class of every error sagasim raises on purpose."""


class SagaDefinitionError(SagaSimError, ValueError):
    """A model that breaks a rule of the format: names the file, line and path."""

    def __init__(
        self, message: str, *, path: str = "", file: str | None = None, line: int | None = None
    ) -> None:
        self.message = message
        self.path = path
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        path = f"{self.path}: " if self.path else ""
        return f"{where}{path}{self.message}"


class StateSpaceLimitError(SagaSimError):
    """Exploring the state space went past the ``max_states`` limit."""


class EndlessRetryError(SagaSimError):
    """One action of one simulated instance made too many attempts without ending."""

    @classmethod
    def of(cls, saga: str, action: str, attempts: int, instance: int) -> EndlessRetryError:
        # built from its message alone: SimPy and worker processes re-create it from ``args``
        return cls(
            f"{saga}: {action} made {attempts:,} attempts in instance {instance} without ending "
            "(retried without limit through an outage, or almost never succeeding); bound its "
            "retries or shorten the outage"
        )


class UsageError(SagaSimError):
    """A command was asked for something it cannot do (bad option, unwritable output...)."""
