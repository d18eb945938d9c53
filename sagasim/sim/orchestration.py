"""Orchestrated saga instances under SimPy, driven by the compiled machine.

Each saga instance lives on SimPy events (see below). In every state of the machine each
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

The instances are not SimPy processes but callbacks on bare events the environment schedules
(:meth:`simpy.Environment.schedule`): one per wait, reused where an instance has a single wait
pending, and a FIFO of servers per capacity in place of :class:`simpy.Resource` (a server is
granted in the order asked, a release lets the next one in).

An instance also runs ahead of the clock wherever no other instance can reach it: when the
attempt it waits for next holds no server and no timeout of its own waits to land, that
attempt is taken at once, at its due time, instead of on a wake-up scheduled for then (what
the model proves independent, coalesced). Everything it starts is dated from that time; a
request for a server is scheduled for the moment it is made, and a server held is released on
the clock, so servers see requests and releases in clock order. Instances arriving shortly
after one another are started together (:data:`ARRIVING`), each at its own arrival time.
Independent instances then run one after another, each from the moment the one before it
ended, with the same numbers as on the clock; under arrivals the instances draw their random
numbers in another order, from the same distributions, so the statistics are the same and the
sample is another. Subclasses whose instances meet in more than servers
(:class:`sagasim.sim.shared.SharedChunk`) keep every instance on the clock, where every event
that has an effect is scheduled at the same moment, time and priority as the generator and
resource version scheduled its own (a server granted or released, the deferral of an
``any_of``), so same-time events run in the same order as there.

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

import math
from collections.abc import Callable

import numpy as np
import simpy
from simpy.events import NORMAL
from statemachine import StateMachine

from ..exceptions import EndlessRetryError
from ..machine import orchestration as machine
from ..model.saga import Saga
from .planning import (
    DECIDING,
    FAIL,
    KINDS,
    OK,
    REJECT,
    TIMEOUT,
    Decision,
    Effects,
    Ledger,
    Move,
    Plan,
    plan,
)
from .results import Results, ServiceStats, assemble, empty_columns
from .traces import Span, TraceEvent
from .waits import AnyOf, Callback, Flight, Instance, Servers, Timer

__all__ = ["Chunk", "plan", "run_chunk"]
# what the fast path and older callers import from here
__all__ += ["DECIDING", "FAIL", "KINDS", "OK", "REJECT", "TIMEOUT", "Decision", "Effects"]
__all__ += ["Ledger", "Move", "Plan"]

#: Random numbers drawn at once per action: enough to amortise numpy's call overhead, no more
#: than a chunk is likely to use (a single traced instance draws 16 at a time).
BLOCK = 2048
#: Instances started at each arrival event when instances run ahead of the clock: one event in
#: place of so many, and no more of them live before their time than that.
ARRIVING = 64
INT16_MAX, UINT16_MAX = 32767, 65535


class Chunk:
    """One SimPy environment running ``n`` instances; fills compact per-instance arrays."""

    #: Take an attempt the moment the instance reaches it, ahead of the clock, when nothing
    #: else can reach the instance before the attempt is due (module docstring). Subclasses
    #: whose instances share more than servers run every attempt on the clock instead.
    coalesce = True

    def __init__(
        self, plan: Plan, rng: np.random.Generator, n: int, first: int, trace_limit: int
    ) -> None:
        self.plan, self.rng, self.n, self.first = plan, rng, n, first
        self.block = max(16, min(BLOCK, n))
        self.trace_limit, self.library = trace_limit, False
        self.env = env = simpy.Environment()
        self.schedule: Callable[..., None] = env.schedule
        self.shared = plan.saga.arrivals is not None
        servers = {name: Servers(cap, env.schedule) for name, cap in plan.capacity.items()}
        self.servers = [servers.get(s) for s in plan.service]
        self.queued = bool(servers)
        k = len(plan.names)
        self.draws: list[list[tuple[float, int]]] = [[] for _ in range(k)]
        self.branch_draws: list[float] = []  # uniforms for decisions, drawn in batches too
        self.jitter: list[list[float]] = [[] for _ in range(k)]
        self.delays: list[list[float]] = [[] for _ in range(k)]
        self.attempts, self.busy, self.wait = [0] * k, [0.0] * k, [0.0] * k
        self.columns = empty_columns(n)
        self.traced: list[Instance] = []
        self.is_compensation, self.outages = plan.compensation, plan.outages
        self.timeout, self.late_tracked = plan.timeout, plan.late_tracked
        # per action, looked up on every event: attempts allowed (inf: unbounded), effects
        self.limit = [math.inf if n is None else n for n in plan.limit]
        self.effect, self.moves, self.outcome = plan.effect, plan.moves, plan.outcome
        self.static = list(zip(self.servers, self.outages, self.timeout, self.is_compensation))
        self.started = 0  # instances started so far
        self.max_attempts = machine.MAX_ATTEMPTS  # read when the chunk is made (tests lower it)
        self.clock = 0.0  # when the last instance to end ended (it may be ahead of env.now)
        self.arrival = 0.0  # when the next instance arrives (with arrivals)
        self.ahead = ARRIVING if self.coalesce else 1  # instances started an arrival event
        self.gaps: list[float] = []
        # the callbacks of each kind of event, in lists shared by the events
        self.wake_cbs: list[Callback] = [self._woken]
        self.resume_cbs: list[Callback] = [self._resumed]
        self.serve_cbs: list[Callback] = [self._served]
        self.request_cbs: list[Callback] = [self._requested]
        self.release_cbs: list[Callback] = [self._release_after]
        self.land_cbs: list[Callback] = [self._landed]
        self.arrive_cbs: list[Callback] = [self._arrive]

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

    def _begin(self, inst: Instance, a: int, attempt: int, at: float) -> Flight:
        """Start attempt number ``attempt`` of action ``a`` at time ``at`` (now or later)."""
        if attempt > self.max_attempts:
            name, slot = self.plan.names[a], self.first + inst.slot
            raise EndlessRetryError.of(self.plan.saga.name, name, self.max_attempts, slot)
        latency, code = (self.draws[a] or self._refill(a)).pop()
        self.attempts[a] += 1
        inst.calls += 1
        servers, outages, t, compensation = self.static[a]
        if compensation:
            inst.compensations += 1
        if servers is not None:
            return self._queue(inst, Flight(a, attempt, at, at, TIMEOUT, None, code), latency)
        if outages and any(start <= at - inst.origin < end for start, end in outages):
            code = FAIL
        self.busy[a] += latency
        if latency > t:
            return Flight(a, attempt, at, at + t, TIMEOUT, at + latency, code)
        return Flight(a, attempt, at, at + latency, code, at + latency, code)

    def _queue(self, inst: Instance, flight: Flight, latency: float) -> Flight:
        """An attempt at a service with a capacity: it asks for a server at ``flight.start``;
        until it gets one, only its deadline is known."""
        flight.due, flight.latency = flight.start + self.timeout[flight.action], latency
        delay = flight.start - self.env.now
        if delay > 0 or self.coalesce:
            flight.ready = Timer([], inst, flight)  # scheduled when served (see _served)
        if delay > 0:
            self.schedule(Timer(self.request_cbs, inst, flight), NORMAL, delay)
        else:
            self._request(inst, flight)
        return flight

    def _requested(self, event: Timer) -> None:
        self._request(event.inst, event.flight)  # type: ignore[arg-type]

    def _request(self, inst: Instance, flight: Flight) -> None:
        grant = Timer(list(self.serve_cbs), inst, flight)  # its own list: waits join it
        servers = self.servers[flight.action]
        assert servers is not None
        if self.coalesce and servers.take():  # a server is free: no need to wait for the grant
            self._serve_at(grant, flight.start)  # served when asked (not an ulp off, as the clock)
            return
        servers.request(grant)
        if flight.ready is None:  # asked at once: the instance can wait for the grant itself
            flight.ready = grant

    def _served(self, grant: Timer) -> None:
        self._serve_at(grant, self.env.now)

    def _serve_at(self, grant: Timer, now: float) -> None:
        """A queued attempt got its server at ``now``: its outcome and finish are known now.
        The server is released when the orchestrator takes its event, or at the finish after
        a timeout."""
        inst, f = grant.inst, grant.flight
        assert inst is not None
        a = f.action
        self.wait[a] += now - f.start
        if self.outages[a] and self._in_outage(a, now - inst.origin):
            f.code = FAIL
        self.busy[a] += f.latency
        f.finish = now + f.latency
        late = f.consumed or (now - f.start) + f.latency > self.timeout[a]
        if late:
            self.schedule(Timer(self.release_cbs, inst, f), NORMAL, f.latency)
            if f.consumed and self.late_tracked[a]:
                self._schedule_late(inst, f)
        else:
            f.due, f.kind, f.servers = f.finish, f.code, self.servers[a]
        if f.ready is grant or f.consumed:
            return
        if not self.coalesce:
            self.schedule(f.ready, NORMAL, 0)  # the delayed request's ready succeeds
        elif not late and f.ready.callbacks:
            # The instance waits for f to end (or for an earlier deadline): f's ready wakes it
            # then. A late f ends at its deadline, which the instance already waits for; and
            # served as it asks, the instance has not waited yet (it takes f when it is due).
            self.schedule(f.ready, NORMAL, f.latency)

    def _release_after(self, event: Timer) -> None:
        self.servers[event.flight.action].release()

    def _time_out(self, inst: Instance, f: Flight) -> None:
        """The orchestrator takes ``f``'s timeout. If its participant's outcome is tracked, it
        lands (or is lost) at its finish, scheduled once that is known; until then the instance
        keeps to the clock, so that the landing meets the instance where it is then."""
        f.consumed = True
        if self.late_tracked[f.action]:
            inst.landings += 1
            if f.finish is not None:
                self._schedule_late(inst, f)

    def _schedule_late(self, inst: Instance, f: Flight) -> None:
        delay = max(f.finish - self.env.now, 0.0)  # type: ignore[operator]
        self.schedule(Timer(self.land_cbs, inst, f), NORMAL, delay)

    def _landed(self, event: Timer) -> None:
        inst = event.inst
        assert inst is not None
        inst.landings -= 1
        self._land(inst, event.flight)

    def _land(self, inst: Instance, f: Flight) -> None:
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

    # --- instances: callbacks on the events they wait for
    def _start(self, inst: Instance, t0: float) -> bool:
        """Start ``inst`` at ``t0`` (now, or later when the instances before it ran ahead of
        the clock), with its first attempts; True if it ended at once."""
        plan = self.plan
        live = inst.live = plan.machine.instantiate(plan.saga) if self.library else None
        inst.start = t0
        if not self.shared:
            inst.origin = t0
        sid = inst.sid = plan.initial
        begin = self._begin
        flights = [begin(inst, a, 1, t0) for a in plan.running[sid]]
        if plan.outcome[sid] == DECIDING:
            sid, flights = self._decide(inst, sid, flights, live, t0)
            if plan.outcome[sid] >= 0:
                self._finish(inst, plan.outcome[sid], t0)
                return True
        inst.flights = flights
        inst.timer = Timer(self.wake_cbs, inst)
        return self._run(inst, None, 0)

    def _woken(self, timer: Timer) -> None:
        """The instance's wake-up: the attempt it waited for is due."""
        inst = timer.inst
        assert inst is not None
        if self._run(inst, inst.next, inst.position) and not self.shared:
            self._next()

    def _resumed(self, event: Timer) -> None:
        """An attempt the instance waited for got its server (or, coalesced, ended), or a
        deadline passed."""
        inst = event.inst
        assert inst is not None
        if self._run(inst, None, 0) and not self.shared:
            self._next()

    def _run(self, inst: Instance, f: Flight | None, pos: int) -> bool:
        """Take attempt ``f`` (at ``pos``; None: none is due yet) and each attempt due after
        it: the machine's edge, the participants' bookkeeping, what the edge starts; until
        the instance waits (then schedule its wake-up) or ends (then True)."""
        clock = self.env.now  # the clock stands still while the instance runs ahead of it
        moves, limit, outcome, begin = self.moves, self.limit, self.outcome, self._begin
        running, effect, queued, coalesce = (
            self.plan.running,
            self.effect,
            self.queued,
            self.coalesce,
        )
        while True:
            if f is not None:  # the orchestrator sees attempt f end
                if f.servers is not None:
                    f.servers.release()
                now, a, kind = f.due, f.action, f.kind
                if inst.live is None:
                    pair = moves[inst.sid][pos][kind]
                    assert pair is not None, (inst.sid, a, KINDS[kind])
                    move = pair[0 if f.attempt < limit[a] else 1]
                else:
                    move = self.plan.fire(inst.live, inst.sid, pos, kind)
                target, carry, retried, event, effects = move
                if effects is not None:
                    after = effects[1].get(inst.ledger)
                    inst.ledger = (
                        self.plan.ledger_after(effects, inst.ledger) if after is None else after
                    )
                if kind == OK:
                    if inst.first_effect is None and effect[a]:
                        inst.first_effect = now
                elif kind == TIMEOUT:
                    self._time_out(inst, f)
                inst.sid = target
                if inst.events is not None:
                    self._record(inst, f, now, event, target)
                code = outcome[target]
                if retried:
                    inst.retries += 1
                if code >= 0:
                    if queued:
                        self._abandon(inst, f)
                    self._finish(inst, code, now)
                    return True
                if len(carry) == 1 and (retried or carry[0] < 0):
                    if retried:
                        g = begin(inst, a, f.attempt + 1, now + self._backoff(a, f.attempt))
                    else:
                        g = begin(inst, running[target][0], 1, now)
                    inst.flights = flights = [g]
                else:
                    started, before = running[target], inst.flights
                    assert before is not None
                    inst.flights = flights = [
                        begin(inst, started[j], 1, now)
                        if c < 0
                        else begin(inst, a, f.attempt + 1, now + self._backoff(a, f.attempt))
                        if retried and c == pos
                        else before[c]
                        for j, c in enumerate(carry)
                    ]
                if code == DECIDING:  # a choice: decided at once, the work in flight goes on
                    sid, inst.flights = self._decide(inst, target, flights, inst.live, now)
                    if outcome[sid] >= 0:
                        if queued:
                            self._abandon(inst, f)
                        self._finish(inst, outcome[sid], now)
                        return True
            # the next attempt due; wake up earlier when a self.queued one gets its server
            flights = inst.flights  # type: ignore[assignment]
            f, pos = flights[0], 0
            if len(flights) == 1:
                if queued and f.finish is None and f.ready is not None and f.due > clock:
                    self._wait_any(inst, [f.ready], f.due)
                    return False
            else:
                for j, g in enumerate(flights):
                    if g.due < f.due:
                        f, pos = g, j
                if queued:
                    waits = [g.ready for g in flights if g.finish is None and g.ready is not None]
                    if waits and f.due > clock:
                        self._wait_any(inst, waits, f.due)
                        return False
            delay = f.due - clock
            if delay > 0:
                if coalesce and f.servers is None and not inst.landings:
                    continue  # nothing can reach the instance before f is due: take it now
                inst.next, inst.position = f, pos
                timer = inst.timer
                assert timer is not None
                timer.callbacks = self.wake_cbs
                self.schedule(timer, NORMAL, delay)
                return False

    def _abandon(self, inst: Instance, taken: Flight) -> None:
        """The instance ends with calls still in flight besides ``taken`` (a machine state may
        run one action twice and end on the first to answer): each still waits for and holds
        its server until its finish, as a timed-out call does, and then lets it go."""
        for g in inst.flights or ():
            if g is taken or self.servers[g.action] is None:
                continue
            if g.finish is None:  # not served yet: released after its latency once it is
                g.consumed = True
            elif g.servers is not None:
                delay = max(g.finish - self.env.now, 0.0)
                self.schedule(Timer(self.release_cbs, inst, g), NORMAL, delay)
                g.servers = None

    def _wait_any(self, inst: Instance, waits: list[Timer], due: float) -> None:
        """Wait for the first of ``waits`` and, if finite, the deadline ``due``: as a process
        yielding the one event, or ``env.any_of`` them (resumed one event later)."""
        if due < math.inf:
            deadline = Timer([], inst)
            self.schedule(deadline, NORMAL, due - self.env.now)
            waits.append(deadline)
        if len(waits) == 1:
            waits[0].callbacks.append(self._resumed)  # type: ignore[union-attr]
            return
        check = AnyOf(self, inst).check
        for event in waits:
            event.callbacks.append(check)  # type: ignore[union-attr]

    def _decide(
        self,
        inst: Instance,
        sid: int,
        flights: list[Flight],
        live: StateMachine | None,
        now: float,
    ) -> tuple[int, list[Flight]]:
        """Draw the branch of the choice state ``sid`` decides at ``now``, and of each choice
        reached after it at once; return the state they lead to and the attempts in flight
        there (those already in flight, and the first of what starts)."""
        plan, now = self.plan, float(now)
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

    def _record(self, inst: Instance, f: Flight, now: float, event: str, target: int) -> None:
        assert inst.events is not None and inst.spans is not None
        plan, t, a = self.plan, inst.origin, f.action
        inst.events.append(TraceEvent(now - t, event, plan.state_ids[target]))
        name, kind, compensation = plan.names[a], KINDS[f.kind], plan.compensation[a]
        inst.spans.append(Span(name, f.attempt, f.start - t, now - t, kind, compensation))

    def _finish(self, inst: Instance, outcome: int, now: float) -> None:
        slot, columns = inst.slot, self.columns
        self.clock = max(self.clock, now)
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

    def _new(self, slot: int) -> Instance:
        if self.first + slot >= self.trace_limit:
            return Instance(slot, self.plan.people.initial, None, None)
        self.traced.append(Instance(slot, self.plan.people.initial, [], []))
        return self.traced[-1]

    def _next(self) -> None:
        """Independent instances, one after another: start the next ones until one waits."""
        while self.started < self.n:
            self.started += 1
            # from when the one before ended, which is now unless it ran ahead of the clock
            if not self._start(self._new(self.started - 1), max(self.clock, self.env.now)):
                return

    def _arrive(self, timer: Timer) -> None:
        """Poisson arrivals into the shared system: the next ``ahead`` instances start, each at
        its arrival time, and the arrival after them is scheduled. On the clock that is one
        instance, arriving now; coalesced, those arriving later run ahead like the rest."""
        arriving, delay = [], 0.0
        for _ in range(self.ahead):
            arriving.append((self.started, self.arrival))
            self.started += 1
            if self.started == self.n:
                break
            gap = self.gaps[self.started]
            self.arrival += gap
            delay += gap
        else:
            timer.callbacks = self.arrive_cbs
            self.schedule(timer, NORMAL, delay)
        for slot, t0 in arriving:
            self._start(self._new(slot), t0)

    def _settle(self) -> None:
        """After the last event, before the results are read (for subclasses)."""

    def run(self, seed: int) -> Results:
        if self.plan.saga.arrivals is None:
            self._next()
        else:
            rate = self.plan.saga.arrivals.rate_per_s
            self.gaps = self.rng.exponential(1000.0 / rate, self.n).tolist()
            if self.n:
                self.arrival = self.gaps[0]
                self.schedule(Timer(self.arrive_cbs, None), NORMAL, self.arrival)
        self.env.run()
        self._settle()
        plan, columns = self.plan, self.columns
        services = {s: ServiceStats(s, plan.saga.service(s).capacity) for s in plan.service}
        for a, s in enumerate(plan.service):
            services[s].add(ServiceStats(s, None, self.attempts[a], self.busy[a], self.wait[a]))
        traced = [
            (i.slot, i.start, i.events, i.spans, plan.people.anomalies(i.ledger))
            for i in self.traced
        ]
        horizon = max(self.env.now, self.clock) if self.shared else None
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


def run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """``n`` instances of ``saga`` from instance number ``first``, self-contained so that it
    can run in another process."""
    return Chunk(plan(saga), np.random.default_rng(seed_seq), n, first, trace_limit).run(seed)
