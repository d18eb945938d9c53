"""Simulate choreographed sagas with SimPy: services that react to what a broker delivers.

A service takes each message the moment it arrives and hands it to its machine
(:meth:`Choreography.deliver`): reacting takes no time, so a service needs neither an inbox nor
a process of its own. When a role ends a phase its event is published: the broker sends one
message to every subscriber, which arrives after a ``broker.latency`` sample, in order per
subscriber unless it is one of the ``reorder`` fraction (those take their own time); with
probability ``loss`` it is lost, and sent again after the ``redelivery`` policy's delay while
attempts remain; with probability ``duplicate`` a second copy follows. Messages that arrive at
the same moment are taken in the order they were sent. Attempts are as in orchestration
(:mod:`sagasim.sim`): a latency sample ``L``, an outage failing it, ``reject`` then
``failure``, a timeout seen at its deadline while the participant's outcome lands late. With
``saga.arrivals``, an attempt at a service with a ``capacity`` first queues for one of its
servers (first come first served, as :class:`simpy.Resource` grants them), as in orchestration:
the wait ``W`` counts towards latency and the timeout clock, the outage check is made when
service starts, and with a timeout ``t`` and ``W + L > t`` the service sees ``timeout`` at
``t`` while the participant's outcome happens at ``W + L``; the server is held until then.

Everything that happens later is a callback on a bare event the environment schedules, as in
orchestration (:class:`sagasim.sim.waits.Timer`, one list of callbacks shared by the events of
a kind): an attempt's end, a message's arrival, an instance's arrival, a server granted.

An instance is over when no attempt runs and no message is in flight; its end state is the
roles' (:meth:`Choreography.outcome`) and its latency runs to that moment. Late landings after
it still mark its anomalies. Everything else — chunks, seeds, workers, :class:`Results` — is
:func:`sagasim.sim.simulate`'s, which calls this module for a choreographed saga (one with a
``coordinator``, whose services crash through their outboxes, or with resources runs on
:class:`sagasim.sim.choreography_shared.SharedChunk`, this module's chunk with those added).

Examples
--------
>>> from sagasim.model import Broker, Compensation, Saga, Step
>>> from sagasim.model import Constant
>>> saga = Saga(name="pay", coordination="choreography",
...     broker=Broker(latency=Constant(value_ms=2)), steps=(
...     Step(name="reserve", latency=Constant(value_ms=10),
...          compensation=Compensation(name="release", latency=Constant(value_ms=5))),
...     Step(name="charge", kind_declared="pivot", latency=Constant(value_ms=30), reject=0.5),
... ))
>>> from sagasim.sim import simulate_instance
>>> trace = simulate_instance(saga, seed=3)
>>> trace.outcome, trace.latency_ms
('compensated', 49.0)
>>> [event for _, event in trace.timeline if "→" in event or ".ok" in event or "reject" in event]
['reserve.ok', 'reserve.done → charge', 'charge.reject', 'charge.failed → reserve', 'release.ok']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from simpy.events import NORMAL
from statemachine import StateMachine

from ..exceptions import EndlessRetryError, SagaSimError
from ..machine import orchestration as machine
from ..machine.choreography import Choreography, Local, Move, compile_choreography
from ..machine.orchestration import OUTCOMES, retry_left
from ..machine.program import ends
from ..model.saga import Retry, Saga
from .results import Results, ServiceStats, Span, TraceEvent, assemble, empty_columns
from .waits import Callback, Servers, Timer

__all__ = ["run_chunk"]

BLOCK = 1024
INT16_MAX, UINT16_MAX = 32767, 65535
KINDS = ("ok", "fail", "reject", "timeout")
OK, FAIL, REJECT, TIMEOUT = range(4)


@dataclass(slots=True, eq=False)
class _Instance:
    slot: int
    local: Local
    start: float
    origin: float
    events: list[TraceEvent] | None
    spans: list[Span] | None
    live: dict[str, StateMachine] | None = None
    fifo: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0
    messages: int = 0
    retries: int = 0
    compensations: int = 0
    first_effect: float | None = None
    finished: bool = False
    waited: bool = False  # the next independent instance begins once this one is over
    plain: bool = True  # neither traced nor checked against live machines


@dataclass(slots=True, eq=False)
class _Queued:
    """An attempt at a service with a capacity: ``finish`` (its participant's outcome) is None
    until it gets a server; ``late``: its wait and latency overran the timeout; ``seen``: its
    service saw it time out."""

    action: str
    attempt: int
    start: float
    latency: float
    code: int
    finish: float | None = None
    late: bool = False
    seen: bool = False


class _LiveGuard:
    """The model of a live service machine (``driver="library"``): its guard reads the attempt
    numbers of the local state *before* the move being replayed."""

    def __init__(self, chor: Choreography) -> None:
        self.chor = chor
        self.before: Local | None = None
        self.state: Any = None

    def retry_left(self, event: Any, source: Any) -> bool:
        action = str(event.id).rsplit(".", 1)[0]
        assert self.before is not None
        attempt = self.before.attempts[self.chor.action_index[action]]
        return retry_left(self.chor.saga.action(action).retry.attempts, attempt)


class Chunk:
    """One SimPy environment running ``n`` instances of a choreography."""

    def __init__(
        self, saga: Saga, rng: np.random.Generator, n: int, first: int, trace_limit: int
    ) -> None:
        self.saga, self.rng, self.n, self.first = saga, rng, n, first
        self.chor = chor = compile_choreography(saga)
        self.trace_limit, self.library = trace_limit, False
        self.env = env = simpy.Environment()
        self.schedule: Callable[..., None] = env.schedule
        self.shared = saga.arrivals is not None
        self.columns = empty_columns(n)
        self.traced: list[_Instance] = []
        self.ended = 0
        self.broker = broker = saga.broker
        self.loss, self.reorder, self.duplicate = broker.loss, broker.reorder, broker.duplicate
        self.block = max(16, min(BLOCK, n * 4))
        actions = [saga.action(a) for a in chor.actions]
        self.action = dict(zip(chor.actions, actions))
        self.compensation = {a: a not in chor.role_index for a in chor.actions}
        self.timeout = {
            a.name: a.timeout_ms if a.timeout_ms is not None and saga.can_time_out(a) else math.inf
            for a in actions
        }
        self.outages = {
            a.name: [(o.start_ms, o.end_ms) for o in saga.service(saga.service_of(a)).outages]
            for a in actions
        }
        self.draws: dict[str, list[tuple[float, int]]] = {a: [] for a in chor.actions}
        self.uniforms: list[float] = []
        self.delays: list[float] = []
        self.attempts = dict.fromkeys(chor.actions, 0)
        self.busy = dict.fromkeys(chor.actions, 0.0)
        self.wait = dict.fromkeys(chor.actions, 0.0)
        capacities = {s.name: s.capacity for s in saga.services if s.capacity is not None}
        servers = {s: Servers(c, env.schedule) for s, c in capacities.items() if self.shared}
        self.resource = {a.name: servers.get(saga.service_of(a)) for a in actions}
        self.late_tracked = {a: a in chor.people.pending_index for a in chor.actions}
        self.effect = {a: a in chor.people.effect_index for a in chor.actions}
        # what every attempt of an action looks up, in one place
        self.static = {
            a: (self.resource[a], self.outages[a], self.timeout[a], self.compensation[a])
            for a in chor.actions
        }
        self.fail_names = ends(saga)
        self.decisions = frozenset(chor.choices)
        self.started = 0  # instances begun so far
        self.gaps: list[float] = []
        # the callbacks of each kind of event, in lists shared by the events (see Timer)
        self.ended_cbs: list[Callback] = [self._ended_at]
        self.arrive_cbs: list[Callback] = [self._arrive]
        self.call_cbs: list[Callback] = [self._called]
        self.serve_cbs: list[Callback] = [self._served_at]
        self.next_cbs: list[Callback] = [self._next]
        self.arrival_cbs: list[Callback] = [self._arrival]

    # --- random numbers, drawn in batches
    def _refill(self, action: str) -> list[tuple[float, int]]:
        """A new batch of (latency, outcome code) draws for ``action``'s attempts."""
        a, rng = self.action[action], self.rng
        latency = np.asarray(a.latency.sample(rng, self.block), dtype=np.float64)
        u = rng.random(self.block)
        r, f = a.reject, a.failure
        code = np.where(u < r, REJECT, np.where(u < r + (1 - r) * f, FAIL, OK))
        self.draws[action] = buffer = list(zip(latency.tolist(), code.tolist()))
        return buffer

    def _uniform(self) -> float:
        if not self.uniforms:
            self.uniforms = self.rng.random(self.block).tolist()
        return self.uniforms.pop()

    def _refill_delays(self) -> list[float]:
        """A new batch of broker latencies."""
        sample = self.broker.latency.sample(self.rng, self.block)
        self.delays = np.asarray(sample, dtype=np.float64).tolist()
        return self.delays

    def _backoff(self, retry: Retry, failed: int) -> float:
        try:
            delay = retry.nominal_delay_ms(failed)
        except OverflowError:
            return math.inf
        return delay * self._uniform() if delay > 0 and retry.jitter else delay

    def _at(self, delay: float, then: Callable[..., None], *args: Any) -> None:
        """Call ``then(*args)`` after ``delay`` (the events that are not on every message's or
        attempt's way, which have callbacks of their own)."""
        self.schedule(Timer(self.call_cbs, None, (then, args)), NORMAL, delay)

    def _called(self, event: Timer) -> None:
        then, args = event.flight
        then(*args)

    # --- attempts
    def _in_outage(self, action: str, t: float) -> bool:
        return any(a <= t < b for a, b in self.outages[action])

    def _attempt(
        self,
        inst: _Instance,
        action: str,
        attempt: int,
        delay: float = 0.0,
        called: float | None = None,
    ) -> None:
        """Start an attempt after ``delay``; ``called``: it was called then and waited (for a
        semantic lock, :mod:`sagasim.sim.choreography_shared`), its service starts now and its
        timeout runs from the call."""
        if attempt > machine.MAX_ATTEMPTS:
            name, slot = self.saga.name, self.first + inst.slot
            raise EndlessRetryError.of(name, action, machine.MAX_ATTEMPTS, slot)
        latency, code = (self.draws[action] or self._refill(action)).pop()
        now = self.env.now
        start = now + delay if called is None else called
        self.attempts[action] += 1
        servers, outages, limit, compensation = self.static[action]
        if compensation:
            inst.compensations += 1
        if servers is not None:
            self._queue(inst, _Queued(action, attempt, start, latency, code), delay, called)
            return
        self.busy[action] += latency
        if called is not None:  # waited since the call: less time left before the timeout
            code = FAIL if self._in_outage(action, now - inst.origin) else code
            left = limit - (now - called)
            seen = TIMEOUT if latency > left else code
            flight = (inst, action, attempt, start, seen, code, now + latency)
            self.schedule(Timer(self.ended_cbs, None, flight), NORMAL, max(min(latency, left), 0))
            return
        if outages and self._in_outage(action, start - inst.origin):
            code = FAIL
        seen = TIMEOUT if latency > limit else code
        flight = (inst, action, attempt, start, seen, code, start + latency)
        self.schedule(Timer(self.ended_cbs, None, flight), NORMAL, delay + min(latency, limit))

    def _ended_at(self, event: Timer) -> None:
        self._ended(*event.flight)

    def _queue(
        self, inst: _Instance, q: _Queued, delay: float, called: float | None = None
    ) -> None:
        """Ask for a server at ``q.start``; the deadline is known now, the finish once served."""
        if delay > 0:
            self._at(delay, self._request, inst, q)
        else:
            self._request(inst, q)
        if self.timeout[q.action] < math.inf:
            deadline = delay if called is None else called - self.env.now
            self._at(max(deadline + self.timeout[q.action], 0.0), self._deadline, inst, q)

    def _request(self, inst: _Instance, q: _Queued) -> None:
        servers = self.resource[q.action]
        assert servers is not None
        servers.request(Timer(self.serve_cbs, None, (inst, q)))

    def _served_at(self, grant: Timer) -> None:
        self._served(*grant.flight)

    def _served(self, inst: _Instance, q: _Queued) -> None:
        """A queued attempt got its server: its outcome and finish are known now."""
        now, action = self.env.now, q.action
        self.wait[action] += now - q.start
        self.busy[action] += q.latency
        if self._in_outage(action, now - inst.origin):
            q.code = FAIL
        q.finish = now + q.latency
        q.late = q.seen or (now - q.start) + q.latency > self.timeout[action]
        self._at(q.latency, self._over, inst, q)

    def _deadline(self, inst: _Instance, q: _Queued) -> None:
        """The timeout of a queued attempt: its service sees it unless it is served in time."""
        if q.seen or (q.finish is not None and not q.late):
            return
        q.seen = True
        self._ended(inst, q.action, q.attempt, q.start, TIMEOUT, q.code, None)

    def _over(self, inst: _Instance, q: _Queued) -> None:
        """A queued attempt's finish: the server is free; its service sees the outcome, or the
        participant's outcome lands after the timeout its service saw."""
        self.resource[q.action].release()  # type: ignore[union-attr]
        if not q.late:
            self._ended(inst, q.action, q.attempt, q.start, q.code, q.code, None)
            return
        self._deadline(inst, q)  # a no-op unless rounding put the finish at the deadline
        if self.late_tracked[q.action]:
            self._land(inst, q.action, q.code == OK)

    def _ended(
        self,
        inst: _Instance,
        action: str,
        attempt: int,
        start: float,
        kind: int,
        code: int,
        finish: float | None,
    ) -> None:
        """An attempt ends as its service sees it; its participant's outcome is ``code`` at
        ``finish`` (None: a queued attempt's, which lands once it is served)."""
        now = self.env.now
        if kind == TIMEOUT and finish is not None and self.late_tracked[action]:
            self._at(finish - now, self._land, inst, action, code == OK)
        move = self.chor.attempt_ended(inst.local, action, KINDS[kind])
        if inst.plain:
            inst.local = move.local
        else:
            self._apply(inst, move.local, move.fired)
            self._note(inst, f"{action}.{KINDS[kind]}", action)
        if inst.spans is not None:
            begun, ended = start - inst.origin, now - inst.origin
            span = Span(action, attempt, begun, ended, KINDS[kind], self.compensation[action])
            inst.spans.append(span)
        if kind == OK and inst.first_effect is None and self.effect[action]:
            inst.first_effect = now
        for started in move.started:
            if started == action:
                inst.retries += 1
                wait = self._backoff(self.action[action].retry, attempt)
                self._attempt(inst, action, attempt + 1, wait)
            else:
                self._attempt(inst, started, 1)
        self._react(inst, move)

    def _react(self, inst: _Instance, move: Move) -> None:
        """What follows a move: its events published, its choices decided, and the instance
        over if nothing is left to happen."""
        if move.published:
            self._publish(inst, move.published)
        if move.deciding:
            self._decide(inst, move)
        if not inst.in_flight:
            self._quiet(inst)

    def _land(self, inst: _Instance, action: str, ok: bool) -> None:
        inst.local = self.chor.land(inst.local, action, ok)
        if ok and inst.first_effect is None and self.effect[action]:
            inst.first_effect = self.env.now
        if inst.events is not None:
            self._note(inst, f"{action}.late_ok" if ok else f"{action}.late_fail", action)
        if inst.finished:
            self.columns["anomaly_flags"][inst.slot] = inst.local.ledger[-1]

    # --- the broker
    def _send(self, inst: _Instance, event: str, step: str, tries: int, copy: bool = False) -> None:
        inst.in_flight += 1
        if self.loss and self._uniform() < self.loss:
            redelivery = self.broker.redelivery
            if retry_left(redelivery.attempts, tries):
                if inst.events is not None:
                    self._note(inst, f"{event} → {step} lost, sent again", step)
                self._at(
                    self._backoff(redelivery, tries), self._again, inst, event, step, tries, copy
                )
            else:
                inst.in_flight -= 1
                if inst.events is not None:
                    self._note(inst, f"{event} → {step} lost", step)
            return
        now = self.env.now
        arrival = now + (self.delays or self._refill_delays()).pop()
        if not (self.reorder and self._uniform() < self.reorder):
            before = inst.fifo.get(step, 0.0)  # the last message to this subscriber
            if before > arrival:
                arrival = before
            inst.fifo[step] = arrival
        self.schedule(Timer(self.arrive_cbs, None, (inst, event, step)), NORMAL, arrival - now)
        if not copy and self.duplicate and self._uniform() < self.duplicate:
            inst.messages -= 1  # the copy is the broker's doing, not a message sent
            self._send(inst, event, step, tries, copy=True)
            inst.messages += 1

    def _again(self, inst: _Instance, event: str, step: str, tries: int, copy: bool) -> None:
        """A lost message sent again."""
        inst.in_flight -= 1
        inst.messages += 1
        self._send(inst, event, step, tries + 1, copy)
        self._quiet(inst)  # lost for good this time, it may have been the last

    def _arrive(self, event: Timer) -> None:
        self._take(*event.flight)

    def _take(self, inst: _Instance, event: str, step: str) -> None:
        """``event`` reaches the service performing ``step``, which reacts to it."""
        inst.in_flight -= 1
        move = self.chor.deliver(inst.local, event, step)
        if inst.plain:
            inst.local = move.local
        else:
            self._apply(inst, move.local, move.fired)
            self._note(inst, f"{event} → {step}", step)
        for started in move.started:
            self._attempt(inst, started, 1)
        self._react(inst, move)

    def _decide(self, inst: _Instance, move: Move) -> None:
        """Each choice ``move`` left deciding takes a branch drawn at once, and its decider
        publishes the branch's event ``CHOICE.LABEL``."""
        for choice in move.deciding:
            label = self.chor.branch(choice, self._uniform())
            decided = self.chor.decide(inst.local, choice, label)
            if inst.plain:
                inst.local = decided.local
            else:
                self._apply(inst, decided.local, decided.fired)
                self._note(inst, f"{choice}.{label}", choice)
            self._publish(inst, decided.published)

    def _publish(self, inst: _Instance, events: tuple[str, ...]) -> None:
        """Send each event to each of its subscribers."""
        subscribers = self.chor.subscribers
        for event in events:
            for step in subscribers.get(event, ()):
                inst.messages += 1
                self._send(inst, event, step, 1)

    # --- bookkeeping
    def _apply(self, inst: _Instance, local: Local, fired: tuple[str, ...]) -> None:
        """Take a move's new local state; with live machines (``driver="library"``), send them
        the same events and check they agree with the table."""
        if inst.live is not None:
            for event in fired:
                machine = inst.live[self.chor.service_of_event(event)]
                machine.model.before = inst.local
                machine.send(event)
            for s, name in enumerate(self.chor.service_names):
                live = inst.live[name].model.state
                assert live == local.services[s], (fired, name, live, local.services[s])
        inst.local = local
        if inst.events is not None:
            for event in fired:
                if event.endswith((".skip", ".again", ".undo_again")):
                    self._note(inst, event, event.rsplit(".", 1)[0])

    def _note(self, inst: _Instance, event: str, where: str) -> None:
        if inst.events is not None:
            state = self.chor.state_of(inst.local, self.chor.role_of[where].step)
            inst.events.append(TraceEvent(self.env.now - inst.origin, event, state))

    def _quiet(self, inst: _Instance) -> None:
        """End the instance once nothing runs and nothing is in flight."""
        if inst.finished or inst.in_flight or any(inst.local.attempts):
            return
        self._finish(inst, self.chor.end(inst.local)[0])

    def _finish(self, inst: _Instance, outcome: str) -> None:
        """The instance is over, ending ``outcome``: its columns."""
        inst.finished = True
        self.ended += 1
        now, slot, columns = self.env.now, inst.slot, self.columns
        columns["outcome"][slot] = OUTCOMES.index(outcome)
        if inst.events is not None:  # the end, as the last event (the saga's own)
            inst.events.append(
                TraceEvent(now - inst.origin, f"{self.saga.name}.{outcome}", outcome)
            )
        columns["latency_ms"][slot] = now - inst.start
        columns["start_ms"][slot] = inst.start if self.shared else 0.0
        columns["retries"][slot] = min(inst.retries, INT16_MAX)
        columns["compensations"][slot] = min(inst.compensations, INT16_MAX)
        columns["messages"][slot] = min(inst.messages, UINT16_MAX)
        columns["anomaly_flags"][slot] = inst.local.ledger[-1]
        fail = self.chor.end(inst.local)[1]
        columns["fail"][slot] = 0 if fail is None else self.fail_names.index(fail) + 1
        window = math.nan
        if inst.compensations > 0 and inst.first_effect is not None:
            window = now - inst.first_effect
        columns["window_ms"][slot] = window
        if inst.waited:  # the next independent instance begins, as an event of its own
            self.schedule(Timer(self.next_cbs, None), NORMAL, 0)

    # --- instances
    def _begin(self, slot: int) -> _Instance:
        env, chor = self.env, self.chor
        traced = self.first + slot < self.trace_limit
        move = chor.begin()
        inst = _Instance(
            slot,
            move.local,
            start=env.now,
            origin=0.0 if self.shared else env.now,
            events=[] if traced else None,
            spans=[] if traced else None,
            plain=not traced and not self.library,
        )
        if self.library:
            machines = chor.services.items()
            inst.live = {name: m.machine_class(_LiveGuard(chor)) for name, m in machines}
            self._apply(inst, move.local, move.fired)
        if traced:
            self.traced.append(inst)
        for started in move.started:
            self._attempt(inst, started, 1)
        if move.deciding:
            self._decide(inst, move)
        self._quiet(inst)  # a saga that ends as it starts (a choice straight to its end)
        return inst

    def _next(self, _event: Any = None) -> None:
        """Without arrivals: begin instances one after another, each once the last is over
        (on an idle system, its clock from its start)."""
        while self.started < self.n:
            inst = self._begin(self.started)
            self.started += 1
            if not inst.finished:
                inst.waited = True
                return

    def _arrival(self, _event: Any = None) -> None:
        """With arrivals: the next instance arrives, and the one after it is due a gap later."""
        self._begin(self.started)
        self.started += 1
        if self.started < self.n:
            self.schedule(Timer(self.arrival_cbs, None), NORMAL, self.gaps[self.started])

    def _settle(self) -> None:
        """After the last event, before the results are read (for subclasses)."""

    def run(self, seed: int) -> Results:
        arrivals = self.saga.arrivals
        if arrivals is None:
            self._next()
        elif self.n:
            self.gaps = self.rng.exponential(1000.0 / arrivals.rate_per_s, self.n).tolist()
            self.schedule(Timer(self.arrival_cbs, None), NORMAL, self.gaps[0])
        self.env.run()
        self._settle()
        if self.ended != self.n:  # a missed end would leave zeros that read as committed
            raise SagaSimError(
                f"{self.saga.name}: {self.n - self.ended:,} of {self.n:,} instances never ended "
                "(an internal error in the choreography simulator)"
            )
        chor, columns = self.chor, self.columns
        capacity = {name: self.saga.service(name).capacity for name in chor.services}
        services = {name: ServiceStats(name, capacity[name]) for name in chor.services}
        for action in chor.actions:
            name = self.saga.service_of(self.action[action])
            stats = services.setdefault(name, ServiceStats(name, None))
            attempts, busy, wait = self.attempts[action], self.busy[action], self.wait[action]
            stats.add(ServiceStats(name, None, attempts, busy, wait))
        traced = [
            (i.slot, i.start, i.events, i.spans, chor.people.anomalies(i.local.ledger))
            for i in self.traced
        ]
        horizon = self.env.now if self.shared else None
        return assemble(
            self.saga.name,
            seed,
            columns,
            services,
            traced,
            first=self.first,
            horizon_ms=horizon,
            fail_names=self.fail_names,
            decisions=self.decisions,
        )


def run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """One chunk of a choreographed simulation (what :func:`sagasim.sim.simulate` runs)."""
    return Chunk(saga, np.random.default_rng(seed_seq), n, first, trace_limit).run(seed)
