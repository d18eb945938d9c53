"""The saga model: frozen value objects, and the whole-model rules they obey.

A :class:`Saga` is an ordered tuple of entries, each a :class:`Step` or a :class:`Parallel`
group of branches (tuples of steps). Steps and their :class:`Compensation` share the fields of
an *action*: latency, transient ``failure``, definitive ``reject``, ``timeout_ms``, ``retry``,
``idempotent`` and ``rejects_late``. Nothing here reads files or runs anything: :mod:`sagasim.io`
builds these objects from YAML and :mod:`sagasim.io.dsl` from Python; both end in
:func:`validate`, so a model built either way obeys the same rules.

Examples
--------
>>> s = Saga(name="demo", steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... ))
>>> validate(s)
>>> [step.kind for step in s.all_steps()]
['compensatable', 'pivot']
>>> s.pivot_index
1
"""

from __future__ import annotations

import keyword
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from ..exceptions import SagaDefinitionError
from .latency import Constant, Latency

__all__ = [
    "Action",
    "Arrivals",
    "Compensation",
    "Entry",
    "Outage",
    "Parallel",
    "Retry",
    "Saga",
    "Service",
    "Step",
    "replace",
    "validate",
]

StepKind = Literal["compensatable", "pivot", "retriable", "read_only", "uncompensatable"]

#: Names steps and compensations may not take: the state machine's own attributes, and the
#: end states (a step named ``stuck`` would read like one in every trace and diagram).
RESERVED_NAMES = frozenset(
    {"send", "states", "configuration", "model", "name"}
    | {"committed", "compensated", "leaked", "stuck"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """How many attempts an action gets and how long it waits between them.

    ``attempts=None`` means unbounded. The delay before attempt ``k + 1`` is ``delay_ms`` for
    ``fixed`` backoff and ``delay_ms * multiplier**(k - 1)`` for ``exponential``, capped at
    ``max_delay_ms``; with ``jitter`` the actual wait is drawn uniformly from ``[0, delay]``
    ("full jitter").

    >>> Retry(attempts=4, backoff="exponential", delay_ms=50.0).nominal_delay_ms(3)
    200.0
    """

    attempts: int | None = 1
    backoff: Literal["fixed", "exponential"] = "fixed"
    delay_ms: float = 0.0
    multiplier: float = 2.0
    max_delay_ms: float | None = None
    jitter: bool = False

    @property
    def unbounded(self) -> bool:
        return self.attempts is None

    def nominal_delay_ms(self, failed_attempts: int) -> float:
        """The backoff after the ``failed_attempts``-th failed attempt, before jitter."""
        delay = self.delay_ms
        if self.backoff == "exponential":
            delay = self.delay_ms * self.multiplier ** (failed_attempts - 1)
        if self.max_delay_ms is not None:
            delay = min(delay, self.max_delay_ms)
        return delay

    def mean_delay_ms(self, failed_attempts: int) -> float:
        """The expected backoff after the ``failed_attempts``-th failure (jitter halves it)."""
        delay = self.nominal_delay_ms(failed_attempts)
        return delay / 2 if self.jitter else delay


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """What steps and compensations have in common: one call to a participant."""

    name: str
    service: str | None = None
    latency: Latency = field(default_factory=Constant)
    failure: float = 0.0
    reject: float = 0.0
    timeout_ms: float | None = None
    retry: Retry = field(default_factory=Retry)
    idempotent: bool = False
    rejects_late: bool = False

    @property
    def p_timeout(self) -> float:
        """P(latency > timeout): the orchestrator stops waiting and counts a transient failure."""
        if self.timeout_ms is None:
            return 0.0
        return 1.0 - self.latency.cdf(self.timeout_ms)

    @property
    def attempt_outcomes(self) -> dict[str, float]:
        """Probabilities of one attempt as the orchestrator sees it: ok, fail, reject, timeout."""
        t = self.p_timeout
        return {
            "ok": (1 - self.reject) * (1 - self.failure) * (1 - t),
            "fail": (1 - self.reject) * self.failure * (1 - t),
            "reject": self.reject * (1 - t),
            "timeout": t,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensation(Action):
    """The action that undoes a step's effect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step(Action):
    """A local transaction of the saga.

    ``kind_declared`` is ``"pivot"``, ``"retriable"`` or ``None``; :attr:`kind` resolves it.
    """

    kind_declared: Literal["pivot", "retriable"] | None = None
    effects: bool = True
    compensation: Compensation | None = None

    @property
    def kind(self) -> StepKind:
        if self.kind_declared is not None:
            return self.kind_declared
        if self.compensation is not None:
            return "compensatable"
        return "read_only" if not self.effects else "uncompensatable"

    @property
    def service_name(self) -> str:
        return self.service or self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Parallel:
    """Branches that start together; the group completes when every branch has."""

    branches: tuple[tuple[Step, ...], ...]


Entry = Step | Parallel


@dataclass(frozen=True, slots=True, kw_only=True)
class Outage:
    """A window during which every attempt at a service fails."""

    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A participant: ``capacity`` concurrent calls (None: unlimited) and outage windows."""

    name: str
    capacity: int | None = None
    outages: tuple[Outage, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrivals:
    """Poisson arrivals of saga instances that share the services."""

    rate_per_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    """The message broker of a choreographed saga (ignored by orchestration).

    Each delivery of an event to a subscribing service takes a ``latency`` sample, is lost with
    probability ``loss``, delivered twice with probability ``duplicate``, and may overtake
    earlier messages to the same service with probability ``reorder`` (otherwise delivery to a
    service is first-in, first-out). ``redelivery`` is at-least-once delivery: a lost message
    is sent again after the policy's delay while attempts remain (``attempts: 1``, the default,
    means none).

    >>> Broker(loss=0.01).perfect, Broker().perfect, Broker().ideal
    (False, True, True)
    """

    latency: Latency = field(default_factory=lambda: Constant(value_ms=0.0))
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    redelivery: Retry = field(default_factory=Retry)

    @property
    def perfect(self) -> bool:
        """Whether every message arrives exactly once, in order."""
        return self.loss == 0 and self.duplicate == 0 and self.reorder == 0

    @property
    def ideal(self) -> bool:
        """Whether every message arrives at once, exactly once and in order: a choreography
        then behaves as its orchestration, outcome for outcome and in time."""
        return self.perfect and self.latency.mean_ms == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Saga:
    """A whole saga: its steps in order, the services they call and how instances arrive."""

    name: str
    steps: tuple[Entry, ...]
    description: str = ""
    coordination: Literal["orchestration", "choreography"] = "orchestration"
    compensation_order: Literal["reverse", "parallel"] = "reverse"
    services: tuple[Service, ...] = ()
    arrivals: Arrivals | None = None
    broker: Broker = field(default_factory=Broker)

    def all_steps(self) -> Iterator[Step]:
        """Every step in order; a parallel group's steps branch by branch."""
        for entry in self.steps:
            if isinstance(entry, Step):
                yield entry
            else:
                for branch in entry.branches:
                    yield from branch

    def actions(self) -> Iterator[Action]:
        """Every step, each followed by its compensation if it has one."""
        for step in self.all_steps():
            yield step
            if step.compensation is not None:
                yield step.compensation

    def step(self, name: str) -> Step:
        for step in self.all_steps():
            if step.name == name:
                return step
        raise KeyError(name)

    def action(self, name: str) -> Action:
        """A step or a compensation by name."""
        for action in self.actions():
            if action.name == name:
                return action
        raise KeyError(name)

    def service(self, name: str) -> Service:
        """The declared service, or an unconstrained one of that name."""
        for service in self.services:
            if service.name == name:
                return service
        return Service(name=name)

    def service_of(self, action: Action) -> str:
        """The service an action calls: its own, or its step's, or the step's name."""
        if action.service is not None:
            return action.service
        for step in self.all_steps():
            if step.compensation is action or step.compensation == action:
                return step.service_name
        return action.name

    def can_fail(self, action: Action) -> bool:
        """Whether an attempt can fail transiently: its ``failure``, or an outage of its service."""
        return action.failure > 0 or bool(self.service(self.service_of(action)).outages)

    def can_time_out(self, action: Action) -> bool:
        """Whether an attempt can time out: by its latency alone, or by queueing for a service
        with a ``capacity`` when instances arrive and share it."""
        if action.p_timeout > 0:
            return True
        queued = self.arrivals is not None and self.service(self.service_of(action)).capacity
        return action.timeout_ms is not None and bool(queued)

    def possible_events(self, action: Action) -> tuple[str, ...]:
        """How an attempt of ``action`` can end, as the orchestrator sees it (``check`` explores
        exactly these; an outage or a queue makes ``fail`` or ``timeout`` possible even where
        the action's own numbers do not)."""
        events: tuple[str, ...] = ("ok",) if action.attempt_outcomes["ok"] > 0 else ()
        if self.can_fail(action):
            events += ("fail",)
        if action.reject > 0:
            events += ("reject",)
        if self.can_time_out(action):
            events += ("timeout",)
        return events

    def may_land_late(self, action: Action) -> bool:
        """Whether a timed-out attempt of ``action`` can still apply its effect afterwards."""
        can_succeed = action.failure < 1 and action.reject < 1
        return self.can_time_out(action) and not action.rejects_late and can_succeed

    @property
    def pivot_index(self) -> int | None:
        """Index in :attr:`steps` of the pivot entry, if any."""
        for index, entry in enumerate(self.steps):
            if isinstance(entry, Step) and entry.kind == "pivot":
                return index
        return None


def validate(saga: Saga) -> None:
    """Check the rules of DESIGN.md that span the whole model; raise on the first broken one.

    Errors carry a ``path`` such as ``steps[2].retry.attempts`` but no file or line: the loader
    adds those.
    """
    names: dict[str, str] = {}

    def check_name(name: object, path: str) -> None:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise SagaDefinitionError(f"expected an identifier, got {name!r}", path=path)
        if name in RESERVED_NAMES:
            raise SagaDefinitionError(
                f"expected a name other than the reserved {sorted(RESERVED_NAMES)}, got {name!r}",
                path=path,
            )
        if name in names:
            raise SagaDefinitionError(
                f"expected a unique name, got {name!r} again (first used at {names[name]})",
                path=path,
            )
        names[name] = path

    def check_action(action: Action, path: str) -> None:
        for attr in ("failure", "reject"):
            value = getattr(action, attr)
            if not 0.0 <= value <= 1.0:
                raise SagaDefinitionError(
                    f"expected a probability in [0, 1], got {value!r}", path=f"{path}.{attr}"
                )
        if action.timeout_ms is not None and not action.timeout_ms >= 0:
            raise SagaDefinitionError(
                f"expected a non-negative duration, got {action.timeout_ms!r} ms",
                path=f"{path}.timeout",
            )
        check_retry(action.retry, f"{path}.retry")

    def check_retry(retry: Retry, path: str) -> None:
        if retry.attempts is not None and (isinstance(retry.attempts, bool) or retry.attempts < 1):
            raise SagaDefinitionError(
                f"expected a positive integer or 'unbounded', got {retry.attempts!r}",
                path=f"{path}.attempts",
            )
        if not retry.delay_ms >= 0:
            raise SagaDefinitionError(
                f"expected a non-negative duration, got {retry.delay_ms!r} ms", path=f"{path}.delay"
            )

    if not saga.steps:
        raise SagaDefinitionError("expected at least one step, got none", path="steps")
    pivots: list[str] = []
    used_services: set[str] = set()
    for index, entry in enumerate(saga.steps):
        path = f"steps[{index}]"
        if isinstance(entry, Parallel):
            if len(entry.branches) < 1:
                raise SagaDefinitionError(
                    "expected at least one branch, got none", path=f"{path}.parallel"
                )
            located = [
                (step, f"{path}.parallel[{b}][{k}]")
                for b, branch in enumerate(entry.branches)
                for k, step in enumerate(branch)
            ]
            for b, branch in enumerate(entry.branches):
                if not branch:
                    raise SagaDefinitionError(
                        "expected a branch with at least one step, got an empty one",
                        path=f"{path}.parallel[{b}]",
                    )
        else:
            located = [(entry, path)]
        for step, step_path in located:
            check_name(step.name, f"{step_path}.name")
            check_action(step, step_path)
            used_services.add(step.service_name)
            if step.kind == "pivot":
                if isinstance(entry, Parallel):
                    raise SagaDefinitionError(
                        "expected the pivot outside parallel groups, got it inside one",
                        path=f"{step_path}.kind",
                    )
                pivots.append(step_path)
                if len(pivots) > 1:
                    raise SagaDefinitionError(
                        f"expected at most one pivot, got a second one (first at {pivots[0]})",
                        path=f"{step_path}.kind",
                    )
            if step.compensation is not None:
                check_name(step.compensation.name, f"{step_path}.compensation.name")
                check_action(step.compensation, f"{step_path}.compensation")
                used_services.add(step.compensation.service or step.service_name)
    for service in saga.services:
        spath = f"services.{service.name}"
        if service.name not in used_services:
            raise SagaDefinitionError(
                f"expected a service that a step calls ({', '.join(sorted(used_services))}),"
                f" got {service.name!r}",
                path=spath,
            )
        if service.capacity is not None and (
            isinstance(service.capacity, bool) or service.capacity < 1
        ):
            raise SagaDefinitionError(
                f"expected a positive integer, got {service.capacity!r}", path=f"{spath}.capacity"
            )
        for k, outage in enumerate(service.outages):
            if not 0 <= outage.start_ms <= outage.end_ms:
                raise SagaDefinitionError(
                    f"expected 0 <= start <= end, got start {outage.start_ms} ms and end"
                    f" {outage.end_ms} ms",
                    path=f"{spath}.outages[{k}]",
                )
    for attr in ("loss", "duplicate", "reorder"):
        value = getattr(saga.broker, attr)
        if not 0.0 <= value <= 1.0:
            raise SagaDefinitionError(
                f"expected a probability in [0, 1], got {value!r}", path=f"broker.{attr}"
            )
    if saga.broker.loss == 1 and saga.broker.redelivery.unbounded:
        raise SagaDefinitionError(
            "expected loss below 1 with unbounded redelivery (no message would ever arrive), got 1",
            path="broker.loss",
        )
    check_retry(saga.broker.redelivery, "broker.redelivery")
    if saga.arrivals is not None and not saga.arrivals.rate_per_s > 0:
        raise SagaDefinitionError(
            f"expected a positive rate, got {saga.arrivals.rate_per_s!r}/s", path="arrivals.rate"
        )
