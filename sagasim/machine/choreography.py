"""Choreography: the same saga as services that react to events, with no coordinator.

With ``coordination: choreography`` every step is performed by its service when the events it
waits for arrive over the broker, and the service publishes what happened. Each step's part is
a *role* (:mod:`sagasim.machine.roles`: its own small machine, and what it listens to); so is
each choice (decided by the service of the step before it), each ``fail`` and each ``succeed``.

A service's python-statemachine class is the explicit product of the roles it performs (most
services perform one). The events on the broker are ``STEP.done`` and ``STEP.failed`` when a
step ends, ``STEP.skipped`` when it is halted before it starts, ``COMPENSATION.done`` and
``COMPENSATION.failed`` when an undo ends, ``CHOICE.LABEL`` when a choice is decided (the same
event orchestration's trace shows, :func:`~sagasim.machine.program.branch_labels`) and
``FAIL.failed`` when a ``fail`` is reached. A decision takes no time: a role that is
``deciding`` is decided before anything else happens to it (:meth:`Choreography.decide`).

* **duplicates**: a service that is not ``idempotent`` applies a duplicated event again: a
  duplicated trigger applies the step's effect a second time (``STEP.again``), a duplicated
  failure undoes once more (``STEP.undo_again``), as soon as the first run is over and without
  publishing anything new; one that is idempotent deduplicates by saga id (a decider, a
  ``fail`` and a ``succeed`` always do: they have no effect to repeat).

Nobody decides the end: an instance is over when nothing runs and no message is in flight, and
its end state is read from the roles (:meth:`Choreography.outcome`): ``committed`` when the
saga's way forward is complete (every step on the branches taken done: the steps of branches
not taken count as skipped) or a ``succeed`` was reached; ``stuck`` when an undo or a step (or
``fail``) after the pivot gave up, or when the saga stalled (a message lost, say) with work
neither finished nor undone; otherwise, after a failure, ``leaked`` when an effect without
compensation stays and ``compensated`` when nothing does. :meth:`Choreography.fail_of` names
the ``fail`` reached, as orchestration's end states do.

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
from ..model import Choice, Saga, Step, walk
from .orchestration import RETRY_GUARD, Transition, build_class, retry_left, table_from_class
from .participants import Ledger, Participants
from .program import straight_line_only
from .roles import Role, exit_condition, role_edges, roles

__all__ = ["Choreography", "Role", "ServiceMachine", "compile_choreography"]

#: A service performing several steps has the product of their roles as its machine: beyond
#: this many states it is refused rather than built (python-statemachine's checks are slow).
MAX_SERVICE_STATES = 5_000
#: Moves remembered (they repeat across instances and states) before the memo starts afresh.
MEMO_LIMIT = 200_000


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
    or a retry), the events published, the events the services' machines took, and the
    choices that are now to be decided (:meth:`Choreography.decide`)."""

    local: Local
    started: tuple[str, ...]
    published: tuple[str, ...]
    fired: tuple[str, ...]
    deciding: tuple[str, ...] = ()


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
        self.finish = exit_condition(saga)
        self.choices = [r.step for r in self.roles if r.kind == "choice"]
        self._memo: dict[tuple[Local, str, str], Move] = {}
        # The same, by the state's identity: hashing a Local (nested tuples, whose hashes are
        # not cached) is the dearer part of a lookup, and the states the simulator passes are
        # nearly always the very objects earlier moves returned. An entry holds its state, so
        # while it exists no other object can have that id.
        self._by_id: dict[tuple[int, str, str], tuple[Local, Move]] = {}
        self._begun: Move | None = None
        self._ends: dict[Local, tuple[str, str | None]] = {}

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

    def deciding(self, local: Local) -> list[str]:
        """The choices whose decider is to decide now."""
        return [c for c in self.choices if self.state_of(local, c) == "deciding"]

    def end(self, local: Local) -> tuple[str, str | None]:
        """:meth:`outcome` and :meth:`fail_of` of a quiescent instance, worked out once per
        local state (they are pure, and end states repeat across instances)."""
        found = self._ends.get(local)
        if found is None:
            if len(self._ends) >= MEMO_LIMIT:
                self._ends.clear()
            found = self._ends[local] = (self.outcome(local), self.fail_of(local))
        return found

    def outcome(self, local: Local) -> str:
        """The end state of a quiescent instance (see the module docstring)."""
        states = {r.step: self.state_of(local, r.step) for r in self.roles}
        if any(s == "stuck" for s in states.values()):
            return "stuck"
        if any(s == "failed" and self.role_of[x].after_pivot for x, s in states.items()):
            return "stuck"
        if self._complete(states):
            return "committed"
        if not any(s == "failed" for s in states.values()):
            return "stuck"  # stalled going forward
        left = [self.role_of[x] for x, s in states.items() if s == "done"]
        if any(role.compensation is not None for role in left):
            return "stuck"  # stalled going backward
        return "leaked" if any(role.effects for role in left) else "compensated"

    def _complete(self, states: dict[str, str]) -> bool:
        """Whether the way forward is over: a ``succeed`` reached, or every step on the
        branches taken done (an event of the saga's end read as the state it leaves: a step
        ``done``, a choice decided that way)."""

        def holds(event: str) -> bool:
            role, what = event.rsplit(".", 1)
            decided = self.role_of[role].kind == "choice"  # a label may read ``done``
            return states[role] == (f"chose_{what}" if decided else "done")

        return any(s == "succeeded" for s in states.values()) or any(
            all(holds(event) for event in alternative) for alternative in self.finish
        )

    def fail_of(self, local: Local) -> str | None:
        """The name of the ``fail`` an instance reached, if it reached one (the first in
        document order)."""
        return next(
            (r.ends for r in self.roles if r.ends and self.state_of(local, r.step) == "failed"),
            None,
        )

    # --- what happens
    def begin(self) -> Move:
        """A new instance: the steps that wait for nothing start (the same move every time,
        worked out once)."""
        if self._begun is None:
            self._begun = self._begin()
        return self._begun

    def _begin(self) -> Move:
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
        started: list[str] = []
        published: list[str] = []
        for role in self.roles:
            if role.with_the_saga:
                local, more, sent = self._settle(local, role, fired)
                started += more
                published += sent
        deciding = tuple(self.deciding(local))
        return Move(local, tuple(started), tuple(published), tuple(fired), deciding)

    def decide(self, local: Local, choice: str, label: str) -> Move:
        """``choice`` takes its branch ``label``: its decider publishes ``CHOICE.LABEL``."""
        found = self._by_id.get((id(local), choice, label))  # looked up here: on every move
        return found[1] if found else self._remember((local, choice, label), self._decide)

    def branch(self, choice: str, u: float) -> str:
        """The label of the branch of ``choice`` that a uniform draw ``u`` in [0, 1) takes
        (the branches in order, each over its probability; one of probability 0 never).

        >>> from sagasim.model import Branch, Choice, Saga, Step
        >>> saga = Saga(name="s", steps=(Step(name="a"), Choice(name="c", branches=(
        ...     Branch(when="yes", probability=0.25), Branch(when="no", default=True)))))
        >>> chor = compile_choreography(saga)
        >>> chor.branch("c", 0.2), chor.branch("c", 0.3)
        ('yes', 'no')
        """
        total, branches = 0.0, self.role_of[choice].branches
        for label, p in branches:
            total += p
            if p > 0 and u < total:
                return label
        return next(label for label, p in reversed(branches) if p > 0)  # rounding

    def _decide(self, local: Local, choice: str, label: str) -> Move:
        fired: list[str] = []
        event = f"{choice}.{label}"
        return Move(self._fire(local, fired, event), (), (event,), tuple(fired))

    def attempt_ended(self, local: Local, action: str, kind: str) -> Move:
        """An attempt of ``action`` ended ``kind`` as its service sees it."""
        found = self._by_id.get((id(local), action, kind))
        return found[1] if found else self._remember((local, action, kind), self._attempt_ended)

    def deliver(self, local: Local, event: str, step: str) -> Move:
        """``event`` arrives at the service performing ``step``."""
        found = self._by_id.get((id(local), event, step))
        return found[1] if found else self._remember((local, event, step), self._deliver)

    def _remember(self, key: tuple[Local, str, str], work: Callable[..., Move]) -> Move:
        """Moves are pure and local states repeat across instances: each is worked out once
        (the callers first look for the state object itself)."""
        move = self._memo.get(key)
        if move is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            move = self._memo[key] = work(*key)
        if len(self._by_id) >= MEMO_LIMIT:
            self._by_id.clear()
        local, first, second = key
        self._by_id[(id(local), first, second)] = (local, move)
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
            now_deciding = role.kind == "choice" and self.state_of(local, step) == "deciding"
            return Move(local, started, published, tuple(fired), (step,) if now_deciding else ())
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
            if seen & role.aborts:  # only a step's skip is heard (a choice's would read as a
                local = self._fire(local, fired, f"{role.step}.skip")  # label ``skipped``)
                return local, (), (f"{role.step}.skipped",) if role.kind == "step" else ()
            if role.ready(seen):
                local = self._fire(local, fired, f"{role.step}.start")
                if role.kind == "fail":  # reached: recovery starts here
                    return local, (), (f"{role.step}.failed",)
                if role.kind != "step":  # a decider now deciding, or a succeed reached
                    return local, (), ()
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


#: Why a choreography refuses each construct it cannot run yet.
_WHY_NOT = {
    what: f"{reason}; run it orchestrated (coordination: orchestration)"
    for what, reason in {
        "a goto": "a service starts a step once, on the events before it, and a jump has it "
        "run again",
        "a map": "its items are copies of one step whose events no service tells apart",
        "a sub-saga": "a child recovers first and as a whole, which no single service sees",
        "a step with compensate_on_failure or max_visits": "a bounded step is reached again by "
        "a goto, which a service cannot run",
    }.items()
}


def compile_choreography(saga: Saga, cap: int | None = None) -> Choreography:
    """The choreography of ``saga`` (whatever its ``coordination`` says), built once per saga.

    ``cap`` saturates the participants' counts, as the checker needs. A saga with a goto, a
    map, a sub-saga, ``max_visits`` or a pivot inside a choice is refused with one line that
    says why.

    >>> from sagasim.model import Goto, Saga, Step
    >>> compile_choreography(Saga(name="s", steps=(Step(name="a"), Goto(target="a"))))
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaSimError: s: steps[1] is a goto (a), which a choreography cannot ...
    """
    straight_line_only(saga, "a choreography", _WHY_NOT, self_undo=True, choices=True)
    _pivot_on_the_line(saga)
    key = (replace(saga, coordination="choreography"), cap)
    cached = _CACHE.get(key)
    if cached is None:
        cached = _CACHE[key] = Choreography(key[0], cap)
    return cached


def _pivot_on_the_line(saga: Saga) -> None:
    """Refuse a pivot inside a choice: whether a later step is past it depends on the branch."""
    for index, entry in enumerate(saga.steps):
        if isinstance(entry, Choice):
            pivot = next(
                (e for e in walk((entry,)) if isinstance(e, Step) and e.kind == "pivot"), None
            )
            if pivot is not None:
                raise SagaSimError(
                    f"{saga.name}: steps[{index}] is a choice ({entry.name}) holding the pivot "
                    f"({pivot.name}), which a choreography cannot run yet: whether a later step "
                    "is past the pivot depends on the branch taken, which no service sees; run "
                    "it orchestrated (coordination: orchestration)"
                )
