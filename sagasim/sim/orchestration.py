"""Orchestrated saga instances under SimPy, driven by the compiled machine.

Each saga instance is a SimPy process (a plain generator). In every state of the machine each
running action has one attempt in flight; the process sleeps until the first ends as the
orchestrator sees it (``ok``, ``fail``, ``reject``, ``timeout``), takes the machine's edge for it
(from the transition table, or the live python-statemachine instance) and applies the
participants' bookkeeping exactly as :mod:`sagasim.verify.statespace` does. Recovery, halting
and retries are the machine's: nothing here re-implements them.

An attempt samples its latency ``L``; at a service with a ``capacity`` it first queues for a
:class:`simpy.Resource` (the wait ``W`` counts towards latency and the timeout clock). It fails
if it starts service during one of the service's outages, else is rejected with ``reject``, else
fails with ``failure``, else succeeds. With a timeout ``t`` and ``W + L > t`` the orchestrator
sees ``timeout`` at ``t`` while the participant's own outcome happens at ``W + L``: a success
then *lands late* (unless the action ``rejects_late``), a failure is *lost*.

With ``saga.arrivals``, instances arrive as a Poisson process into one environment and share the
services (one chunk). Without, each instance runs on an idle system with its own clock from 0
(outage windows count from its start; capacities never queue), in chunks of ``chunk_size``
seeded from ``SeedSequence(seed).spawn(n)``: the same seed gives the same results whatever the
number of workers. Random numbers are drawn in numpy batches, one ``Generator`` per chunk.

Examples
--------
>>> from sagasim.model import Compensation, Constant, Retry, Saga, Step
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", latency=Constant(value_ms=20),
...          compensation=Compensation(name="release", latency=Constant(value_ms=5))),
...     Step(name="charge", kind_declared="pivot", latency=Constant(value_ms=50), failure=0.3,
...          retry=Retry(attempts=2, delay_ms=100)),
... ))
>>> run_chunk(saga, 7, np.random.SeedSequence(7), first=0, n=1_000, trace_limit=0).outcomes
{'committed': 909, 'compensated': 91, 'leaked': 0, 'stuck': 0}
"""

from __future__ import annotations

import functools
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy
from simpy.resources.resource import Request
from statemachine import StateMachine

from ..exceptions import EndlessRetryError, SagaSimError
from ..machine import orchestration as machine
from ..machine.orchestration import OUTCOMES, compile_saga
from ..machine.participants import Participants
from ..machine.program import core, decision_events, ends
from ..model import Choice, walk
from ..model.saga import Action, Compensation, Saga
from .results import Results, ServiceStats, assemble, empty_columns
from .traces import Span, TraceEvent, containers_of

__all__ = ["Chunk", "plan", "run_chunk"]

#: Random numbers drawn at once per action: enough to amortise numpy's call overhead, no more
#: than a chunk is likely to use (a single traced instance draws 16 at a time).
BLOCK = 2048
KINDS = ("ok", "fail", "reject", "timeout")
OK, FAIL, REJECT, TIMEOUT = range(4)
INT16_MAX, UINT16_MAX = 32767, 65535
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
        for sid, event in machine.table:
            name, kind = event.rsplit(".", 1)
            if name not in index:  # a decision: see decide
                continue
            s, limit = self.sindex[sid], self.limit[index[name]]
            position, k = self.running_names[s].index(name), KINDS.index(kind)
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


@dataclass(slots=True, eq=False)
class _Flight:
    """One attempt in flight: when the orchestrator sees it end and how (``due``, ``kind``);
    the participant's outcome and when it happens (``code``, ``finish``: None until a queued
    attempt gets its server). A queued attempt also has ``ready`` (triggered when ``due`` is
    known), ``latency``, its ``request`` and ``consumed`` (the orchestrator saw it time out)."""

    action: int
    attempt: int
    start: float
    due: float
    kind: int
    finish: float | None
    code: int
    ready: simpy.Event | None = None
    latency: float = 0.0
    request: Request | None = None
    consumed: bool = False


@dataclass(slots=True, eq=False)
class _Instance:
    """The live state of one saga instance, shared with its late-landing callbacks."""

    slot: int
    ledger: Ledger
    events: list[TraceEvent] | None  # None when not traced, as spans
    spans: list[Span] | None
    sid: int = 0
    origin: float = 0.0  # where the instance's clock starts: outages and traces count from it
    start: float = 0.0
    first_effect: float | None = None
    retries: int = 0
    compensations: int = 0
    calls: int = 0


class Chunk:
    """One SimPy environment running ``n`` instances; fills compact per-instance arrays."""

    def __init__(
        self, plan: Plan, rng: np.random.Generator, n: int, first: int, trace_limit: int
    ) -> None:
        self.plan, self.rng, self.n, self.first = plan, rng, n, first
        self.block = max(16, min(BLOCK, n))
        self.trace_limit, self.library = trace_limit, False
        self.env = env = simpy.Environment()
        self.shared = plan.saga.arrivals is not None
        resources = {name: simpy.Resource(env, cap) for name, cap in plan.capacity.items()}
        self.resource = [resources.get(s) for s in plan.service]
        self.queued = bool(resources)
        k = len(plan.names)
        self.draws: list[list[tuple[float, int]]] = [[] for _ in range(k)]
        self.branch_draws: list[float] = []  # uniforms for decisions, drawn in batches too
        self.jitter: list[list[float]] = [[] for _ in range(k)]
        self.delays: list[list[float]] = [[] for _ in range(k)]
        self.attempts, self.busy, self.wait = [0] * k, [0.0] * k, [0.0] * k
        self.columns = empty_columns(n)
        self.traced: list[_Instance] = []
        self.is_compensation, self.outages = plan.compensation, plan.outages
        self.timeout, self.late_tracked = plan.timeout, plan.late_tracked

    # --- random numbers, drawn in batches per action
    def _refill(self, a: int) -> list[tuple[float, int]]:
        action, rng = self.plan.actions[a], self.rng
        latency = np.asarray(action.latency.sample(rng, self.block), dtype=np.float64)
        u = rng.random(self.block)
        r, f = action.reject, action.failure
        code = np.where(u < r, REJECT, np.where(u < r + (1 - r) * f, FAIL, OK))
        self.draws[a] = buf = list(zip(latency.tolist(), code.tolist()))
        return buf

    def _backoff(self, a: int, failed: int) -> float:
        """The wait after the ``failed``-th failed attempt of action ``a``."""
        delays, retry = self.delays[a], self.plan.actions[a].retry
        while len(delays) < failed:
            try:
                delays.append(retry.nominal_delay_ms(len(delays) + 1))
            except OverflowError:
                delays.append(math.inf)
        delay = delays[failed - 1]
        if delay > 0 and retry.jitter:
            if not self.jitter[a]:
                self.jitter[a] = self.rng.random(self.block).tolist()
            delay *= self.jitter[a].pop()
        return delay

    # --- attempts
    def _in_outage(self, a: int, t: float) -> bool:
        return any(start <= t < end for start, end in self.outages[a])

    def _begin(self, inst: _Instance, a: int, attempt: int, at: float) -> _Flight:
        """Start attempt number ``attempt`` of action ``a`` at time ``at`` (now or later)."""
        if attempt > machine.MAX_ATTEMPTS:
            name, slot = self.plan.names[a], self.first + inst.slot
            raise EndlessRetryError.of(self.plan.saga.name, name, machine.MAX_ATTEMPTS, slot)
        latency, code = (self.draws[a] or self._refill(a)).pop()
        self.attempts[a] += 1
        inst.calls += 1
        if self.is_compensation[a]:
            inst.compensations += 1
        if self.resource[a] is not None:
            return self._queue(inst, _Flight(a, attempt, at, at, TIMEOUT, None, code), latency)
        if self.outages[a] and self._in_outage(a, at - inst.origin):
            code = FAIL
        self.busy[a] += latency
        t = self.timeout[a]
        if latency > t:
            return _Flight(a, attempt, at, at + t, TIMEOUT, at + latency, code)
        return _Flight(a, attempt, at, at + latency, code, at + latency, code)

    def _queue(self, inst: _Instance, flight: _Flight, latency: float) -> _Flight:
        """An attempt at a service with a capacity: it asks for a server at ``flight.start``;
        until it gets one, only its deadline is known."""
        flight.due, flight.latency = flight.start + self.timeout[flight.action], latency
        delay = flight.start - self.env.now
        if delay > 0:
            flight.ready = self.env.event()
            self.env.timeout(delay).callbacks.append(lambda _e: self._request(inst, flight))
        else:
            self._request(inst, flight)
        return flight

    def _request(self, inst: _Instance, flight: _Flight) -> None:
        request = self.resource[flight.action].request()  # type: ignore[union-attr]
        request.callbacks.append(lambda _e: self._served(inst, flight, request))
        if flight.ready is None:  # asked at once: the process can wait for the request itself
            flight.ready = request

    def _served(self, inst: _Instance, f: _Flight, request: Request) -> None:
        """A queued attempt got its server: its outcome and finish are known now. The server is
        released when the orchestrator takes its event, or at the finish after a timeout."""
        env, a = self.env, f.action
        now = env.now
        self.wait[a] += now - f.start
        if self.outages[a] and self._in_outage(a, now - inst.origin):
            f.code = FAIL
        self.busy[a] += f.latency
        f.finish = now + f.latency
        if f.consumed or (now - f.start) + f.latency > self.timeout[a]:
            env.timeout(f.latency).callbacks.append(lambda _e: request.resource.release(request))  # type: ignore[arg-type]
            if f.consumed and self.late_tracked[a]:
                self._schedule_late(inst, f)
        else:
            f.due, f.kind, f.request = f.finish, f.code, request
        if f.ready is not request and not f.consumed:
            f.ready.succeed()  # type: ignore[union-attr]

    def _schedule_late(self, inst: _Instance, f: _Flight) -> None:
        delay = max(f.finish - self.env.now, 0.0)  # type: ignore[operator]
        self.env.timeout(delay).callbacks.append(lambda _e: self._land(inst, f))

    def _land(self, inst: _Instance, f: _Flight) -> None:
        """A timed-out attempt's participant outcome: it lands late, or is lost."""
        plan, a = self.plan, f.action
        name = plan.names[a]
        if f.code == OK:
            inst.ledger = plan.people.land_late(inst.ledger, name, plan.running_names[inst.sid])
            if plan.effect[a] and inst.first_effect is None:
                inst.first_effect = self.env.now
        else:
            inst.ledger = plan.people.lost(inst.ledger, name)
        self.columns["anomaly_flags"][inst.slot] = inst.ledger[-1]
        if inst.events is not None:
            event = f"{name}.late_ok" if f.code == OK else f"{name}.late_fail"
            t = self.env.now - inst.origin
            inst.events.append(TraceEvent(t, event, plan.state_ids[inst.sid]))

    # --- instances
    def _instance(self, inst: _Instance) -> Generator[simpy.Event, Any, None]:
        """One saga instance, from its first attempts to an end state."""
        env, plan = self.env, self.plan
        moves, limits, running, outcome_of = plan.moves, plan.limit, plan.running, plan.outcome
        ledger_after, late_tracked, effect = plan.ledger_after, plan.late_tracked, plan.effect
        begin, queued, timeout = self._begin, self.queued, env.timeout
        live = plan.machine.instantiate(plan.saga) if self.library else None
        t0 = inst.start = env.now
        if not self.shared:
            inst.origin = t0
        sid = inst.sid = plan.initial
        flights = [begin(inst, a, 1, t0) for a in running[sid]]
        if outcome_of[sid] == DECIDING:
            sid, flights = self._decide(inst, sid, flights, live)
            if outcome_of[sid] >= 0:
                return self._finish(inst, outcome_of[sid], env.now)
        while True:
            f, pos = flights[0], 0
            if len(flights) > 1:
                for j, g in enumerate(flights):
                    if g.due < f.due:
                        f, pos = g, j
            if queued:  # wake up when a queued attempt gets its server, or at the first due
                waits = [g.ready for g in flights if g.finish is None and g.ready is not None]
                if waits and f.due > env.now:
                    if f.due < math.inf:
                        waits.append(timeout(f.due - env.now))
                    yield waits[0] if len(waits) == 1 else env.any_of(waits)
                    continue
            delay = f.due - env.now
            if delay > 0:
                yield timeout(delay)
            if f.request is not None:
                f.request.resource.release(f.request)
            now, a, kind = f.due, f.action, f.kind
            if live is None:
                limit = limits[a]
                pair = moves[sid][pos][kind]
                assert pair is not None, (plan.state_ids[sid], plan.names[a], KINDS[kind])
                move = pair[0 if limit is None or f.attempt < limit else 1]
            else:
                move = plan.fire(live, sid, pos, kind)
            target, carry, retried, event, effects = move
            if effects is not None:
                inst.ledger = ledger_after(effects, inst.ledger)
            if kind == OK:
                if effect[a] and inst.first_effect is None:
                    inst.first_effect = now
            elif kind == TIMEOUT:
                f.consumed = True
                if late_tracked[a] and f.finish is not None:
                    self._schedule_late(inst, f)
            inst.sid = target
            if inst.events is not None:
                self._record(inst, f, now, event, target)
            if retried:
                inst.retries += 1
            code = outcome_of[target]
            if code >= 0:
                return self._finish(inst, code, now)
            if retried and len(carry) == 1:
                flights = [begin(inst, a, f.attempt + 1, now + self._backoff(a, f.attempt))]
            elif len(carry) == 1 and carry[0] < 0:
                flights = [begin(inst, running[target][0], 1, now)]
            else:
                started = running[target]
                flights = [
                    begin(inst, started[j], 1, now)
                    if c < 0
                    else begin(inst, a, f.attempt + 1, now + self._backoff(a, f.attempt))
                    if retried and c == pos
                    else flights[c]
                    for j, c in enumerate(carry)
                ]
            sid = target
            if code == DECIDING:  # a choice: decided at once, the work in flight goes on
                sid, flights = self._decide(inst, sid, flights, live)
                if outcome_of[sid] >= 0:
                    return self._finish(inst, outcome_of[sid], env.now)

    def _decide(
        self, inst: _Instance, sid: int, flights: list[_Flight], live: StateMachine | None
    ) -> tuple[int, list[_Flight]]:
        """Draw the branch of the choice state ``sid`` decides, and of each choice reached
        after it at once; return the state they lead to and the attempts in flight there
        (those already in flight, and the first of what starts)."""
        plan, now = self.plan, float(self.env.now)
        while plan.outcome[sid] == DECIDING:
            bounds, moves = plan.decide[sid]  # type: ignore[misc]
            if not self.branch_draws:
                self.branch_draws = self.rng.random(self.block).tolist()
            u = self.branch_draws.pop()
            target, carry, _, event, _ = moves[next(b for b, x in enumerate(bounds) if u < x)]
            if live is not None:
                reached = plan.fire_decision(live, event)
                assert reached == target, (event, plan.state_ids[reached])
            inst.sid = target
            if inst.events is not None:
                inst.events.append(TraceEvent(now - inst.origin, event, plan.state_ids[target]))
            started = plan.running[target]
            flights = [
                self._begin(inst, started[j], 1, now) if c < 0 else flights[c]
                for j, c in enumerate(carry)
            ]
            sid = target
        return sid, flights

    def _record(self, inst: _Instance, f: _Flight, now: float, event: str, target: int) -> None:
        assert inst.events is not None and inst.spans is not None
        plan, t, a = self.plan, inst.origin, f.action
        inst.events.append(TraceEvent(now - t, event, plan.state_ids[target]))
        name, kind, compensation = plan.names[a], KINDS[f.kind], plan.compensation[a]
        inst.spans.append(Span(name, f.attempt, f.start - t, now - t, kind, compensation))

    def _finish(self, inst: _Instance, outcome: int, now: float) -> None:
        slot, columns = inst.slot, self.columns
        columns["outcome"][slot] = outcome
        columns["latency_ms"][slot] = now - inst.start
        columns["start_ms"][slot] = inst.start if self.shared else 0.0
        columns["retries"][slot] = min(inst.retries, INT16_MAX)
        columns["compensations"][slot] = min(inst.compensations, INT16_MAX)
        columns["anomaly_flags"][slot] = inst.ledger[-1]
        columns["messages"][slot] = min(2 * inst.calls, UINT16_MAX)  # command and reply
        columns["fail"][slot] = self.plan.fail[inst.sid]
        window = math.nan
        if inst.compensations > 0 and inst.first_effect is not None:
            window = now - inst.first_effect
        columns["window_ms"][slot] = window

    def _new(self, slot: int) -> _Instance:
        if self.first + slot >= self.trace_limit:
            return _Instance(slot, self.plan.people.initial, None, None)
        self.traced.append(_Instance(slot, self.plan.people.initial, [], []))
        return self.traced[-1]

    def _instances(self) -> Generator[simpy.Event, Any, None]:
        """Poisson arrivals into the shared system, or one instance after another."""
        arrivals = self.plan.saga.arrivals
        if arrivals is None:
            for slot in range(self.n):
                yield from self._instance(self._new(slot))
            return
        gaps = self.rng.exponential(1000.0 / arrivals.rate_per_s, self.n).tolist()
        for slot, gap in enumerate(gaps):
            yield self.env.timeout(gap)
            self.env.process(self._instance(self._new(slot)))

    def run(self, seed: int) -> Results:
        self.env.process(self._instances())
        self.env.run()
        plan, columns = self.plan, self.columns
        services = {s: ServiceStats(s, plan.saga.service(s).capacity) for s in plan.service}
        for a, s in enumerate(plan.service):
            services[s].add(ServiceStats(s, None, self.attempts[a], self.busy[a], self.wait[a]))
        traced = [
            (i.slot, i.start, i.events, i.spans, plan.people.anomalies(i.ledger))
            for i in self.traced
        ]
        horizon = self.env.now if self.shared else None
        return assemble(
            plan.saga.name,
            seed,
            columns,
            services,
            traced,
            first=self.first,
            horizon_ms=horizon,
            fail_names=plan.fail_names,
            containers=plan.containers,
            decisions=plan.choices,
        )


@functools.lru_cache(maxsize=8)
def plan(saga: Saga) -> Plan:
    """The plan of ``saga``, once per process: later chunks reuse its tables and memos."""
    return Plan(saga)


def run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """``n`` instances of ``saga`` from instance number ``first``, self-contained so that it
    can run in another process."""
    return Chunk(plan(saga), np.random.default_rng(seed_seq), n, first, trace_limit).run(seed)
