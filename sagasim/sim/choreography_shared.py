"""Choreographed instances whose services crash through their outboxes, or that share resources
(docs/concurrency.md), on the SimPy engine of :mod:`sagasim.sim.choreography`.

:class:`SharedChunk` is that engine's :class:`~sagasim.sim.choreography.Chunk` with what a
``coordinator`` or resources add; :func:`needed` chooses it (other choreographies keep the plain
chunk and its numbers):

* **Outbox crashes**: every event a service publishes goes through its outbox. After the local
  transaction writes the event to the outbox (log point 1) the service crashes with
  probability ``crash``: the event is published once the service is back, after a ``restart``
  sample. After the relay has published it and before it marks it published (log point 2) it
  crashes with probability ``crash`` again: once back, the relay publishes the event again, so
  every subscriber receives a second copy (over the broker, as any message). Marking a
  republished event is a log write too. At most ``max_crashes`` crashes per saga, never while
  the service is down, drawn from a random stream of their own. As the coordinator's crashes
  in orchestration, a crash stops only the saga whose outbox row it follows: while the service
  is down, what reaches it for that saga (messages, the ends of its attempts) waits and is
  taken once it is back; other sagas and services go on. ``in_doubt`` counts the events
  published again.
* **Resources** (with ``arrivals``, where instances overlap): at each attempt its service sees
  end ``ok``, the :class:`~sagasim.sim.resources.Store` applies its reads and writes and counts
  lost updates, dirty reads and stale compensations. Under ``reread`` and ``version`` a refused
  write turns the ``ok`` into a transient ``fail`` (the role's failure path: retried while
  attempts remain).
* **Semantic locks**: an attempt whose call finds a resource it touches locked by another
  instance (or others waiting for it) waits in line, first come first served; its service
  starts when the lock is free, its timeout runs from the call. An attempt that would end
  ``ok`` while another instance holds the lock waits until it is free. With ``on_locked: fail``
  a step's attempt fails at once instead. A wait that outlasts the attempt's timeout leaves the
  line: the call never reached its participant. Instances still waiting when nothing else can
  happen are deadlocked and end ``stuck``.

Examples
--------
>>> from sagasim.model import Constant, Coordinator, Saga, Step
>>> saga = Saga(name="s", coordination="choreography", steps=(
...     Step(name="a", latency=Constant(value_ms=10)), Step(name="b")),
...     coordinator=Coordinator(crash=0.5, restart=Constant(value_ms=100)))
>>> results = run_chunk(saga, 1, np.random.SeedSequence(1), first=0, n=2_000, trace_limit=0)
>>> found = results.concurrency.crash_summary()
>>> 0 < found["in_doubt"] < found["count"], results.anomalies["duplicate_effect"] > 0
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..model.saga import Saga
from .choreography import FAIL, OK, TIMEOUT, Chunk, _Instance
from .resources import Party, Store, concurrency_of
from .results import Results
from .shared import coordinator_seed
from .traces import Span, TraceEvent

__all__ = ["SharedChunk", "needed", "run_chunk"]

CALL, END = 0, 1  # where an attempt waits for a lock: before its service, or before it ends


def needed(saga: Saga) -> bool:
    """Whether a choreographed ``saga`` runs on :class:`SharedChunk`: a coordinator (each
    service's outbox crashes), or steps that touch resources.

    >>> from sagasim.model import Saga, Step
    >>> needed(Saga(name="s", coordination="choreography", steps=(Step(name="a"),)))
    False
    """
    return saga.coordinator is not None or Store.needed(saga)


@dataclass(slots=True, eq=False)
class _Call:
    """An attempt of an action touching semantic locks, while it waits for one (``phase``:
    before its service starts, or before it ends ``ok``)."""

    inst: _Instance
    action: str
    attempt: int
    start: float  # when it was called: its timeout runs from here
    phase: int = CALL


class SharedChunk(Chunk):
    """One SimPy environment of ``n`` choreographed instances with outbox crashes, shared
    resources and semantic locks."""

    def __init__(
        self,
        saga: Saga,
        rng: np.random.Generator,
        n: int,
        first: int,
        trace_limit: int,
        crash_rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(saga, rng, n, first, trace_limit)
        coordinator = saga.coordinator
        self.crash = coordinator.crash if coordinator is not None else 0.0
        self.crash_rng = crash_rng if self.crash > 0 else None
        self.max_crashes = coordinator.max_crashes if coordinator is not None else 0
        self.crash_draws: list[float] = []
        self.restart_draws: list[float] = []
        self.service = {a: saga.service_of(self.action[a]) for a in self.chor.actions}
        self.index = {a: i for i, a in enumerate(self.chor.actions)}
        self.meta = Store(saga, list(self.action.values()), n)
        self.store = self.meta if self.shared and Store.needed(saga) else None
        self.parties: dict[int, Party] = {}
        self.down: dict[tuple[int, str], float] = {}  # (slot, service): when it is back
        self.waiting: dict[_Call, tuple[str, float]] = {}  # the lock waited for, since
        self.lined: dict[tuple[str, int], int] = {}  # (lock, slot): its calls in the lock's line
        self.crash_count, self.republished = [0] * n, [0] * n
        self.restarts: list[float] = []
        self.lock_waits: list[float] = []

    # --- instances
    def _begin(self, slot: int) -> _Instance:
        if self.store is not None:
            self.parties[slot] = Party(slot)
        return super()._begin(slot)

    def _finish(self, inst: _Instance, outcome: str) -> None:
        super()._finish(inst, outcome)
        party = self.parties.pop(inst.slot, None)
        if self.store is not None and party is not None:
            for r in self.store.end(party):
                self._grant(r)

    def _settle(self) -> None:
        """Instances still waiting for locks when nothing else can happen are deadlocked."""
        if self.store is None or not self.waiting:
            return
        stuck = {call.inst.slot: call.inst for call in self.waiting}
        self.waiting.clear()
        for line in self.store.queue.values():
            line.clear()
        self.lined.clear()
        for slot in sorted(stuck):
            inst = stuck[slot]
            if inst.events is not None:
                inst.events.append(TraceEvent(self.env.now - inst.origin, "deadlock", "stuck"))
            self._finish(inst, "stuck")

    # --- outbox crashes
    def _back(self, inst: _Instance, service: str) -> float:
        """When ``service`` is back for ``inst`` if it is down now, else -inf."""
        back = self.down.get((inst.slot, service))
        return back if back is not None and back > self.env.now else -math.inf

    def _crashes(self, inst: _Instance, service: str) -> bool:
        """Whether ``service`` crashes after the outbox write it makes now for ``inst``."""
        if self.crash_rng is None or self.crash_count[inst.slot] >= self.max_crashes:
            return False
        if self._back(inst, service) > -math.inf:
            return False
        if not self.crash_draws:
            self.crash_draws = self.crash_rng.random(self.block).tolist()
        return self.crash_draws.pop() < self.crash

    def _restart(self, inst: _Instance, service: str, where: str) -> float:
        """``service`` crashes now for ``inst``: down for a restart sample; how long."""
        if not self.restart_draws:
            restart = self.saga.coordinator.restart  # type: ignore[union-attr]
            samples = restart.sample(self.crash_rng, self.block)  # type: ignore[arg-type]
            self.restart_draws = np.asarray(samples, dtype=np.float64).tolist()
        wait = self.restart_draws.pop()
        now = self.env.now
        self.crash_count[inst.slot] += 1
        self.restarts.append(wait)
        self.down[(inst.slot, service)] = now + wait
        self._note(inst, f"{service}.crash", where)
        if inst.spans is not None:
            begun = now - inst.origin
            inst.spans.append(Span(service, 0, begun, begun + wait, "restart", False))
        return wait

    def _later(self, inst: _Instance, delay: float, then: Callable[[], None]) -> None:
        """Run ``then`` after ``delay``, the instance kept alive meanwhile."""
        inst.in_flight += 1

        def run() -> None:
            inst.in_flight -= 1
            then()
            self._quiet(inst)

        self._at(delay, run)

    def _publish(self, inst: _Instance, events: tuple[str, ...]) -> None:
        """The events of one local transaction, written to its service's outbox (log point 1)
        and relayed to the broker once the service is up."""
        by_service: dict[str, list[str]] = {}  # one service's, but for a saga's first events
        for event in events:
            by_service.setdefault(self.chor.service_of_event(event), []).append(event)
        for service, group in by_service.items():
            batch, where = tuple(group), group[0].rsplit(".", 1)[0]
            if self._crashes(inst, service):  # after log point 1: published once back
                wait = self._restart(inst, service, where)
                self._later(inst, wait, self._relayer(inst, batch, service, where))
            else:
                self._relay(inst, batch, service, where, False)

    def _relayer(
        self, inst: _Instance, events: tuple[str, ...], service: str, where: str
    ) -> Callable[[], None]:
        return lambda: self._relay(inst, events, service, where, True)

    def _relay(
        self, inst: _Instance, events: tuple[str, ...], service: str, where: str, back: bool
    ) -> None:
        """The relay publishes ``events`` (``back``: the service is back after a crash), then
        marks them published (log point 2)."""
        if back:
            self._note(inst, f"{service}.restart", where)
        super()._publish(inst, events)
        if self._crashes(inst, service):  # published, not marked: published again once back
            wait = self._restart(inst, service, where)
            self.republished[inst.slot] += 1
            self._later(inst, wait, self._relayer(inst, events, service, where))

    def _take(self, inst: _Instance, event: str, step: str) -> None:
        service = self.chor.role(step).service
        back = self._back(inst, service)
        if back > -math.inf:  # the service is down for this saga: taken once it is back
            self._at(back - self.env.now, self._take, inst, event, step)
            return
        super()._take(inst, event, step)

    # --- attempts
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
        now = self.env.now
        back = self._back(inst, self.service[action])
        if back > -math.inf:  # its service sees it end once it is back
            self._at(back - now, self._ended, inst, action, attempt, start, kind, code, finish)
            return
        if finish is not None and finish < now:
            finish = now  # seen late: a timed-out attempt's participant outcome lands at once
        store = self.store
        if store is not None and store.touched[self.index[action]]:
            touched = self._touch(inst, action, attempt, start, kind)
            if touched is None:
                return
            kind = touched
            code = kind if kind == FAIL else code
        super()._ended(inst, action, attempt, start, kind, code, finish)

    def _touch(
        self, inst: _Instance, action: str, attempt: int, start: float, kind: int
    ) -> int | None:
        """The resources of an attempt ending ``kind``: the kind its service sees (a refused
        write or a lock with ``on_locked: fail``: ``fail``), or None when it waits for a lock
        before it can end."""
        store, a, slot = self.store, self.index[action], inst.slot
        assert store is not None
        party = self.parties[slot]
        if kind != OK:
            self._ungrant(slot, action)
            return kind
        if store.locked[a] and (r := store.held_by_other(slot, a)) is not None:
            if store.fails_if_locked[a]:
                self._ungrant(slot, action)
                return FAIL
            self._wait(_Call(inst, action, attempt, start, END), r)
            return None
        if store.conflicts(party, a):
            self._ungrant(slot, action)
            return FAIL
        store.ok(party, a)
        self._ungrant(slot, action)
        for r in store.locked[a]:  # its own calls waiting for what it now holds go on
            self._grant(r)
        return OK

    def _attempt(
        self,
        inst: _Instance,
        action: str,
        attempt: int,
        delay: float = 0.0,
        called: float | None = None,
    ) -> None:
        store = self.store
        if store is None or not store.locked[self.index[action]] or called is not None:
            super()._attempt(inst, action, attempt, delay, called)
            return
        call = _Call(inst, action, attempt, self.env.now + delay)
        if delay > 0:
            self._at(delay, self._call, call)
        else:
            self._call(call)

    def _call(self, call: _Call) -> None:
        """An attempt of an action touching semantic locks is called: it looks at them before
        its service starts."""
        store, inst, a = self.store, call.inst, self.index[call.action]
        assert store is not None
        r = store.blocked(inst.slot, a)
        if r is None:
            self._serve(call)
        elif store.fails_if_locked[a]:  # fails at once: its service never starts
            self._counted(call)
            super()._ended(inst, call.action, call.attempt, call.start, FAIL, FAIL, None)
        else:
            self._wait(call, r)

    def _counted(self, call: _Call) -> None:
        """An attempt that ends without its service starting still counts as one."""
        self.attempts[call.action] += 1
        if self.compensation[call.action]:
            call.inst.compensations += 1

    def _serve(self, call: _Call) -> None:
        """``call``'s service starts now; its timeout from the call."""
        waited = self.env.now - call.start
        if self.resource[call.action] is not None:
            self.wait[call.action] -= waited  # the server's queue counts from here
        super()._attempt(call.inst, call.action, call.attempt, 0.0, call.start)

    # --- lock lines
    def _wait(self, call: _Call, r: str) -> None:
        """``call`` waits in ``r``'s line (first in line when it had been let through)."""
        store = self.store
        assert store is not None
        slot, now = call.inst.slot, self.env.now
        granted = store.granted[r]
        front = granted is not None and granted[0] == slot and granted[1] == call.action
        self._ungrant(slot, call.action, again=False)
        line = store.queue[r]
        (line.appendleft if front else line.append)((slot, call))
        self._count(r, slot, 1)
        self.waiting[call] = (r, now)
        deadline = call.start + self.timeout[call.action]
        if deadline < math.inf:
            self._at(max(deadline - now, 0.0), self._timed_out, call)

    def _timed_out(self, call: _Call) -> None:
        """A waiting attempt's timeout: it leaves the line; its call never reached the
        participant (a wait before its end: nothing it did stays)."""
        entry = self.waiting.pop(call, None)
        if entry is None:
            return  # let through meanwhile
        store, now = self.store, self.env.now
        assert store is not None
        r, since = entry
        store.queue[r].remove((call.inst.slot, call))
        self._count(r, call.inst.slot, -1)
        self._waited(call, since, now)
        if call.phase == CALL:  # never served
            self._counted(call)
        self._ended(call.inst, call.action, call.attempt, call.start, TIMEOUT, FAIL, now)

    def _ungrant(self, slot: int, action: str, again: bool = True) -> None:
        """``slot``'s attempt of ``action`` ended or waits again: the locks it was let through
        to pass to the next (``again``: let the next through now)."""
        store = self.store
        assert store is not None
        for r in store.locked[self.index[action]]:
            granted = store.granted[r]
            if granted is not None and granted[0] == slot and granted[1] == action:
                store.granted[r] = None
                if again:
                    self._grant(r)

    def _grant(self, r: str) -> None:
        """Let the first in ``r``'s line through while the lock is free."""
        store = self.store
        assert store is not None
        line, holder = store.queue[r], store.holder[r]
        if holder is not None and self.lined.get((r, holder)):  # the holder's own calls
            for entry in [e for e in line if e[0] == holder]:  # (a scan only when there are)
                line.remove(entry)
                self._count(r, holder, -1)
                self._let_through(r, entry[1], granted=False)
        while line and store.holder[r] is None and store.granted[r] is None:
            slot, call = line.popleft()
            self._count(r, slot, -1)
            self._let_through(r, call, granted=True)

    def _count(self, r: str, slot: int, by: int) -> None:
        """``slot``'s calls in ``r``'s line, up or down ``by``."""
        key = (r, slot)
        left = self.lined.get(key, 0) + by
        if left:
            self.lined[key] = left
        else:
            del self.lined[key]

    def _let_through(self, r: str, call: _Call, granted: bool) -> None:
        """``call`` leaves ``r``'s line: it ends now, or its service starts (``granted``: the
        lock is free, and kept for it until it ends)."""
        store, now = self.store, self.env.now
        assert store is not None
        _, since = self.waiting.pop(call)
        self._waited(call, since, now)
        inst, slot = call.inst, call.inst.slot
        if granted:
            store.granted[r] = (slot, call.action)
        if call.phase == END:  # it has been served: it ends now
            self._ended(inst, call.action, call.attempt, call.start, OK, OK, None)
            return
        other = store.blocked(slot, self.index[call.action], skip=r)
        if other is None:
            self._serve(call)
            return
        if granted:
            store.granted[r] = None
        store.queue[other].append((slot, call))
        self._count(other, slot, 1)
        self.waiting[call] = (other, now)

    def _waited(self, call: _Call, since: float, now: float) -> None:
        self.lock_waits.append(now - since)
        inst = call.inst
        if inst.spans is not None:
            t = inst.origin
            span = Span(call.action, call.attempt, since - t, now - t, "lock_wait", False)
            inst.spans.append(span)

    # --- results
    def run(self, seed: int) -> Results:
        results = super().run(seed)
        results.concurrency = concurrency_of(
            self.saga,
            self.store,
            self.n,
            locks=self.meta.locks,
            crashes=self.crash_count,
            in_doubt=self.republished,
            lock_waits=self.lock_waits,
            restarts=self.restarts,
        )
        return results


def run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int, trace_limit: int
) -> Results:
    """``n`` choreographed instances of ``saga`` from instance number ``first`` on
    :class:`SharedChunk`."""
    rng, crash_rng = (np.random.default_rng(s) for s in (seed_seq, coordinator_seed(seed_seq)))
    return SharedChunk(saga, rng, n, first, trace_limit, crash_rng).run(seed)
