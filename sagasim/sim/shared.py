"""Orchestrated instances that share resources or whose coordinator crashes
(docs/concurrency.md), on the SimPy engine of :mod:`sagasim.sim.orchestration`.

:class:`SharedChunk` is that engine's :class:`~sagasim.sim.orchestration.Chunk` with three more
things, chosen only for a saga whose steps read or write resources or that has a
``coordinator`` (other sagas keep the plain chunk, its hot path and its numbers):

* **Resources** (with ``arrivals``, where instances overlap; without, they never do, so
  nothing can interfere): at each attempt ending ``ok`` the :class:`~sagasim.sim.resources.Store`
  applies its reads and writes and counts lost updates, dirty reads and stale compensations.
  Under ``reread`` and ``version`` a refused write turns the ``ok`` into a transient ``fail``
  (the machine's fail edge: retried while attempts remain).
* **Semantic locks**: an attempt whose call finds a resource it touches locked by another
  instance (or others waiting for it) waits in line; its service starts when the lock is free,
  its timeout runs from the call. An attempt that would end ``ok`` while another instance holds
  the lock cannot end until it is free. With ``on_locked: fail`` a step's attempt fails at
  once instead (a compensation always waits). A wait still pending when its timeout fires is
  withdrawn: the call never reached the participant. Instances still waiting when nothing is
  left to happen are deadlocked: they end ``stuck``.
* **Crashes**: after the start record of each call, and after each outcome record, the
  coordinator crashes with probability ``crash`` (at most
  ``max_crashes`` times per saga, never while it is down), drawn from a random stream of its
  own. A crash after a start record leaves that call in doubt: it is served, and lands (the
  participants' ledger, as a late landing) iff its own outcome is ``ok``, at its end or when
  the coordinator is back if that is sooner (before recovery goes on). After a
  ``restart`` sample the machine's ``ACTION.crash`` edge is taken: the same state (the call is
  re-run as an extra attempt, not counted against ``retry.attempts``; an idempotent step's
  landed call answers ``ok``) or backward recovery. A crash after an outcome record only
  delays what comes next by the restart (after the last one, the saga's end). Replies that
  arrive while the coordinator is down are read when it is back, after the crash's own edge.
  An in-doubt call changes no resource value (as a late landing, it is checked per instance
  only).

Examples
--------
>>> from sagasim.model import Constant, Coordinator, Saga, Step
>>> saga = Saga(name="s", steps=(Step(name="a", latency=Constant(value_ms=10)),),
...             coordinator=Coordinator(crash=0.5, restart=Constant(value_ms=100),
...                                     recovery="forward"))
>>> results = run_chunk(saga, 1, np.random.SeedSequence(1), first=0, n=2_000, trace_limit=0)
>>> found = results.concurrency.crash_summary()
>>> found["in_doubt"] <= found["count"] == found["sagas"], results.anomalies["duplicate_effect"] > 0
(True, True)
"""

from __future__ import annotations

from typing import cast

import numpy as np
from simpy.events import NORMAL, URGENT

from ..exceptions import EndlessRetryError
from ..machine import orchestration as machine
from ..machine.orchestration import CRASH, OUTCOMES
from ..model.saga import Saga
from .orchestration import DECIDING, FAIL, KINDS, OK, TIMEOUT, Chunk, Move, Plan, plan
from .resources import Party, Store, concurrency_of
from .results import Results
from .traces import Span, TraceEvent
from .waits import Callback, Flight, Instance, Landing, Member, Timer

__all__ = ["Member", "SharedChunk", "coordinator_seed", "needed", "run_chunk"]

#: The kind of a call's event when the coordinator crashed with it in doubt (after KINDS).
CRASH_KIND = len(KINDS)
#: The spawn key that gives the coordinator's crashes a random stream of their own.
CRASH_STREAM = 0xC0FFEE
CALL, END = 0, 1  # where an attempt waits for a lock: before its service, or before it ends
STUCK = OUTCOMES.index("stuck")


def needed(saga: Saga) -> bool:
    """Whether ``saga`` runs on :class:`SharedChunk`: steps that touch resources, or a
    coordinator.

    >>> from sagasim.model import Saga, Step
    >>> needed(Saga(name="s", steps=(Step(name="a"),)))
    False
    """
    return saga.coordinator is not None or Store.needed(saga)


def coordinator_seed(seed_seq: np.random.SeedSequence) -> np.random.SeedSequence:
    """The seed of a chunk's crash draws: a child of its own seed no other stream uses."""
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, CRASH_STREAM))


class SharedChunk(Chunk):
    """One SimPy environment of ``n`` instances with shared resources, locks and crashes."""

    coalesce = False  # instances meet in resources and a coordinator: all on the clock

    def __init__(
        self,
        plan: Plan,
        rng: np.random.Generator,
        n: int,
        first: int,
        trace_limit: int,
        crash_rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(plan, rng, n, first, trace_limit)
        saga = plan.saga
        coordinator = saga.coordinator
        self.crash = coordinator.crash if coordinator is not None else 0.0
        self.crash_rng = crash_rng if self.crash > 0 else None
        self.max_crashes = coordinator.max_crashes if coordinator is not None else 0
        self.crash_draws: list[float] = []
        self.restart_draws: list[float] = []
        self.meta = Store(saga, plan.actions, n)
        self.store = self.meta if self.shared and Store.needed(saga) else None
        self.landing = Landing(saga)
        self.idempotent = [name in self.landing.idempotent for name in plan.names]
        # moves[state][position][CRASH_KIND]: the crash edge, the same for attempts left or not
        crashed = [[plan.crash_move(s, p, t) for p, t in enumerate(row)] for s, row in
                   enumerate(plan.crashed)]  # fmt: skip
        self.moves = [
            [[*kinds, None if move is None else (move, move)] for kinds, move in zip(row, moves)]
            for row, moves in zip(plan.moves, crashed)
        ]
        self.doubt: dict[Flight, float] = {}  # calls left in doubt, and when the crash was
        self.waiting: dict[Flight, tuple[Member, str, int, float]] = {}  # lock, phase, since
        self.alive: dict[int, Member] = {}
        self.crash_count, self.in_doubt = [0] * n, [0] * n
        self.restarts: list[float] = []
        self.lock_waits: list[float] = []
        self.call_cbs: list[Callback] = [self._called]
        self.doubt_cbs: list[Callback] = [self._doubt_landed]
        self.close_cbs: list[Callback] = [self._closed]
        self.restart_cbs: list[Callback] = [self._restarted]

    # --- instances
    def _new(self, slot: int) -> Member:
        traced = self.first + slot < self.trace_limit
        events: list[TraceEvent] | None = [] if traced else None
        spans: list[Span] | None = [] if traced else None
        inst = Member(slot, self.plan.people.initial, events, spans)
        if traced:
            self.traced.append(inst)
        if self.store is not None:
            inst.party = Party(slot)
        self.alive[slot] = inst
        return inst

    def _finish(self, inst: Instance, outcome: int, now: float) -> None:
        super()._finish(inst, outcome, now)
        self.alive.pop(inst.slot, None)
        party = cast(Member, inst).party
        if self.store is not None and party is not None:
            for r in self.store.end(party):
                self._grant(r, now)

    def _settle(self) -> None:
        """Instances still waiting for locks when nothing else can happen are deadlocked."""
        for inst in list(self.alive.values()):
            if inst.events is not None:
                inst.events.append(TraceEvent(self.env.now - inst.origin, "deadlock", "stuck"))
            self._finish(inst, STUCK, self.env.now)

    # --- crashes
    def _crashes(self, inst: Member) -> bool:
        """Whether the coordinator crashes after the log write it makes now for ``inst``."""
        if self.crash_rng is None or inst.crashes >= self.max_crashes or inst.pending is not None:
            return False
        if not self.crash_draws:
            self.crash_draws = self.crash_rng.random(self.block).tolist()
        return self.crash_draws.pop() < self.crash

    def _restart(self, inst: Member, at: float) -> float:
        """A crash at ``at``: the coordinator is down for a restart sample; when it is back."""
        if not self.restart_draws:
            restart = self.plan.saga.coordinator.restart  # type: ignore[union-attr]
            samples = restart.sample(self.crash_rng, self.block)  # type: ignore[arg-type]
            self.restart_draws = np.asarray(samples, dtype=np.float64).tolist()
        wait = self.restart_draws.pop()
        inst.crashes += 1
        self.crash_count[inst.slot] += 1
        self.restarts.append(wait)
        down, back = inst.down
        # down again as it comes back: replies wait on (a start record is all it wrote)
        inst.down = (down, max(back, at + wait)) if down <= at <= back else (at, at + wait)
        return at + wait

    def _begin(self, inst: Instance, a: int, attempt: int, at: float) -> Flight:
        member, at = cast(Member, inst), float(at)
        if self._crashes(member):  # after the start record: the call is in doubt
            f = super()._begin(inst, a, attempt, at)
            f.due, f.kind, f.consumed = self._restart(member, at), CRASH_KIND, True
            member.pending, self.doubt[f] = f, at
            self.in_doubt[inst.slot] += 1
            if inst.events is not None:  # in the trace when it happens (after a backoff)
                note = Timer(self.restart_cbs, inst, f"{self.plan.names[a]}.{CRASH}")
                self.schedule(note, NORMAL, at - self.env.now)
            if f.finish is not None:  # else queued: landed once served (_served)
                self._schedule_late(inst, f)
            return f
        if self.store is not None and self.store.locked[a]:
            return self._call(member, a, attempt, at)
        return super()._begin(inst, a, attempt, at)

    def _schedule_late(self, inst: Instance, f: Flight) -> None:
        if f not in self.doubt:
            super()._schedule_late(inst, f)
            return
        # served by the time the coordinator is back (docs/concurrency.md), and before its
        # recovery at that same moment
        assert f.finish is not None  # scheduled once served
        when = min(f.finish, f.due)
        self.schedule(Timer(self.doubt_cbs, inst, f), URGENT, max(when - self.env.now, 0.0))

    def _served(self, grant: Timer) -> None:
        super()._served(grant)
        f = grant.flight
        if f in self.doubt and not self.late_tracked[f.action]:
            self._schedule_late(grant.inst, f)  # type: ignore[arg-type]

    def _doubt_landed(self, event: Timer) -> None:
        """A call left in doubt ends at its participant: it lands if its outcome is ``ok``."""
        inst, f = event.inst, event.flight
        assert inst is not None
        plan, name, now = self.plan, self.plan.names[f.action], self.env.now
        landed = f.code == OK
        if landed:
            inst.ledger = self.landing.land(inst.ledger, name, plan.running_names[inst.sid])
            if self.effect[f.action] and inst.first_effect is None:
                inst.first_effect = now
            self.columns["anomaly_flags"][inst.slot] = inst.ledger[-1]
        if inst.events is not None:
            what = f"{name}.landed" if landed else f"{name}.lost"
            inst.events.append(TraceEvent(now - inst.origin, what, plan.state_ids[inst.sid]))

    def _recover(self, inst: Member, f: Flight, pos: int, now: float) -> bool:
        """The coordinator is back after a crash left ``f`` in doubt: the crash edge."""
        plan, a = self.plan, f.action
        name, crashed_at = plan.names[a], self.doubt[f]
        inst.pending = None
        move = self._move(inst, pos, CRASH_KIND, f)
        target, effects = move[0], move[4]
        if inst.events is not None and inst.spans is not None:
            t = inst.origin
            inst.events.append(TraceEvent(now - t, f"{name}.restart", plan.state_ids[target]))
            undo = plan.compensation[a]
            inst.spans.append(Span(name, f.attempt, f.start - t, crashed_at - t, "crash", undo))
            inst.spans.append(Span(name, f.attempt, crashed_at - t, now - t, "restart", False))
        if effects is not None:
            inst.ledger = plan.ledger_after(effects, inst.ledger)
        inst.sid = target
        if self.outcome[target] >= 0:
            self._finish(inst, self.outcome[target], now)
            return True
        return self._proceed(inst, f, pos, move, now, now, landed=f.code == OK)

    def _restarted(self, event: Timer) -> None:
        """A traced coordinator crashed with a call in doubt, or is back after a crash after
        an outcome record: the event in the trace, in the state the instance is in then."""
        inst = event.inst
        assert inst is not None and inst.events is not None
        state = self.plan.state_ids[inst.sid]
        inst.events.append(TraceEvent(self.env.now - inst.origin, event.flight, state))

    def _closed(self, event: Timer) -> None:
        """The coordinator is back after a crash after the saga's last outcome record."""
        inst = event.inst
        assert inst is not None
        self._finish(inst, self.outcome[inst.sid], self.env.now)

    def _crash_after(self, inst: Member, f: Flight, now: float) -> float:
        """A crash after ``f``'s outcome record: nothing changes but the time; when it is back."""
        back = self._restart(inst, now)
        if inst.events is not None and inst.spans is not None:
            plan, t = self.plan, inst.origin
            name, state = plan.names[f.action], plan.state_ids[inst.sid]
            inst.events.append(TraceEvent(now - t, f"{name}.crash_after", state))
            inst.spans.append(Span(name, f.attempt, now - t, back - t, "restart", False))
            restart = Timer(self.restart_cbs, inst, f"{name}.restart")
            self.schedule(restart, NORMAL, back - now)
        return back

    # --- the orchestrator taking events
    def _move(self, inst: Instance, pos: int, kind: int, f: Flight) -> Move:
        if inst.live is not None:
            if kind != CRASH_KIND:
                return self.plan.fire(inst.live, inst.sid, pos, kind)
            inst.live.send(f"{self.plan.names[f.action]}.{CRASH}")
        pair = self.moves[inst.sid][pos][kind]
        assert pair is not None, (inst.sid, f.action, kind)
        move = pair[0 if f.attempt < self.limit[f.action] else 1]
        if inst.live is not None:
            (state,) = inst.live.configuration
            assert self.plan.sindex[state.id] == move[0], (state.id, move)
        return move

    def _run(self, inst: Instance, f: Flight | None, pos: int) -> bool:
        member = cast(Member, inst)
        while True:
            if f is not None and self._take(member, f, pos):
                return True
            chosen = self._select(member)
            if chosen is None:
                return False
            f, pos = chosen

    def _select(self, inst: Member) -> tuple[Flight, int] | None:
        """The attempt the orchestrator sees end next, or None once the instance waits for it
        (replies due while the coordinator is down are read when it is back, after the crash's
        own edge)."""
        now, (down, back) = self.env.now, inst.down
        best: Flight | None = None
        pos, waits = 0, []
        for j, g in enumerate(inst.flights or ()):
            crashed = g in self.doubt
            if not crashed:
                if down <= g.due < back:
                    g.due = back
                if g.finish is None and g.ready is not None and not g.consumed:
                    waits.append(g.ready)
            if best is None or g.due < best.due or (g.due == best.due and crashed):
                best, pos = g, j
        assert best is not None
        if waits and best.due > now:
            self._wait_any(inst, waits, best.due)
            return None
        delay = best.due - now
        if delay > 0:
            inst.next, inst.position = best, pos
            timer = inst.timer
            assert timer is not None
            timer.callbacks = self.wake_cbs
            self.schedule(timer, NORMAL, delay)
            return None
        return best, pos

    def _take(self, inst: Member, f: Flight, pos: int) -> bool:
        """The orchestrator sees ``f`` end: resources and locks, the machine's edge, the
        participants' bookkeeping, a crash after the outcome record, what starts next; True
        if the instance ended (or ends when its coordinator is back)."""
        if f.servers is not None:
            f.servers.release()
            f.servers = None
        now, a, kind = f.due, f.action, f.kind
        if kind == CRASH_KIND:
            return self._recover(inst, f, pos, now)
        withdrawn = kind == TIMEOUT and f in self.waiting
        if withdrawn:
            self._withdraw(f, now)
        if self.store is not None and self.store.touched[a]:
            kind = self._touch(inst, f, kind, now)
            if kind < 0:
                return False
            f.kind = kind
        move = self._move(inst, pos, kind, f)
        target, _, retried, event, effects = move
        people = self.plan.people
        if effects is not None:
            inst.ledger = self.plan.ledger_after(effects, inst.ledger)
        if withdrawn and self.late_tracked[a]:  # it never reached the participant
            inst.ledger = people.lost(inst.ledger, self.plan.names[a])
        if kind == OK:
            if inst.first_effect is None and self.effect[a]:
                inst.first_effect = now
        elif kind == TIMEOUT:
            self._time_out(inst, f)
        inst.sid = target
        if inst.events is not None:
            self._record(inst, f, now, event, target)
        if retried:
            inst.retries += 1
        crashed = self._crashes(inst)
        start = self._crash_after(inst, f, now) if crashed else now
        if self.outcome[target] >= 0:
            if crashed:  # it ends once the coordinator is back (the next may start meanwhile)
                self.schedule(Timer(self.close_cbs, inst), NORMAL, start - now)
                return True
            self._finish(inst, self.outcome[target], now)
            return True
        return self._proceed(inst, f, pos, move, now, start, landed=None)

    def _proceed(
        self, inst: Member, f: Flight, pos: int, move: Move, now: float, start: float,
        landed: bool | None,
    ) -> bool:  # fmt: skip
        """The attempts in flight in the edge's target: carried over, retried, re-run after a
        crash (``landed``: whether the call in doubt landed) or started (from ``start``)."""
        target, carry, retried = move[0], move[1], move[2]
        a, started, before = f.action, self.plan.running[target], inst.flights
        assert before is not None
        flights = []
        for j, c in enumerate(carry):
            if c < 0:
                g = self._begin(inst, started[j], 1, start)
            elif c == pos and retried:
                at = max(start, now + self._backoff(a, f.attempt))
                g = self._begin(inst, a, f.attempt + 1, at)
            elif c == pos and landed is not None:  # re-run: no attempt counted
                g = self._begin(inst, a, f.attempt, start)
                if landed and self.idempotent[a]:  # the participant answers its landed call
                    if g.kind == g.code:
                        g.kind = OK
                    g.code = OK
            else:
                g = before[c]
            flights.append(g)
        inst.flights = flights
        if self.outcome[target] == DECIDING:
            sid, inst.flights = self._decide(inst, target, flights, inst.live, self.env.now)
            if self.outcome[sid] >= 0:
                if start > now:  # after a crash: it ends once the coordinator is back
                    self.schedule(Timer(self.close_cbs, inst), NORMAL, start - self.env.now)
                else:
                    self._finish(inst, self.outcome[sid], self.env.now)
                return True
        return False

    # --- resources and locks
    def _touch(self, inst: Member, f: Flight, kind: int, now: float) -> int:
        """The resources of ``f``'s attempt ending ``kind``: the kind the orchestrator sees
        (a refused write or a lock with ``on_locked: fail``: ``fail``), or -1 when the attempt
        waits for a lock before it can end."""
        store, a, party = self.store, f.action, inst.party
        assert store is not None and party is not None
        if kind != OK:
            self._ungrant(f, now)
            return kind
        if store.locked[a] and (r := store.held_by_other(party.slot, a)) is not None:
            if store.fails_if_locked[a]:
                self._ungrant(f, now)
                return FAIL
            self._wait_lock(inst, f, r, END, now)
            return -1
        if store.conflicts(party, a):
            self._ungrant(f, now)
            return FAIL
        store.ok(party, a)
        self._ungrant(f, now)
        for r in store.locked[a]:  # its own calls waiting for what it now holds go on
            self._grant(r, now)
        return OK

    def _call(self, inst: Member, a: int, attempt: int, at: float) -> Flight:
        """An attempt of an action touching semantic locks: its call at ``at`` looks at them
        before its service starts (its ``ready`` fires once its end is known)."""
        if attempt > machine.MAX_ATTEMPTS:
            name, slot = self.plan.names[a], self.first + inst.slot
            raise EndlessRetryError.of(self.plan.saga.name, name, machine.MAX_ATTEMPTS, slot)
        latency, code = (self.draws[a] or self._refill(a)).pop()
        self.attempts[a] += 1
        inst.calls += 1
        if self.is_compensation[a]:
            inst.compensations += 1
        f = Flight(a, attempt, at, at + self.timeout[a], TIMEOUT, None, code)
        f.latency, f.ready = latency, Timer([], inst, f)
        if at > self.env.now:
            self.schedule(Timer(self.call_cbs, inst, f), NORMAL, at - self.env.now)
        else:
            self._try_call(inst, f, notify=False)
        return f

    def _called(self, event: Timer) -> None:
        self._try_call(event.inst, event.flight, notify=True)  # type: ignore[arg-type]

    def _try_call(self, inst: Member, f: Flight, notify: bool) -> None:
        store, a, now = self.store, f.action, self.env.now
        assert store is not None and inst.party is not None
        r = store.blocked(inst.party.slot, a)
        if r is None:
            self._serve(inst, f, now, notify)
        elif store.fails_if_locked[a]:
            f.due = f.finish = now
            f.kind = f.code = FAIL
            if notify:
                self.schedule(f.ready, NORMAL, 0)
        else:
            self._wait_lock(inst, f, r, CALL, now)

    def _serve(self, inst: Member, f: Flight, now: float, notify: bool) -> None:
        """The service of ``f`` starts now: its latency from now, its timeout from its call
        (at a service with a capacity, it asks for a server now)."""
        a = f.action
        if self.servers[a] is not None:
            self.wait[a] -= now - f.start  # the queue's wait counts from here
            self._queue(inst, f, f.latency)  # its ready fires once it is served
            return
        if self.outages[a] and self._in_outage(a, now - inst.origin):
            f.code = FAIL
        self.busy[a] += f.latency
        f.finish = now + f.latency
        if f.finish - f.start > self.timeout[a]:
            f.due, f.kind = f.start + self.timeout[a], TIMEOUT
        else:
            f.due, f.kind = f.finish, f.code
        if notify:
            self.schedule(f.ready, NORMAL, 0)

    def _wait_lock(self, inst: Member, f: Flight, r: str, phase: int, now: float) -> None:
        """``f`` waits in ``r``'s line (first in line when it had been let through)."""
        store = self.store
        assert store is not None
        granted = store.granted[r]
        front = granted is not None and granted[1] is f
        if front:
            store.granted[r] = None
        self._ungrant(f, now)
        f.kind, f.due, f.finish = TIMEOUT, f.start + self.timeout[f.action], None
        if phase == END:
            f.ready = Timer([], inst, f)
        line = store.queue[r]
        (line.appendleft if front else line.append)((inst.slot, f))
        self.waiting[f] = (inst, r, phase, now)

    def _waited(self, inst: Member, f: Flight, since: float, now: float) -> None:
        self.lock_waits.append(now - since)
        if inst.spans is not None:
            t, name = inst.origin, self.plan.names[f.action]
            inst.spans.append(Span(name, f.attempt, since - t, now - t, "lock_wait", False))

    def _withdraw(self, f: Flight, now: float) -> None:
        """A waiting attempt timed out: it leaves the line."""
        store = self.store
        assert store is not None
        inst, r, _, since = self.waiting.pop(f)
        store.queue[r].remove((inst.slot, f))
        self._waited(inst, f, since, now)

    def _ungrant(self, f: Flight, now: float) -> None:
        """``f`` ended or waits again: the locks it was let through to pass to the next."""
        store = self.store
        assert store is not None
        for r in store.locked[f.action]:
            granted = store.granted[r]
            if granted is not None and granted[1] is f:
                store.granted[r] = None
                self._grant(r, now)

    def _grant(self, r: str, now: float) -> None:
        """Let the first in ``r``'s line through while the lock is free."""
        store = self.store
        assert store is not None
        line, holder = store.queue[r], store.holder[r]
        for entry in [e for e in line if e[0] == holder]:  # the holder's own calls
            line.remove(entry)
            self._let_through(r, entry[1], now, granted=False)
        while line and store.holder[r] is None and store.granted[r] is None:
            self._let_through(r, line.popleft()[1], now, granted=True)

    def _let_through(self, r: str, f: Flight, now: float, granted: bool) -> None:
        """``f`` leaves ``r``'s line: it ends now, or its service starts (``granted``: the
        lock is free, and kept for it until it ends)."""
        store = self.store
        assert store is not None
        inst, _, phase, since = self.waiting.pop(f)
        slot = inst.slot
        self._waited(inst, f, since, now)
        if granted:
            store.granted[r] = (slot, f)
        if phase == END:  # it has been served: it ends now
            f.due = f.finish = now
            f.kind = f.code
            self.schedule(f.ready, NORMAL, 0)
            return
        other = store.blocked(slot, f.action, skip=r)
        if other is None:
            self._serve(inst, f, now, notify=True)
            return
        if granted:
            store.granted[r] = None
        store.queue[other].append((slot, f))
        self.waiting[f] = (inst, other, CALL, now)

    # --- results
    def run(self, seed: int) -> Results:
        results = super().run(seed)
        results.concurrency = concurrency_of(
            self.plan.saga,
            self.store,
            self.n,
            locks=self.meta.locks,
            crashes=self.crash_count,
            in_doubt=self.in_doubt,
            lock_waits=self.lock_waits,
            restarts=self.restarts,
        )
        return results


def run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """``n`` instances of ``saga`` from instance number ``first`` on :class:`SharedChunk`."""
    rng, crash_rng = (np.random.default_rng(s) for s in (seed_seq, coordinator_seed(seed_seq)))
    return SharedChunk(plan(saga), rng, n, first, trace_limit, crash_rng).run(seed)
