"""The state space of a saga: its compiled machine together with the participants' effects.

A state is ``(machine state, attempt numbers of the running actions, ledger)``. From each state
every action in flight can end its attempt ``ok``, ``fail``, ``reject`` or ``timeout`` (only
the outcomes with probability > 0), the machine's table says where that leads, and
:class:`~sagasim.machine.participants.Participants` says what it did to the effects. A timed-out
attempt that may land later adds two more events at any later point: ``ACTION.late_ok`` (it
lands) and, when the participant can fail it, ``ACTION.late_fail`` (it never lands).

Exploration is breadth-first with integer state ids and parent pointers, so the first end state
found with a property is one at the fewest events from the start: a *shortest* counterexample.
It is fast because a state splits in two parts that repeat across many states: a *control*
(machine state and attempt numbers), which alone decides the orchestrator's moves, and a
*ledger*, which alone decides the late landings. Both are interned as integers and their moves
worked out once each (:class:`_Memo`); the search then numbers the states a BFS level at a
time, on arrays (:mod:`sagasim.verify.search`).
With ``participants=False`` only the orchestrator is explored (what :mod:`sagasim.analysis`
turns into a Markov chain).

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="s", steps=(
...     Step(name="a", compensation=Compensation(name="undo_a", failure=0.1)),
...     Step(name="b", kind_declared="pivot", reject=0.5),
... ))
>>> space = explore(saga)
>>> sorted(space.outcomes_reachable())
['committed', 'compensated', 'stuck']
>>> space.trace_to(space.first_end["stuck"])
['a.ok', 'b.reject', 'undo_a.fail']
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from ..exceptions import StateSpaceLimitError
from ..machine.orchestration import Machine, compile_saga
from ..machine.participants import Ledger, Participants
from ..machine.program import core
from ..model.saga import Retry, Saga
from .search import Ints, breadth_first

#: Counts (applications, pending late attempts) saturate here so the space stays finite.
CAP = 2
DEFAULT_MAX_STATES = 1_000_000
#: Exponential backoff without a cap is followed this many attempts (2**64 times the delay).
MAX_TRACKED_ATTEMPTS = 64

Node = tuple[str, tuple[int, ...], Ledger]
#: ``(source, target, action, kind)``
Edge = tuple[int, int, str, str]


@dataclass(slots=True, kw_only=True)
class Paths:
    """Shortest paths and end states of a breadth-first search (parent pointers from state 0).

    ``parent[i]`` and ``via[i]`` give the edge BFS first reached state ``i`` by; ``edges``
    lists ``(source, target, action, kind)`` (a search appends to it); ``states`` and
    ``transitions`` count states and edges; ``ends`` maps each end state to its ``(outcome,
    anomalies)``; ``first_end`` maps an outcome or anomaly to the first (so shortest) end
    state that has it.
    """

    parent: list[int] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    ends: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    first_end: dict[str, int] = field(default_factory=dict)
    _edges: list[Edge] | None = field(default=None, init=False, repr=False)

    @property
    def edges(self) -> list[Edge]:
        if self._edges is None:
            self._edges = []
        return self._edges

    @property
    def states(self) -> int:
        return len(self.parent)  # one parent pointer a state

    @property
    def transitions(self) -> int:
        return len(self.edges)

    def outcomes_reachable(self) -> set[str]:
        return {outcome for outcome, _ in self.ends.values()}

    def anomalies_reachable(self) -> set[str]:
        return {a for _, anomalies in self.ends.values() for a in anomalies}

    def trace_to(self, index: int) -> list[str]:
        """The events, in order, on the shortest path from the start to state ``index``."""
        trace: list[str] = []
        while index:
            trace.append(self.via[index])
            index = self.parent[index]
        return trace[::-1]


@dataclass(slots=True, kw_only=True)
class StateSpace(Paths):
    """Every reachable state (``nodes[i]`` is state ``i``), the edges between them and the end
    states by property (see :class:`Paths`).

    :func:`explore` keeps what it found as interned ids (:class:`_Found`); ``nodes`` and
    ``edges`` are made from them on first use. ``check`` only counts them (``states``,
    ``transitions``), and a million tuples cost more to make and to keep (and for the cyclic
    collector to walk) than the whole search without them."""

    saga: Saga
    machine: Machine
    participants: Participants | None
    _nodes: list[Node] | None = field(default=None, init=False, repr=False)
    _found: _Found | None = field(default=None, init=False, repr=False)

    @property
    def nodes(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = [] if self._found is None else self._found.nodes()
        return self._nodes

    @nodes.setter
    def nodes(self, nodes: list[Node]) -> None:
        self._nodes = nodes

    @property
    def edges(self) -> list[Edge]:
        if self._edges is None:
            self._edges = [] if self._found is None else self._found.edges()
        return self._edges

    @property
    def transitions(self) -> int:
        if self._edges is None and self._found is not None:
            return len(self._found.targets)
        return len(self.edges)

    def to_networkx(self) -> Any:
        """The state space as a DiGraph: node attrs ``label``, ``outcome``, ``anomalies``,
        ``bad``; edge attrs ``event``, ``action``, ``kind``."""
        import networkx as nx

        from ..machine.orchestration import CONSISTENT

        graph = nx.DiGraph()
        for i, (sid, attempts, ledger) in enumerate(self.nodes):
            outcome, anomalies = self.ends.get(i, (None, ()))
            bad = outcome is not None and (
                outcome not in CONSISTENT or any(a != "empty_compensation" for a in anomalies)
            )
            label = sid if not attempts else f"{sid} {attempts}"
            graph.add_node(
                i, label=label, outcome=outcome, anomalies=anomalies, bad=bad, ledger=ledger
            )
        for source, target, action, kind in self.edges:
            graph.add_edge(source, target, event=f"{action}.{kind}", action=action, kind=kind)
        return graph


def explore(
    saga: Saga,
    *,
    participants: bool = True,
    timed: bool = False,
    max_states: int = DEFAULT_MAX_STATES,
) -> StateSpace:
    """Explore every reachable state of ``saga``; raise :class:`StateSpaceLimitError` past
    ``max_states``.

    Attempt numbers of bounded actions are always tracked (they decide the guard). Those of
    unbounded actions matter only for the backoff delay, so they are tracked only when
    ``timed`` and only until the delay stops growing (:func:`_saturation`).
    """
    saga = core(saga)
    machine = compile_saga(saga)
    people = Participants(saga, cap=CAP) if participants else None
    space = StateSpace(saga=saga, machine=machine, participants=people)
    memo = _Memo(saga, machine, people, timed)
    initial = machine.initial
    control = memo.control(initial, tuple(1 for _ in machine.states[initial].running))
    ledger = memo.ledger(people.initial if people else ())

    def too_many(explored: int, transitions: int) -> StateSpaceLimitError:
        return StateSpaceLimitError(
            f"{saga.name}: more than {max_states:,} states after exploring "
            f"{explored:,} of them ({transitions:,} transitions so far); "
            "fewer retries, shorter parallel branches or idempotent/rejects_late "
            "timeouts shrink it, or raise --max-states"
        )

    # Many small acyclic tuples: the cyclic collector would only walk them again and again
    # while they are made.
    collecting = gc.isenabled()
    gc.disable()
    try:
        controls, ledgers, targets = breadth_first(
            memo, space, (control, ledger), max_states, too_many
        )
        space._found = _Found(
            controls=controls,
            ledgers=ledgers,
            targets=targets,
            named=memo.controls,
            values=memo.ledgers,
            moves={
                sid: tuple((m.action, m.kind) for m in moves)
                for sid, moves in memo.state_moves.items()
            },
            late=memo.late_moves,
            deciding={sid for sid, info in machine.states.items() if info.decision is not None},
        )
    finally:
        if collecting:
            gc.enable()
    return space


@dataclass(slots=True, kw_only=True)
class _Found:
    """What a search found, as ids: each state's control and ledger, each edge's target (in
    order). The rest of an edge is the same for every state of its machine state (its moves)
    or of its ledger (its late events), and is read from there."""

    controls: Ints  # per state
    ledgers: Ints  # per state
    targets: Ints  # per edge
    named: list[tuple[str, tuple[int, ...]]]  # per control: (machine state, attempts)
    values: list[Ledger]  # per ledger id
    moves: dict[str, tuple[tuple[str, str], ...]]  # per machine state: (action, kind) in order
    late: list[tuple[_Late, ...] | None]  # per ledger id (None: never expanded)
    deciding: set[str]  # machine states without late events (see search.py)

    def nodes(self) -> list[Node]:
        """Every state ``(machine state, attempts, ledger)``, by state id."""
        sids, attempts = [c[0] for c in self.named], [c[1] for c in self.named]
        return list(
            zip(
                map(sids.__getitem__, self.controls.tolist()),
                map(attempts.__getitem__, self.controls.tolist()),
                map(self.values.__getitem__, self.ledgers.tolist()),
            )
        )

    def edges(self) -> list[Edge]:
        """Every edge ``(source, target, action, kind)``, in the order the search found them."""
        edges: list[Edge] = []
        add, target = edges.append, iter(self.targets.tolist()).__next__
        sids = [c[0] for c in self.named]
        moves, late, deciding = self.moves, self.late, self.deciding
        pairs = zip(self.controls.tolist(), self.ledgers.tolist())
        for source, (control, ledger) in enumerate(pairs):
            sid = sids[control]
            for action, kind in moves[sid]:
                add((source, target(), action, kind))
            if sid not in deciding:
                for action, kind, _, _, _ in late[ledger] or ():
                    add((source, target(), action, kind))
        return edges


def _saturation(retry: Retry) -> int:
    """The attempt number from which an unbounded action's backoff delay no longer changes."""
    if retry.backoff == "fixed" or retry.delay_ms == 0 or retry.multiplier == 1:
        return 1
    k = 1
    while k < MAX_TRACKED_ATTEMPTS and retry.nominal_delay_ms(k + 1) != retry.nominal_delay_ms(k):
        k += 1
    return k + 1


class _Ledgers:
    """Interned ledgers: an id for each ledger met, and the late events out of each (None
    until the search first expands it)."""

    def __init__(self) -> None:
        self.values: list[Ledger] = []
        self.ids: dict[Ledger, int] = {}
        self.late: list[tuple[_Late, ...] | None] = []

    def intern(self, ledger: Ledger) -> int:
        i = self.ids.get(ledger)
        if i is None:
            i = self.ids[ledger] = len(self.values)
            self.values.append(ledger)
            self.late.append(None)
        return i


class _LedgerStep(dict[int, int]):
    """What one orchestrator move does to the participants: ledger id -> ledger id after it.

    ``calls`` are the :class:`Participants` functions the move makes, in order, each with the
    action it names. Ledgers repeat across many states, so each is worked out on first use
    and then read from the dict. (It holds the ledgers, not the whole :class:`_Memo`, so that
    no reference cycle keeps a finished search's tables alive until the next collection.)
    """

    __slots__ = ("calls", "ledgers", "people")

    def __init__(
        self, people: Participants, ledgers: _Ledgers, calls: tuple[tuple[str, str], ...]
    ) -> None:
        super().__init__()
        self.people = people
        self.ledgers = ledgers
        self.calls = calls

    def __missing__(self, ledger: int) -> int:
        after = self.ledgers.values[ledger]
        for function, action in self.calls:
            after = getattr(self.people, function)(after, action)
        self[ledger] = result = self.ledgers.intern(after)
        return result


@dataclass(slots=True, eq=False)
class _Branch:
    """Where a move leads in one machine state, given whether its action has attempts left."""

    target: str
    pick: Callable[[tuple[int, ...]], tuple[int, ...]]  # see _picker
    retry: bool  # a retry loop: the action's attempt number goes one up
    ledger_step: _LedgerStep | None  # None: the ledger stays as it is


@dataclass(slots=True, eq=False)
class _Move:
    """One way an attempt can end in one machine state, worked out once per state."""

    position: int
    action: str
    kind: str
    event: str
    limit: int | None
    saturation: int  # an unbounded action's attempt number stops growing here
    left: _Branch  # while attempts are left
    exhausted: _Branch  # once they are not (the same object when that makes no difference)
    #: Attempts below ``bound`` take ``left``; a retry below ``counted`` counts one up (the
    #: two tests of :func:`retry_left` and of saturation, as plain comparisons).
    bound: int = field(init=False)
    counted: int = field(init=False)

    def __post_init__(self) -> None:
        self.bound = sys.maxsize if self.limit is None else self.limit
        self.counted = self.saturation if self.limit is None else sys.maxsize


def _picker(carry: tuple[int, ...]) -> Callable[[tuple[int, ...]], tuple[int, ...]]:
    """A function from ``(*attempts, 1)`` to the target's attempt numbers: ``carry[k]`` is the
    index of the target's ``k``-th running action among the source's, -1 (the trailing 1) for
    an action that starts now."""
    if len(carry) > 1:
        return itemgetter(*carry)
    if carry:
        index = carry[0]
        return lambda padded: (padded[index],)
    return lambda padded: ()


#: One edge out of a control: (target control, its states by ledger, ledger step, action,
#: kind, event).
_Edge = tuple[int, dict[int, int], "_LedgerStep | None", str, str, str]
#: One late event out of a ledger: (action, kind, event, ledger id if the action is running,
#: ledger id if not).
_Late = tuple[str, str, str, int, int]


class _Memo:
    """Interned controls ``(machine state, attempts)`` and ledgers, and their moves.

    A state is a control and a ledger; the orchestrator's moves depend on the control alone
    and the late landings on the ledger alone (plus which actions run), so each is worked out
    once per control or ledger, when the search first expands one, and reused by every state
    that shares it.
    """

    def __init__(
        self, saga: Saga, machine: Machine, people: Participants | None, timed: bool
    ) -> None:
        self.machine = machine
        self.people = people
        self.outcomes = {
            a.name: (
                saga.possible_events(a),
                a.retry.attempts,
                _saturation(a.retry) if timed else 1,
            )
            for a in saga.actions()
        }
        self.controls: list[tuple[str, tuple[int, ...]]] = []
        self.control_ids: dict[tuple[str, tuple[int, ...]], int] = {}
        #: For each control, the state id of each ledger id met with it.
        self.states: list[dict[int, int]] = []
        #: The edges out of each control and the late events out of each ledger (None until
        #: the search first expands it).
        self.control_moves: list[tuple[_Edge, ...] | None] = []
        self.running: list[frozenset[str]] = []  # the actions running, per control
        #: Per control: whether its machine state decides a choice (no time passes there, so
        #: no late landing happens in it).
        self.deciding: list[bool] = []
        self.running_sets: dict[str, frozenset[str]] = {}  # the same, per machine state
        self.ledger_table = _Ledgers()
        self.ledgers = self.ledger_table.values
        self.late_moves = self.ledger_table.late
        self.state_moves: dict[str, list[_Move]] = {}
        self.ledger_steps: dict[tuple[tuple[str, str], ...], _LedgerStep] = {}

    def control(self, sid: str, attempts: tuple[int, ...]) -> int:
        key = (sid, attempts)
        i = self.control_ids.get(key)
        if i is None:
            i = self.control_ids[key] = len(self.controls)
            self.controls.append(key)
            self.states.append({})
            self.control_moves.append(None)
            running = self.running_sets.get(sid)
            if running is None:
                running = self.running_sets[sid] = frozenset(self.machine.states[sid].running)
            self.running.append(running)
            self.deciding.append(self.machine.states[sid].decision is not None)
        return i

    def ledger(self, ledger: Ledger) -> int:
        return self.ledger_table.intern(ledger)

    def expand_control(self, control: int) -> tuple[_Edge, ...]:
        """The orchestrator's moves from ``control``: their targets and effects on ledgers."""
        sid, attempts = self.controls[control]
        padded = (*attempts, 1)
        known, states = self.control_ids, self.states
        edges = []
        for move in self.moves_of(sid):
            attempt = padded[move.position]  # the trailing 1 for a move that starts an action
            branch = move.left if attempt < move.bound else move.exhausted
            new_attempts = branch.pick(padded)
            if branch.retry and attempt < move.counted:
                p = move.position
                new_attempts = (*new_attempts[:p], attempt + 1, *new_attempts[p + 1 :])
            target = known.get((branch.target, new_attempts))
            if target is None:
                target = self.control(branch.target, new_attempts)
            edges.append(
                (target, states[target], branch.ledger_step, move.action, move.kind, move.event)
            )
        self.control_moves[control] = result = tuple(edges)
        return result

    def expand_ledger(self, ledger: int) -> tuple[_Late, ...]:
        """The late landings (and losses) of timed-out attempts still pending in ``ledger``."""
        late: list[_Late] = []
        people = self.people
        if people is not None:
            value = self.ledgers[ledger]
            for action, kind, keep in people.late_landings(value):
                if kind == "late_fail":
                    lost = self.ledger(people.lost(value, action))
                    late.append((action, kind, f"{action}.{kind}", lost, lost))
                    continue
                # its step still running, or not: the ledger knows no machine state
                running = people.land_late(value, action, (action,), still_saturated=keep)
                idle = people.land_late(value, action, (), still_saturated=keep)
                late.append(
                    (action, kind, f"{action}.{kind}", self.ledger(running), self.ledger(idle))
                )
        self.late_moves[ledger] = result = tuple(late)
        return result

    def record_end(self, space: StateSpace, i: int, control: int, ledger: int) -> None:
        sid = self.controls[control][0]
        info = self.machine.states[sid]
        assert info.outcome is not None, f"state {sid} has no way out"
        anomalies = self.people.anomalies(self.ledgers[ledger]) if self.people else ()
        space.ends[i] = (info.outcome, anomalies)
        for key in (info.outcome, *anomalies):
            space.first_end.setdefault(key, i)

    def moves_of(self, sid: str) -> list[_Move]:
        """Every way an attempt can end in machine state ``sid``, in a fixed order."""
        moves = self.state_moves.get(sid)
        if moves is not None:
            return moves
        machine, running = self.machine, self.machine.states[sid].running
        moves = self.state_moves[sid] = []
        if machine.states[sid].decision is not None:
            for edge in machine.transitions_from(sid):
                after = machine.states[edge.target].running
                carry = tuple(running.index(a) if a in running else -1 for a in after)
                branch = _Branch(edge.target, _picker(carry), False, None)
                moves.append(_Move(-1, edge.action, edge.kind, edge.event, None, 1, branch, branch))
            return moves
        for position, name in enumerate(running):
            possible, limit, saturation = self.outcomes[name]
            for kind in possible:
                event = f"{name}.{kind}"
                branches: list[_Branch] = []
                edges = [
                    machine.step(sid, event, retry_left=b or limit is None) for b in (True, False)
                ]
                for edge in edges:
                    if branches and edge is edges[0]:  # unguarded: one branch serves both
                        branches.append(branches[0])
                        continue
                    after = machine.states[edge.target].running
                    carry = tuple(running.index(a) if a in running else -1 for a in after)
                    gone = [
                        a for a in running if a not in after and not (kind == "ok" and a == name)
                    ]
                    branches.append(
                        _Branch(
                            edge.target,
                            _picker(carry),
                            edge.is_retry,
                            self.ledger_step(name, kind, gone),
                        )
                    )
                moves.append(
                    _Move(position, name, kind, event, limit, saturation, branches[0], branches[1])
                )
        return moves

    def ledger_step(self, action: str, kind: str, gone: list[str]) -> _LedgerStep | None:
        """The participants' calls an attempt of ``action`` ending ``kind`` makes, or None when
        none of them can change a ledger (the frequent case: no effect tracked)."""
        people = self.people
        if people is None:
            return None
        calls: list[tuple[str, str]] = []
        if kind == "ok" and (action in people.undoes or action in people.effect_index):
            calls.append(("ok", action))
        elif kind == "timeout" and action in people.pending_index:
            calls.append(("timed_out", action))
        calls.extend(("gave_up", step) for step in gone if step in people.effect_index)
        if not calls:
            return None
        key = tuple(calls)
        step = self.ledger_steps.get(key)
        if step is None:
            step = self.ledger_steps[key] = _LedgerStep(people, self.ledger_table, key)
        return step
