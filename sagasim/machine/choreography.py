"""Choreography: the same saga as services that react to events, with no coordinator.

With ``coordination: choreography`` every step is performed by its service when the events it
waits for arrive over the broker, and the service publishes what happened. Each step's part is
a *role*, a small state machine::

    waiting --start--> running --ok--> done --undo--> undoing --ok--> undone
       |                  |                               |
       +--skip--> skipped +--(rejected, exhausted)--> failed  +--(rejected, exhausted)--> stuck

A step with ``compensate_on_failure`` goes from ``running`` to ``self_undoing`` instead, runs
its own compensation, and is ``failed`` (and says so) once that succeeded.

A service's python-statemachine class is the explicit product of the roles it performs (most
services perform one). The events on the broker are ``STEP.done`` and ``STEP.failed`` when a
step ends, ``STEP.skipped`` when it is halted before it starts, ``COMPENSATION.done`` and
``COMPENSATION.failed`` when an undo ends. Who listens to what follows from the saga's shape
(:func:`roles`):

* **forward**: a step starts once the ``done`` of every step before it has arrived (the steps
  of a parallel group all wait for the entry before the group; the entry after a group joins
  the ``done`` of every branch); the first entry starts with the saga;
* **halting**: a step in a parallel group that has not started never starts once a step of
  another branch has failed (in-flight work is awaited, never cancelled);
* **backward**: a step with a compensation, before the pivot, is undone once it is done and a
  later (or concurrent) step up to the pivot has failed; in ``parallel`` order it undoes at
  once; in ``reverse`` order it first waits until each of the nearest later compensatable
  steps is known to hold no effect: undone (``COMPENSATION.done``), failed (``STEP.failed``),
  skipped (``STEP.skipped``, published when a failure halts it before it starts) or never to
  start (a step it needs has failed). So the undos cascade back as the orchestrator orders
  them, and a step whose success is still in flight is waited for;
* **duplicates**: a service that is not ``idempotent`` applies a duplicated event again: a
  duplicated trigger applies the step's effect a second time (``STEP.again``), a duplicated
  failure undoes once more (``STEP.undo_again``), as soon as the first run is over and without
  publishing anything new; one that is idempotent deduplicates by saga id.

Nobody decides the end: an instance is over when nothing runs and no message is in flight, and
its end state is read from the roles (:meth:`Choreography.outcome`): ``committed`` when every
step is done; ``stuck`` when an undo or a step after the pivot gave up, or when the saga stalled
(a message lost, say) with work neither finished nor undone; otherwise, after a failure,
``leaked`` when an effect without compensation stays and ``compensated`` when nothing does.

The same participants' bookkeeping as orchestration (:mod:`sagasim.machine.participants`) says what
landed, so duplicate effects, hanging and late leaks mean the same in both styles.

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="pay", coordination="choreography", steps=(
...     Step(name="reserve", service="inventory", compensation=Compensation(name="release")),
...     Step(name="charge", service="payments", kind_declared="pivot", reject=0.1),
... ))
>>> chor = compile_choreography(saga)
>>> sorted(chor.services)
['inventory', 'payments']
>>> chor.role("charge").triggers, sorted(chor.role("reserve").failures)
(frozenset({'reserve.done'}), ['charge.failed'])
>>> sorted(chor.services["payments"].states)
['charge_done', 'charge_failed', 'charge_running', 'charge_waiting']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from statemachine import State, StateMachine

from ..exceptions import SagaSimError
from ..model.saga import Action, Saga, Step, line_of
from .orchestration import RETRY_GUARD, Transition, build_class, retry_left, table_from_class
from .participants import Ledger, Participants
from .program import straight_line_only

__all__ = ["Choreography", "Role", "ServiceMachine", "compile_choreography"]

#: A service performing several steps has the product of their roles as its machine: beyond
#: this many states it is refused rather than built (python-statemachine's checks are slow).
MAX_SERVICE_STATES = 5_000
#: Moves remembered (they repeat across instances and states) before the memo starts afresh.
MEMO_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class Role:
    """One step's part in the choreography: what it waits for and what it listens to.

    ``triggers`` must all arrive before the step starts (none: it starts with the saga);
    any of ``aborts`` makes a waiting step never start; any of ``failures`` means the saga is
    failing and the step, once done, must be undone (``compensation``; None when nothing is
    undone: no compensation, or at or after the pivot); ``waits`` are the later steps (and
    their compensations) whose undo comes first, in ``reverse`` order, and ``clears`` (one set
    per wait) the events any of which says that step holds no effect to undo first.
    """

    step: str
    service: str
    compensation: str | None
    effects: bool
    after_pivot: bool
    idempotent: bool
    undo_idempotent: bool
    triggers: frozenset[str]
    aborts: frozenset[str]
    failures: frozenset[str]
    waits: tuple[tuple[str, str], ...]
    clears: tuple[frozenset[str], ...] = ()

    @property
    def subscriptions(self) -> frozenset[str]:
        """Every event this role must be told about."""
        return self.triggers | self.aborts | self.failures | frozenset().union(*self.clears)


class _Place(NamedTuple):
    entry: int
    branch: int
    position: int


def roles(saga: Saga) -> tuple[Role, ...]:
    """The roles of ``saga``'s steps, in step order (see the module docstring for the rules)."""
    entries = line_of(saga)
    pivot = len(entries) if saga.pivot_index is None else saga.pivot_index
    place: dict[str, _Place] = {}
    steps: dict[str, Step] = {}
    for e, branches in enumerate(entries):
        for b, branch in enumerate(branches):
            for k, step in enumerate(branch):
                place[step.name], steps[step.name] = _Place(e, b, k), step

    def later(x: str, y: str) -> bool:
        """Whether ``y`` can only start after ``x`` is done."""
        px, py = place[x], place[y]
        return py.entry > px.entry or (py[:2] == px[:2] and py.position > px.position)

    def concurrent(x: str, y: str) -> bool:
        px, py = place[x], place[y]
        return px.entry == py.entry and px.branch != py.branch

    def before(name: str) -> frozenset[str]:
        e, b, k = place[name]
        if k > 0:
            return frozenset({f"{entries[e][b][k - 1].name}.done"})
        if e == 0:
            return frozenset()
        return frozenset(f"{branch[-1].name}.done" for branch in entries[e - 1])

    def undoes(name: str) -> bool:
        return steps[name].compensation is not None and place[name].entry < pivot

    result = []
    for name, step in steps.items():
        failing = [y for y in steps if place[y].entry <= pivot and y != name]
        failures = frozenset(
            f"{y}.failed" for y in failing if later(name, y) or concurrent(name, y)
        )
        waits: tuple[tuple[str, str], ...] = ()
        clears: tuple[frozenset[str], ...] = ()
        if undoes(name) and saga.compensation_order == "reverse":
            after = [y for y in steps if undoes(y) and later(name, y)]
            nearest = [y for y in after if not any(later(z, y) for z in after)]
            waits = tuple((y, _compensation_name(steps[y])) for y in nearest)
            halted = {y for y, _ in waits if any(concurrent(y, w) for w in steps)}
            clears = tuple(
                frozenset({f"{c}.done", f"{y}.failed"})
                | ({f"{y}.skipped"} if y in halted else set())
                | (failures & {f"{z}.failed" for z in failing if later(z, y)})  # y never starts
                for y, c in waits
            )
        compensation = steps[name].compensation
        result.append(
            Role(
                step=name,
                service=step.service_name,
                compensation=compensation.name if compensation and undoes(name) else None,
                effects=step.effects,
                after_pivot=place[name].entry > pivot,
                idempotent=step.idempotent,
                undo_idempotent=bool(compensation and compensation.idempotent),
                triggers=before(name),
                aborts=frozenset(f"{y}.failed" for y in steps if concurrent(name, y)),
                failures=failures if undoes(name) else frozenset(),
                waits=waits,
                clears=clears,
            )
        )
    return tuple(result)


def _compensation_name(step: Step) -> str:
    assert step.compensation is not None
    return step.compensation.name


# --- each service's machine -------------------------------------------------------------------

#: A role's own edges: (source, event, target, guard).
RoleEdge = tuple[str, str, str, str | None]


def _attempt_edges(
    saga: Saga, action: Action, running: str, ok: str, failed: str
) -> list[RoleEdge]:
    """How attempts of ``action`` end, as in the orchestrated machine (same events, same guard)."""
    edges: list[RoleEdge] = []
    attempts = action.retry.attempts
    for kind in saga.possible_events(action):
        event = f"{action.name}.{kind}"
        if kind == "ok":
            edges.append((running, event, ok, None))
        elif kind == "reject" or attempts == 1:
            edges.append((running, event, failed, None))
        else:
            edges.append((running, event, running, RETRY_GUARD))
            if attempts is not None:
                edges.append((running, event, failed, "!" + RETRY_GUARD))
    return edges


def role_edges(saga: Saga, role: Role) -> list[RoleEdge]:
    """Every transition of one role's machine."""
    step = saga.step(role.step)
    x = role.step
    edges: list[RoleEdge] = [("waiting", f"{x}.start", "running", None)]
    if role.aborts:
        edges.append(("waiting", f"{x}.skip", "skipped", None))
    undoes_itself = step.compensate_on_failure and role.compensation is not None
    edges += _attempt_edges(
        saga, step, "running", "done", "self_undoing" if undoes_itself else "failed"
    )
    if undoes_itself:  # its own compensation first; the step has failed once that is over
        assert step.compensation is not None
        edges += _attempt_edges(saga, step.compensation, "self_undoing", "failed", "stuck")
    if not role.idempotent:
        edges.append(("done", f"{x}.again", "done", None))  # a duplicated trigger, applied
    if role.compensation is not None:
        assert step.compensation is not None
        edges.append(("done", f"{x}.undo", "undoing", None))
        edges += _attempt_edges(saga, step.compensation, "undoing", "undone", "stuck")
        if not role.undo_idempotent:
            edges.append(("undone", f"{x}.undo_again", "undone", None))  # a duplicated failure
    return edges


@dataclass(slots=True)
class ServiceMachine:
    """One service's machine: the product of its roles' machines, as a python-statemachine class.

    ``states`` maps each state id to the state of each role (in ``roles`` order); ``table``
    maps ``(state, event)`` to its edges, read back from :attr:`machine_class`.
    """

    name: str
    roles: tuple[Role, ...]
    states: dict[str, tuple[str, ...]]
    transitions: list[Transition]
    machine_class: type[StateMachine]
    table: dict[tuple[str, str], tuple[Transition, ...]] = field(default_factory=dict)
    index: dict[tuple[str, ...], str] = field(default_factory=dict)

    def step(self, state: str, event: str, retry_left: bool = False) -> str:
        """The state ``event`` leads to from ``state``, given whether attempts are left."""
        for t in self.table[(state, event)]:
            if t.guard is None or (t.guard == RETRY_GUARD) == retry_left:
                return t.target
        raise KeyError((state, event))


def _state_id(roles: tuple[Role, ...], states: tuple[str, ...]) -> str:
    return "__".join(f"{r.step}_{s}" for r, s in zip(roles, states))


def _service_machine(saga: Saga, name: str, members: tuple[Role, ...]) -> ServiceMachine:
    edges = [role_edges(saga, role) for role in members]
    start = tuple("waiting" for _ in members)
    seen = {start: _state_id(members, start)}
    queue, found = deque([start]), []
    while queue:
        config = queue.popleft()
        for i, role_edges_i in enumerate(edges):
            for source, event, target, guard in role_edges_i:
                if config[i] != source:
                    continue
                after = (*config[:i], target, *config[i + 1 :])
                if after not in seen:
                    seen[after] = _state_id(members, after)
                    queue.append(after)
                    if len(seen) > MAX_SERVICE_STATES:
                        raise SagaSimError(
                            f"{saga.name}: service {name} performs {len(members)} steps; its "
                            f"machine would have more than {MAX_SERVICE_STATES:,} states "
                            "(split it into services that perform fewer steps)"
                        )
                found.append(Transition(seen[config], event, seen[after], guard))
    states = {sid: config for config, sid in seen.items()}
    machine_class = _build_class(saga.name, name, states, found)
    machine = ServiceMachine(name, members, states, table_from_class(machine_class), machine_class)
    for t in machine.transitions:
        machine.table[(t.source, t.event)] = (*machine.table.get((t.source, t.event), ()), t)
    machine.index = dict(seen)
    return machine


def _build_class(
    saga_name: str, service: str, states: dict[str, tuple[str, ...]], edges: list[Transition]
) -> type[StateMachine]:
    sources = {t.source for t in edges}
    made = {
        sid: State(name=sid, initial=i == 0, final=sid not in sources)
        for i, sid in enumerate(states)
    }
    title = "".join(p.title() for p in f"{saga_name}_{service}".split("_")) + "Service"
    # A role at rest in ``done`` or ``undone`` is not final: a duplicated event may wake it
    # (and, with unbounded retries, its loop never reaches a final state). An instance ends
    # when the whole composition is quiet, never by one service's final state.
    return build_class(title, made, edges, validate_final_reachability=False)


# --- the composition's semantics --------------------------------------------------------------


class Local(NamedTuple):
    """What the services hold for one saga instance: each service's state, the attempt number
    of each running action (0: not running), the events each role has seen, and the ledger."""

    services: tuple[str, ...]
    attempts: tuple[int, ...]
    seen: tuple[frozenset[str], ...]
    ledger: Ledger


class Move(NamedTuple):
    """What one event did: the new local state, the actions that began an attempt (their first,
    or a retry), the events published, and the events the services' machines took."""

    local: Local
    started: tuple[str, ...]
    published: tuple[str, ...]
    fired: tuple[str, ...]


class Choreography:
    """A saga compiled to one machine per service, and the rules by which they interact.

    Every method is a pure function of a :class:`Local`: the checker explores them with the
    broker's messages alongside, the simulator drives them in time.
    """

    def __init__(self, saga: Saga, cap: int | None = None) -> None:
        self.saga = saga
        self.roles = roles(saga)
        self.role_index = {r.step: i for i, r in enumerate(self.roles)}
        members: dict[str, list[Role]] = {}
        for role in self.roles:
            members.setdefault(role.service, []).append(role)
        self.services = {
            name: _service_machine(saga, name, tuple(group)) for name, group in members.items()
        }
        self.service_names = list(self.services)
        self.where = {  # role -> (service index, position in the service's roles)
            role.step: (self.service_names.index(role.service), group.index(role))
            for group in members.values()
            for role in group
        }
        self.actions = [a.name for a in saga.actions()]
        self.action_index = {name: i for i, name in enumerate(self.actions)}
        self.role_of = {r.step: r for r in self.roles}
        for role in self.roles:
            if role.compensation is not None:
                self.role_of[role.compensation] = role
        self.subscribers: dict[str, tuple[str, ...]] = {}
        for role in self.roles:
            for event in sorted(role.subscriptions):
                self.subscribers[event] = (*self.subscribers.get(event, ()), role.step)
        self.people = Participants(saga, cap=cap)
        self._memo: dict[tuple[Local, str, str], Move] = {}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n} {len(m.states)}" for n, m in self.services.items())
        return f"<Choreography {self.saga.name}: {sizes}>"

    def role(self, step: str) -> Role:
        return self.role_of[step]

    # --- reading a local state
    def state_of(self, local: Local, step: str) -> str:
        s, position = self.where[step]
        return self.services[self.service_names[s]].states[local.services[s]][position]

    def running(self, local: Local) -> list[str]:
        """The actions with an attempt in flight."""
        return [a for a, n in zip(self.actions, local.attempts) if n]

    def outcome(self, local: Local) -> str:
        """The end state of a quiescent instance (see the module docstring)."""
        states = {r.step: self.state_of(local, r.step) for r in self.roles}
        if any(s == "stuck" for s in states.values()):
            return "stuck"
        if any(s == "failed" and self.role_of[x].after_pivot for x, s in states.items()):
            return "stuck"
        if all(s == "done" for s in states.values()):
            return "committed"
        if not any(s == "failed" for s in states.values()):
            return "stuck"  # stalled going forward
        left = [self.role_of[x] for x, s in states.items() if s == "done"]
        if any(role.compensation is not None for role in left):
            return "stuck"  # stalled going backward
        return "leaked" if any(role.effects for role in left) else "compensated"

    # --- what happens
    def begin(self) -> Move:
        """A new instance: the steps that wait for nothing start."""
        names = self.service_names
        local = Local(
            services=tuple(
                self.services[n].index[("waiting",) * len(self.services[n].roles)] for n in names
            ),
            attempts=(0,) * len(self.actions),
            seen=tuple(frozenset() for _ in self.roles),
            ledger=self.people.initial,
        )
        fired: list[str] = []
        for role in self.roles:
            if not role.triggers:
                local = self._attempts(self._fire(local, fired, f"{role.step}.start"), role.step, 1)
        starts = tuple(event.rsplit(".", 1)[0] for event in fired)
        return Move(local, starts, (), tuple(fired))

    def attempt_ended(self, local: Local, action: str, kind: str) -> Move:
        """An attempt of ``action`` ended ``kind`` as its service sees it."""
        return self._remembered((local, action, kind), self._attempt_ended)

    def deliver(self, local: Local, event: str, step: str) -> Move:
        """``event`` arrives at the service performing ``step``."""
        return self._remembered((local, event, step), self._deliver)

    def _remembered(self, key: tuple[Local, str, str], work: Callable[..., Move]) -> Move:
        """Moves are pure and local states repeat across instances: each is worked out once."""
        move = self._memo.get(key)
        if move is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            move = self._memo[key] = work(*key)
        return move

    def _attempt_ended(self, local: Local, action: str, kind: str) -> Move:
        role = self.role_of[action]
        attempt = local.attempts[self.action_index[action]]
        limit = self.saga.action(action).retry.attempts
        retry = kind in ("fail", "timeout") and retry_left(limit, attempt)
        fired: list[str] = []
        local = self._fire(local, fired, f"{action}.{kind}", retry)
        people, ledger = self.people, local.ledger
        if kind == "ok":
            ledger = people.ok(ledger, action)
        elif kind == "timeout":
            ledger = people.timed_out(ledger, action)
        if retry:  # an unbounded action's attempt number changes nothing: it stays 1
            following = attempt + 1 if limit is not None else attempt
            local = self._attempts(local._replace(ledger=ledger), action, following)
            return Move(local, (action,), (), tuple(fired))
        local = self._attempts(local._replace(ledger=ledger), action, 0)
        state = self.state_of(local, role.step)
        if state == "self_undoing":  # failed for good: it undoes itself before it says so
            assert role.compensation is not None
            local = local._replace(ledger=people.gave_up(local.ledger, role.step))
            local = self._attempts(local, role.compensation, 1)
            return Move(local, (role.compensation,), (), tuple(fired))
        published = {
            "done": f"{role.step}.done",
            "failed": f"{role.step}.failed",
            "undone": f"{action}.done",
            "stuck": f"{action}.failed",
        }[state]
        if state == "failed":
            local = local._replace(ledger=people.gave_up(local.ledger, role.step))
        local, started, also = self._settle(local, role, fired)
        return Move(local, started, (published, *also), tuple(fired))

    def _deliver(self, local: Local, event: str, step: str) -> Move:
        role = self.role_of[step]
        i = self.role_index[step]
        seen = local.seen[i]
        fired: list[str] = []
        if event not in seen:
            local = local._replace(seen=(*local.seen[:i], seen | {event}, *local.seen[i + 1 :]))
            local, started, published = self._settle(local, role, fired)
            return Move(local, started, published, tuple(fired))
        # A duplicate: applied again unless the service deduplicates it; one that arrives
        # while the work it repeats is running is applied once that work is over (a service
        # takes its messages one at a time).
        state = self.state_of(local, step)
        if event in role.triggers and not role.idempotent:
            again, running, over = f"{step}.again", "running", "done"
        elif event in role.failures and not role.undo_idempotent:
            again, running, over = f"{step}.undo_again", "undoing", "undone"
        else:
            return Move(local, (), (), ())
        if state == over:
            local = self._again(local, role, again, fired)
        elif state == running:
            local = local._replace(seen=(*local.seen[:i], seen | {again}, *local.seen[i + 1 :]))
        return Move(local, (), (), tuple(fired))

    def land(self, local: Local, action: str, ok: bool) -> Local:
        """A timed-out attempt of ``action`` lands late (``ok``) or is lost at its participant."""
        people = self.people
        if not ok:
            return local._replace(ledger=people.lost(local.ledger, action))
        return local._replace(ledger=people.land_late(local.ledger, action, self.running(local)))

    def service_of_event(self, event: str) -> str:
        """The service whose machine has ``event`` (``STEP.start``, ``COMPENSATION.ok``, ...)."""
        return self.role_of[event.rsplit(".", 1)[0]].service

    # --- helpers
    def _again(self, local: Local, role: Role, again: str, fired: list[str]) -> Local:
        """Apply a duplicated trigger (``STEP.again``) or failure (``STEP.undo_again``)."""
        local = self._fire(local, fired, again)
        action = role.step if again.endswith(".again") else role.compensation
        assert action is not None
        return local._replace(ledger=self.people.ok(local.ledger, action))

    def _settle(
        self, local: Local, role: Role, fired: list[str]
    ) -> tuple[Local, tuple[str, ...], tuple[str, ...]]:
        """What the role does of its own accord once it knows more: start, skip or undo (and
        apply a duplicate that arrived while it was busy); the actions started and the events
        published."""
        state = self.state_of(local, role.step)
        i = self.role_index[role.step]
        seen = local.seen[i]
        waiting = {"done": f"{role.step}.again", "undone": f"{role.step}.undo_again"}.get(state)
        if waiting in seen:
            local = self._again(local, role, waiting, fired)
            seen = seen - {waiting}
            local = local._replace(seen=(*local.seen[:i], seen, *local.seen[i + 1 :]))
        if state == "waiting":
            if seen & role.aborts:
                return self._fire(local, fired, f"{role.step}.skip"), (), (f"{role.step}.skipped",)
            if role.triggers <= seen:
                local = self._fire(local, fired, f"{role.step}.start")
                return self._attempts(local, role.step, 1), (role.step,), ()
        elif (
            state == "done"
            and role.compensation is not None
            and seen & role.failures
            and all(seen & clear for clear in role.clears)
        ):
            local = self._fire(local, fired, f"{role.step}.undo")
            return self._attempts(local, role.compensation, 1), (role.compensation,), ()
        return local, (), ()

    def _fire(self, local: Local, fired: list[str], event: str, retry: bool = False) -> Local:
        """Take ``event`` in its service's machine, and note it in ``fired``."""
        s, _ = self.where[self.role_of[event.rsplit(".", 1)[0]].step]
        machine = self.services[self.service_names[s]]
        target = machine.step(local.services[s], event, retry)
        fired.append(event)
        return local._replace(services=(*local.services[:s], target, *local.services[s + 1 :]))

    def _attempts(self, local: Local, action: str, value: int) -> Local:
        a = self.action_index[action]
        return local._replace(attempts=(*local.attempts[:a], value, *local.attempts[a + 1 :]))


_CACHE: dict[tuple[Saga, int | None], Choreography] = {}


def compile_choreography(saga: Saga, cap: int | None = None) -> Choreography:
    """The choreography of ``saga`` (whatever its ``coordination`` says), built once per saga.

    ``cap`` saturates the participants' counts, as the checker needs. A saga that uses the
    graph model (choices, ends, jumps, maps, sub-sagas, self-compensation) is refused with one
    line: its roles cannot be read off a straight line of steps yet.

    >>> from sagasim.model import Fail, Saga, Step
    >>> compile_choreography(Saga(name="s", steps=(Step(name="a"), Fail(name="no"))))
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaSimError: s: steps[1] is a fail entry (no), which a choreography ...
    """
    why = "services react to a straight line of steps and parallel groups; run it orchestrated"
    straight_line_only(
        saga, "a choreography", f"{why} (coordination: orchestration)", self_undo=True
    )
    key = (replace(saga, coordination="choreography"), cap)
    cached = _CACHE.get(key)
    if cached is None:
        cached = _CACHE[key] = Choreography(key[0], cap)
    return cached
