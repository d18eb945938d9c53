"""The saga model: frozen value objects.

A :class:`Saga` is an ordered tuple of entries: a :class:`Step`, a :class:`Parallel` group of
branches, a :class:`Choice`, a :class:`Map`, a :class:`SubSaga`, or the ends and jumps
:class:`Fail`, :class:`Succeed` and :class:`Goto`; the nesting ones hold step lists of their own
(:func:`walk` visits them all). Steps and their :class:`Compensation` share the fields of an
*action*: latency, transient ``failure``, definitive ``reject``, ``timeout_ms``, ``retry``,
``idempotent`` and ``rejects_late``. Nothing here reads files or runs anything: :mod:`sagasim.io`
builds these objects from YAML and :mod:`sagasim.io.dsl` from Python; both end in
:func:`sagasim.model.validate`, so a model built either way obeys the same rules.

Examples
--------
>>> s = Saga(name="demo", steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... ))
>>> [step.kind for step in s.all_steps()]
['compensatable', 'pivot']
>>> s.pivot_index
1
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal, cast

from .data import Coordinator, Resource, Write
from .latency import Constant, Latency

__all__ = [
    "Action",
    "Arrivals",
    "Branch",
    "Broker",
    "Choice",
    "Compensation",
    "Entry",
    "Fail",
    "Goto",
    "Map",
    "Outage",
    "Parallel",
    "Retry",
    "Saga",
    "Service",
    "Step",
    "SubSaga",
    "Succeed",
    "blocks_of",
    "line_of",
    "rebuild",
    "replace",
    "walk",
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
    #: Shared resources the call changes when it ends ``ok`` (a compensation's undo its step's).
    writes: tuple[Write, ...] = ()

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
    #: A failed or timed-out call may have partly happened: run the step's own compensation
    #: first when it fails, then recover the rest.
    compensate_on_failure: bool = False
    #: How often the step may be reached (a ``goto`` cycle with effects needs a bound); the
    #: next arrival fails the saga with the fail name ``max_visits``.
    max_visits: int | None = None
    #: Shared resources whose value the step reads when its attempt ends ``ok``.
    reads: tuple[str, ...] = ()

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
    """Branches that start together; the group completes when every branch has.

    ``concurrency`` and ``origin`` are not part of the format: :func:`sagasim.machine.core`
    sets them when it unrolls a ``map`` into a group (whose branches then start at most
    ``concurrency`` at a time), ``origin`` being the map's name.
    """

    branches: tuple[tuple[Entry, ...], ...]
    concurrency: int | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    """One way out of a :class:`Choice`: taken with ``probability`` (the ``default`` branch
    takes what the others leave), running ``steps`` and rejoining after the choice unless they
    end in ``fail``, ``succeed`` or ``goto``. ``when`` is the condition as written."""

    when: str
    steps: tuple[Entry, ...] = ()
    probability: float | None = None
    default: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """Exactly one branch runs, drawn afresh each time the choice is reached.

    >>> c = Choice(name="stock", branches=(Branch(when="in stock", probability=0.9),
    ...                                     Branch(when="otherwise", default=True)))
    >>> [round(p, 12) for p in c.probabilities]
    [0.9, 0.1]
    """

    name: str
    branches: tuple[Branch, ...]

    @property
    def probabilities(self) -> tuple[float, ...]:
        """Each branch's probability, the default's being 1 minus the sum of the others."""
        given = sum(b.probability or 0.0 for b in self.branches if not b.default)
        return tuple(
            max(0.0, 1.0 - given) if b.default else (b.probability or 0.0) for b in self.branches
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    """Backward recovery from here, as if the next step had been rejected; outcomes are also
    counted by ``name``."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Succeed:
    """The saga ends ``committed`` here; nothing after it runs."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Goto:
    """Jump to the entry named ``target``, in the same step list or an enclosing one."""

    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Map:
    """The body ``steps`` once per item, at most ``concurrency`` items at a time (None: all).

    ``items`` is a count, or a tuple of counts drawn uniformly (an empirical distribution).
    A failed item stops new items; items in flight finish; completed items are undone.
    """

    name: str
    items: int | tuple[int, ...]
    steps: tuple[Entry, ...]
    concurrency: int | None = None

    @property
    def counts(self) -> dict[int, float]:
        """Each possible number of items and its probability.

        >>> Map(name="m", items=(1, 2, 2, 5), steps=()).counts
        {1: 0.25, 2: 0.5, 5: 0.25}
        """
        samples = (self.items,) if isinstance(self.items, int) else self.items
        return {n: samples.count(n) / len(samples) for n in sorted(set(samples))}


@dataclass(frozen=True, slots=True, kw_only=True)
class SubSaga:
    """Another saga run as one step of this one. ``model`` is the file as written (relative to
    the parent's file), ``saga`` the child it holds. When the parent fails after the child
    committed, ``compensation`` undoes the whole child in one action if given; otherwise the
    child's completed steps are compensated in reverse."""

    name: str
    model: str
    saga: Saga
    compensation: Compensation | None = None


Entry = Step | Parallel | Choice | Fail | Succeed | Goto | Map | SubSaga
#: Entries that hold step lists of their own.
NESTING = (Parallel, Choice, Map, SubSaga)


def blocks_of(entry: Entry) -> tuple[tuple[Entry, ...], ...]:
    """The step lists directly inside ``entry``: a group's branches, a choice's branches, a
    map's body, a sub-saga's steps; none for a step or an end."""
    if isinstance(entry, Parallel):
        return entry.branches
    if isinstance(entry, Choice):
        return tuple(branch.steps for branch in entry.branches)
    if isinstance(entry, Map):
        return (entry.steps,)
    if isinstance(entry, SubSaga):
        return (entry.saga.steps,)
    return ()


def line_of(saga: Saga) -> list[tuple[tuple[Step, ...], ...]]:
    """The entries of a saga that is a straight line of steps and parallel groups of steps,
    each as its branches of steps (a step is one branch of one step).

    >>> line_of(Saga(name="s", steps=(Step(name="a"), Parallel(branches=((Step(name="b"),),)))))
    [((Step(name='a', ...),), ((Step(name='b', ...),),)]
    """
    flat = all(
        isinstance(e, Step)
        or (
            isinstance(e, Parallel)
            and e.origin is None
            and all(isinstance(s, Step) for branch in e.branches for s in branch)
        )
        for e in saga.steps
    )
    if not flat:
        raise ValueError(f"{saga.name} is not a straight line of steps and parallel groups")
    # a straight line holds only steps and groups of steps: the casts say what was checked
    return [
        ((e,),) if isinstance(e, Step) else cast(tuple[tuple[Step, ...], ...], e.branches)
        for e in saga.steps
        if isinstance(e, (Step, Parallel))
    ]


def rebuild(
    entries: tuple[Entry, ...], change: Callable[[Entry], Entry], *, sub_sagas: bool = True
) -> tuple[Entry, ...]:
    """``entries`` rebuilt bottom-up: the step lists inside each entry first, then the entry
    itself passed through ``change``; with ``sub_sagas=False`` a sub-saga's own steps are left
    as they are (they have names of their own), the sub-saga itself still passed through.

    >>> steps = rebuild((Step(name="a"), Parallel(branches=((Step(name="b"),),))),
    ...                 lambda e: replace(e, failure=0.5) if isinstance(e, Step) else e)
    >>> [s.failure for s in Saga(name="s", steps=steps).all_steps()]
    [0.5, 0.5]
    """

    def again(block: tuple[Entry, ...]) -> tuple[Entry, ...]:
        return rebuild(block, change, sub_sagas=sub_sagas)

    def one(entry: Entry) -> Entry:
        if isinstance(entry, Parallel):
            entry = replace(entry, branches=tuple(again(b) for b in entry.branches))
        elif isinstance(entry, Choice):
            ways = tuple(replace(b, steps=again(b.steps)) for b in entry.branches)
            entry = replace(entry, branches=ways)
        elif isinstance(entry, Map):
            entry = replace(entry, steps=again(entry.steps))
        elif isinstance(entry, SubSaga) and sub_sagas:
            child = replace(entry.saga, steps=again(entry.saga.steps))
            entry = replace(entry, saga=child)
        return change(entry)

    return tuple(map(one, entries))


def walk(entries: tuple[Entry, ...]) -> Iterator[Entry]:
    """Every entry of ``entries`` and, depth first in document order, every entry inside."""
    for entry in entries:
        yield entry
        for block in blocks_of(entry):
            yield from walk(block)


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
    resources: tuple[Resource, ...] = ()
    #: How many interleaved instances ``check`` explores.
    instances: int = 1
    coordinator: Coordinator | None = None

    def all_steps(self) -> Iterator[Step]:
        """Every step in document order: a parallel group's branch by branch, and those inside
        choices, maps and sub-sagas where they are written."""
        for entry in walk(self.steps):
            if isinstance(entry, Step):
                yield entry

    def actions(self) -> Iterator[Action]:
        """Every step, each followed by its compensation if it has one, and the whole-saga
        compensation of each sub-saga after its steps."""
        for entry in walk(self.steps):
            if isinstance(entry, Step):
                yield entry
                if entry.compensation is not None:
                    yield entry.compensation
            elif isinstance(entry, SubSaga) and entry.compensation is not None:
                yield entry.compensation  # the child's steps come first: walk is depth first

    @property
    def is_graph(self) -> bool:
        """Whether the saga uses any construct beyond steps and parallel groups of steps."""
        return any(
            not isinstance(e, (Step, Parallel))
            or (isinstance(e, Step) and (e.compensate_on_failure or e.max_visits is not None))
            or (isinstance(e, Parallel) and (e.concurrency is not None or e.origin is not None))
            for e in walk(self.steps)
        )

    def all_resources(self) -> tuple[Resource, ...]:
        """The resources the saga and its sub-sagas declare (a name declared twice: the
        outer declaration)."""
        found = {r.name: r for r in self.resources}
        for entry in walk(self.steps):
            if isinstance(entry, SubSaga):
                for r in entry.saga.all_resources():
                    found.setdefault(r.name, r)
        return tuple(found.values())

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
        """The service an action calls: its own, or its step's, or the step's name (a
        sub-saga's compensation: the sub-saga's name)."""
        if action.service is not None:
            return action.service
        for step in self.all_steps():
            if step.compensation is action or step.compensation == action:
                return step.service_name
        for entry in walk(self.steps):
            if isinstance(entry, SubSaga) and entry.compensation == action:
                return entry.name
        return action.name

    def can_fail(self, action: Action) -> bool:
        """Whether an attempt can fail transiently: its ``failure``, an outage of its service,
        or a countermeasure refusing it (:meth:`can_conflict`)."""
        outages = self.service(self.service_of(action)).outages
        return action.failure > 0 or bool(outages) or self.can_conflict(action)

    def can_conflict(self, action: Action) -> bool:
        """Whether another instance can make an attempt of ``action`` fail: a ``set`` write to
        a resource under ``reread`` or ``version`` whose value changed since this instance
        read it, or a read or write of one under a ``semantic_lock`` with ``on_locked: fail``
        (only where instances run at once: ``instances`` above 1, or ``arrivals``)."""
        concurrent = self.instances > 1 or self.arrivals is not None
        if not isinstance(action, Step) or not (action.reads or action.writes) or not concurrent:
            return False  # a compensation is never refused: its saga holds what it undoes
        resource = {r.name: r for r in self.all_resources()}
        if any(
            w.mode == "set" and resource[w.resource].isolation in ("reread", "version")
            for w in action.writes
        ):
            return True
        touched = {w.resource for w in action.writes} | set(action.reads)
        return any(
            resource[name].isolation == "semantic_lock" and resource[name].on_locked == "fail"
            for name in touched
        )

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
        """Index in :attr:`steps` of the pivot entry, if it is a top-level step."""
        for index, entry in enumerate(self.steps):
            if isinstance(entry, Step) and entry.kind == "pivot":
                return index
        return None

    @property
    def pivot(self) -> Step | None:
        """The pivot step wherever it is (a choice branch, a sub-saga), if any."""
        return next((s for s in self.all_steps() if s.kind == "pivot"), None)
