"""The state space of a saga: its compiled machine together with the participants' effects.

A state is ``(machine state, attempt numbers of the running actions, ledger)``. From each state
every action in flight can end its attempt ``ok``, ``fail``, ``reject`` or ``timeout`` (only
the outcomes with probability > 0), the machine's table says where that leads, and
:class:`~sagasim.participants.Participants` says what it did to the effects. A timed-out
attempt that may land later adds two more events at any later point: ``ACTION.late_ok`` (it
lands) and, when the participant can fail it, ``ACTION.late_fail`` (it never lands).

Exploration is breadth-first with integer state ids and parent pointers, so the first end state
found with a property is one at the fewest events from the start: a *shortest* counterexample.
With ``participants=False`` only the orchestrator is explored (what :mod:`sagasim.analysis`
turns into a Markov chain).

Examples
--------
>>> from sagasim.model import Saga, Step, Compensation
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

from collections.abc import Iterator
from dataclasses import dataclass, field

import networkx as nx

from .exceptions import StateSpaceLimitError
from .machine import Machine, compile_saga
from .model import Retry, Saga
from .participants import Ledger, Participants

#: Counts (applications, pending late attempts) saturate here so the space stays finite.
CAP = 2
DEFAULT_MAX_STATES = 1_000_000
#: Exponential backoff without a cap is followed this many attempts (2**64 times the delay).
MAX_TRACKED_ATTEMPTS = 64

Node = tuple[str, tuple[int, ...], Ledger]


@dataclass(slots=True)
class StateSpace:
    """Every reachable state, the edges between them and the end states by property.

    ``nodes[i]`` is state ``i``; ``parent[i]`` and ``via[i]`` give the edge BFS first reached it
    by; ``edges`` lists ``(source, target, action, kind)``; ``ends`` maps each end state to its
    ``(outcome, anomalies)``; ``first_end`` maps an outcome or anomaly to the first (so
    shortest) end state that has it.
    """

    saga: Saga
    machine: Machine
    participants: Participants | None
    nodes: list[Node] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    edges: list[tuple[int, int, str, str]] = field(default_factory=list)
    ends: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    first_end: dict[str, int] = field(default_factory=dict)

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

    def to_networkx(self) -> nx.DiGraph:
        """The state space as a DiGraph: node attrs ``label``, ``outcome``, ``anomalies``,
        ``bad``; edge attrs ``event``, ``action``, ``kind``."""
        from .machine import CONSISTENT

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
    machine = compile_saga(saga)
    people = Participants(saga, cap=CAP) if participants else None
    space = StateSpace(saga=saga, machine=machine, participants=people)
    index: dict[Node, int] = {}
    moves = _moves(saga, machine, timed)
    running = {sid: info.running for sid, info in machine.states.items()}
    start: Node = (
        machine.initial,
        tuple(1 for _ in machine.states[machine.initial].running),
        people.initial if people else (),
    )
    index[start] = 0
    space.nodes.append(start)
    space.parent.append(-1)
    space.via.append("")
    frontier = 0
    while frontier < len(space.nodes):
        node = space.nodes[frontier]
        successors = list(_successors(moves, running, people, node))
        if not successors:
            _record_end(space, frontier, node)
        for target, action, kind in successors:
            j = index.get(target)
            if j is None:
                j = index[target] = len(space.nodes)
                if j >= max_states:
                    raise StateSpaceLimitError(
                        f"{saga.name}: more than {max_states:,} states after exploring "
                        f"{frontier:,} of them ({len(space.edges):,} transitions so far); "
                        "fewer retries, shorter parallel branches or idempotent/rejects_late "
                        "timeouts shrink it, or raise --max-states"
                    )
                space.nodes.append(target)
                space.parent.append(frontier)
                space.via.append(f"{action}.{kind}")
            space.edges.append((frontier, j, action, kind))
        frontier += 1
    return space


def _record_end(space: StateSpace, i: int, node: Node) -> None:
    info = space.machine.states[node[0]]
    assert info.outcome is not None, f"state {node[0]} has no way out"
    anomalies = space.participants.anomalies(node[2]) if space.participants else ()
    space.ends[i] = (info.outcome, anomalies)
    for key in (info.outcome, *anomalies):
        space.first_end.setdefault(key, i)


def _saturation(retry: Retry) -> int:
    """The attempt number from which an unbounded action's backoff delay no longer changes."""
    if retry.backoff == "fixed" or retry.delay_ms == 0 or retry.multiplier == 1:
        return 1
    k = 1
    while k < MAX_TRACKED_ATTEMPTS and retry.nominal_delay_ms(k + 1) != retry.nominal_delay_ms(k):
        k += 1
    return k + 1


@dataclass(frozen=True, slots=True)
class _Move:
    """One way an attempt can end in one machine state, worked out once per state."""

    position: int
    action: str
    kind: str
    limit: int | None
    saturation: int  # an unbounded action's attempt number stops growing here
    targets: tuple[str, str]  # (attempts left, attempts exhausted)
    carry: tuple[tuple[int, ...], tuple[int, ...]]  # attempt indices kept, per target
    gone: tuple[tuple[str, ...], tuple[str, ...]]  # actions given up on, per target
    retry: tuple[bool, bool]


def _moves(saga: Saga, machine: Machine, timed: bool) -> dict[str, list[_Move]]:
    outcomes = {
        a.name: (a.attempt_outcomes, a.retry.attempts, _saturation(a.retry) if timed else 1)
        for a in saga.actions()
    }
    table: dict[str, list[_Move]] = {}
    for sid, info in machine.states.items():
        moves = table[sid] = []
        for position, name in enumerate(info.running):
            probabilities, limit, saturation = outcomes[name]
            for kind, p in probabilities.items():
                if p <= 0:
                    continue
                edges = [
                    machine.step(sid, f"{name}.{kind}", retry_left=b or limit is None)
                    for b in (True, False)
                ]
                carry, gone = [], []
                for edge in edges:
                    target = machine.states[edge.target]
                    carry.append(
                        tuple(
                            info.running.index(a) if a in info.running else -1
                            for a in target.running
                        )
                    )
                    gone.append(
                        tuple(
                            a
                            for a in info.running
                            if a not in target.running and not (kind == "ok" and a == name)
                        )
                    )
                moves.append(
                    _Move(
                        position,
                        name,
                        kind,
                        limit,
                        saturation,
                        (edges[0].target, edges[1].target),
                        (carry[0], carry[1]),
                        (gone[0], gone[1]),
                        (edges[0].is_retry, edges[1].is_retry),
                    )
                )
    return table


def _successors(
    moves: dict[str, list[_Move]],
    running: dict[str, tuple[str, ...]],
    people: Participants | None,
    node: Node,
) -> Iterator[tuple[Node, str, str]]:
    sid, attempts, ledger = node
    for move in moves[sid]:
        attempt = attempts[move.position]
        which = 0 if move.limit is None or attempt < move.limit else 1
        carry = move.carry[which]
        new_attempts = tuple(attempts[i] if i >= 0 else 1 for i in carry)
        if move.retry[which] and (move.limit is not None or attempt < move.saturation):
            new_attempts = (
                *new_attempts[: move.position],
                attempt + 1,
                *new_attempts[move.position + 1 :],
            )
        new_ledger = ledger
        if people is not None:
            if move.kind == "ok":
                new_ledger = people.ok(new_ledger, move.action)
            elif move.kind == "timeout":
                new_ledger = people.timed_out(new_ledger, move.action)
            for gone in move.gone[which]:
                new_ledger = people.gave_up(new_ledger, gone)
        yield (move.targets[which], new_attempts, new_ledger), move.action, move.kind
    if people is not None:
        for action in people.pending(ledger):
            landed = people.land_late(ledger, action, running[sid])
            yield (sid, attempts, landed), action, "late_ok"
            if action in people.may_be_lost:
                yield (sid, attempts, people.lost(ledger, action)), action, "late_fail"
