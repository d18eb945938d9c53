"""The compiled machine of an orchestrated saga as the simulator reads it: lists indexed by
action and state numbers, each edge worked out once (target, carry of attempts, bookkeeping).

:class:`Plan` serves :mod:`sagasim.sim.orchestration` (SimPy) and :mod:`sagasim.sim.fast`.
"""

from __future__ import annotations

import functools
import math

from statemachine import StateMachine

from ..exceptions import SagaSimError
from ..machine.orchestration import CRASH, OUTCOMES, compile_saga
from ..machine.participants import Participants
from ..machine.program import core, decision_events, ends
from ..model import Choice, walk
from ..model.saga import Action, Compensation, Saga
from .traces import containers_of

__all__ = ["DECIDING", "FAIL", "KINDS", "OK", "REJECT", "TIMEOUT", "Decision", "Effects"]
__all__ += ["Ledger", "Move", "Plan", "plan"]

KINDS = ("ok", "fail", "reject", "timeout")
OK, FAIL, REJECT, TIMEOUT = range(4)
MEMO_LIMIT = 10_000  # ledgers remembered per edge, in case counts keep growing

Ledger = tuple[int, ...]
#: The participants' calls an edge makes, and the ledgers they turned into which: the calls are
#: pure functions, so a ledger met again is updated by one look-up.
Effects = tuple[tuple[tuple[str, str], ...], dict[Ledger, Ledger]]
#: ``(target state, carry, is a retry, event, effects or None)``: one edge, worked out once;
#: ``carry[j]``: where the target's ``j``-th running action ran in the source (-1: it starts).
Move = tuple[int, tuple[int, ...], bool, str, Effects | None]
#: A choice's branches: the cumulative probability bound of each, and the edge it takes.
Decision = tuple[list[float], list[Move]]
#: The outcome code of a state deciding a choice (end states have their index in OUTCOMES).
DECIDING = -2


class Plan:
    """What the simulator looks up per event, in lists indexed by action and state numbers."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga = core(saga)
        self.machine = machine = compile_saga(saga)
        self.people = people = Participants(saga)
        self.actions: list[Action] = list(saga.actions())
        self.names = names = [a.name for a in self.actions]
        index = {name: i for i, name in enumerate(names)}
        self.limit = [a.retry.attempts for a in self.actions]
        self.timeout = [
            a.timeout_ms if a.timeout_ms is not None and saga.can_time_out(a) else math.inf
            for a in self.actions
        ]
        self.compensation = [isinstance(a, Compensation) for a in self.actions]
        self.late_tracked = [n in people.pending_index for n in names]
        self.effect = [n in people.effect_index for n in names]
        self.service = [saga.service_of(a) for a in self.actions]
        outages = (saga.service(s).outages for s in self.service)
        self.outages = [tuple((o.start_ms, o.end_ms) for o in out) for out in outages]
        capacities = {s.name: s.capacity for s in saga.services if s.capacity is not None}
        self.capacity = capacities if saga.arrivals else {}
        self.state_ids = list(machine.states)
        self.sindex = {sid: i for i, sid in enumerate(self.state_ids)}
        infos = [machine.states[sid] for sid in self.state_ids]
        self.initial = self.sindex[machine.initial]
        self.running_names = [info.running for info in infos]
        self.running = [tuple(index[a] for a in info.running) for info in infos]
        # outcome[state]: the end state's index in OUTCOMES, DECIDING for a state deciding a
        # choice, -1 elsewhere (one look-up per event tells the three apart)
        self.outcome = [
            OUTCOMES.index(i.outcome) if i.outcome else DECIDING if i.decision else -1
            for i in infos
        ]
        self.fail_names = ends(saga)
        self.fail = [self.fail_names.index(i.fail) + 1 if i.fail else 0 for i in infos]
        self.containers = containers_of(saga.steps)
        self.choices = frozenset(e.name for e in walk(saga.steps) if isinstance(e, Choice))
        # decide[state]: for a state deciding a choice, the cumulative branch probabilities
        # and the edge each branch takes; None elsewhere
        self.chances = decision_events(saga)
        self.decide: list[Decision | None] = [
            self.decision(s) if info.decision else None for s, info in enumerate(infos)
        ]
        # moves[state][position][kind]: the edges with attempts left and with none left
        self.moves: list[list[list[tuple[Move, Move] | None]]] = [
            [[None] * len(KINDS) for _ in running] for running in self.running_names
        ]
        #: crashed[state][position]: the state recovery takes the saga to after a crash of the
        #: coordinator left that action's call in doubt (``ACTION.crash``; -1: no such edge)
        self.crashed = [[-1] * len(running) for running in self.running_names]
        for sid, event in machine.table:
            name, kind = event.rsplit(".", 1)
            if name not in index:  # a decision: see decide
                continue
            s, limit = self.sindex[sid], self.limit[index[name]]
            position = self.running_names[s].index(name)
            if kind == CRASH:  # only with a coordinator that crashes: sagasim.sim.shared
                target = self.sindex[machine.step(sid, event).target]
                for p, running in enumerate(self.running_names[s]):  # each copy of the action
                    if running == name:
                        self.crashed[s][p] = target
                continue
            k = KINDS.index(kind)
            left, exhausted = (machine.step(sid, event, b or limit is None) for b in (True, False))
            self.moves[s][position][k] = tuple(  # type: ignore[assignment]
                self.move(s, position, k, self.sindex[e.target], e.is_retry)
                for e in (left, exhausted)
            )

    def move(self, source: int, position: int, kind: int, target: int, retry: bool) -> Move:
        """The edge from state ``source`` to ``target`` for an event of the action at
        ``position``: as explore's rules read it (carry of attempts, steps given up on)."""
        before, after = self.running_names[source], self.running_names[target]
        name = before[position]
        if set(before) - set(after) - {name}:  # in-flight work is awaited, never cancelled
            edge = f"{name}.{KINDS[kind]} from {self.state_ids[source]}"
            raise SagaSimError(f"{self.saga.name}: {edge} drops an action in flight")
        carry = tuple(before.index(a) if a in before else -1 for a in after)
        # explore's rules, in its order: the event's own call, then each step given up on
        people, calls = self.people, []
        if kind == OK and (name in people.effect_index or name in people.undoes):
            calls.append(("ok", name))
        elif kind == TIMEOUT and name in people.pending_index:
            calls.append(("timed_out", name))
        calls.extend(
            ("gave_up", a)
            for a in before
            if a not in after and not (kind == OK and a == name) and a in people.effect_index
        )
        effects: Effects | None = (tuple(calls), {}) if calls else None
        return (target, carry, retry, f"{name}.{KINDS[kind]}", effects)

    def crash_move(self, source: int, position: int, target: int) -> Move | None:
        """The ``ACTION.crash`` edge from ``source`` to ``target`` (-1: none) for the action at
        ``position`` (:mod:`sagasim.sim.shared`): what runs in both states goes on; the steps
        given up on are, except the step in doubt when its own compensation runs."""
        if target < 0:
            return None
        people = self.people
        before, after = self.running_names[source], self.running_names[target]
        name = before[position]
        carry = tuple(before.index(a) if a in before else -1 for a in after)
        if target == source:  # the same state: every attempt in flight stays where it is
            carry = tuple(range(len(before)))
        undone = set(people.undoes.values())
        calls = tuple(
            ("gave_up", a)
            for a in before
            if a not in after and a in people.effect_index and not (a == name and a in undone)
        )
        return (target, carry, False, f"{name}.{CRASH}", (calls, {}) if calls else None)

    def decision(self, source: int) -> Decision:
        """The branches of the choice state ``source`` decides: the cumulative probabilities
        of its edges, in the machine's order, and the edges."""
        total, bounds, moves = 0.0, [], []
        for e in self.machine.transitions_from(self.state_ids[source]):
            total += self.chances[e.event][2]
            bounds.append(total)
            moves.append(self.decision_move(source, self.sindex[e.target], e.event))
        bounds[-1] = math.inf  # rounding never leaves a draw without a branch
        return bounds, moves

    def decision_move(self, source: int, target: int, event: str) -> Move:
        """A choice's branch taken at once: what runs goes on running, nothing lands."""
        before, after = self.running_names[source], self.running_names[target]
        carry = tuple(before.index(a) if a in before else -1 for a in after)
        return (target, carry, False, event, None)

    def fire_decision(self, live: StateMachine, event: str) -> int:
        """The state the live python-statemachine instance reaches on a branch event."""
        live.send(event)
        (state,) = live.configuration
        return self.sindex[state.id]

    def fire(self, live: StateMachine, source: int, position: int, kind: int) -> Move:
        """The edge the live python-statemachine instance takes (``driver="library"``)."""
        live.send(f"{self.running_names[source][position]}.{KINDS[kind]}")
        (state,) = live.configuration
        target = self.sindex[state.id]
        return self.move(source, position, kind, target, retry=target == source)

    def ledger_after(self, effects: Effects, ledger: Ledger) -> Ledger:
        """Apply an edge's participants' calls to ``ledger``, in order."""
        calls, memo = effects
        after = memo.get(ledger)
        if after is None:
            after = ledger
            for call, action in calls:
                after = getattr(self.people, call)(after, action)
            if len(memo) < MEMO_LIMIT:
                memo[ledger] = after
        return after


@functools.lru_cache(maxsize=8)
def plan(saga: Saga) -> Plan:
    """The plan of ``saga``, once per process: later chunks reuse its tables and memos."""
    return Plan(saga)
