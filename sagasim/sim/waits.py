"""The events the SimPy orchestration engine (:mod:`sagasim.sim.orchestration`) schedules and
what its instances hold: bare events, a service's servers, attempts in flight, instances, and
what sharing resources and a crashing coordinator add (:mod:`sagasim.sim.shared`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simpy.events import NORMAL
from statemachine import StateMachine

from ..machine.participants import Participants
from .planning import Ledger
from .resources import Party
from .traces import Span, TraceEvent

__all__ = ["AnyOf", "Callback", "Flight", "Instance", "Landing", "Member", "Servers", "Timer"]

#: An event callback, as :meth:`simpy.Environment.step` calls it.
Callback = Callable[[Any], None]


class Timer:
    """A bare event: what :meth:`simpy.Environment.step` reads (``callbacks``, ``_ok``) and what
    its callbacks need (the instance, the attempt). Lists of callbacks may be shared: the
    environment never changes them, it only drops its reference before calling them."""

    __slots__ = ("_ok", "callbacks", "flight", "inst")

    def __init__(self, callbacks: list[Callback], inst: Instance | None, flight: Any = None):
        self.callbacks: list[Callback] | None = callbacks
        self._ok, self.inst, self.flight = True, inst, flight


class Servers:
    """A service's capacity as :class:`simpy.Resource` grants it: a FIFO of requests (bare
    events), only its head tried when a request arrives or a release is processed; a grant
    counts at once and is scheduled now; a release frees the server at once and is scheduled
    now, and only its processing lets the next request in."""

    __slots__ = ("capacity", "queue", "schedule", "try_cbs", "users")

    def __init__(self, capacity: int, schedule: Callable[..., None]) -> None:
        self.capacity, self.users, self.schedule = capacity, 0, schedule
        self.queue: deque[Timer] = deque()
        self.try_cbs: list[Callback] = [self.try_head]

    def take(self) -> bool:
        """Take a server now if one is free and no one waits for it."""
        if self.queue or self.users >= self.capacity:
            return False
        self.users += 1
        return True

    def request(self, grant: Timer) -> None:
        self.queue.append(grant)
        self.try_head(None)

    def try_head(self, _event: Any) -> None:
        if self.queue and self.users < self.capacity:
            self.users += 1
            self.schedule(self.queue.popleft(), NORMAL, 0)

    def release(self) -> None:
        self.users -= 1
        if self.queue:  # else its processing would find no one to let in: a request made
            self.schedule(Timer(self.try_cbs, None), NORMAL, 0)  # before it tries at once


class Flight:
    """One attempt in flight: when the orchestrator sees it end and how (``due``, ``kind``);
    the participant's outcome and when it happens (``code``, ``finish``: None until a queued
    attempt gets its server). A queued attempt also has ``ready`` (triggered when ``due`` is
    known), ``latency``, the ``servers`` it holds until the orchestrator takes its event, and
    ``consumed`` (the orchestrator saw it time out)."""

    __slots__ = (
        "action", "attempt", "code", "consumed", "due", "finish", "kind", "latency", "ready",
        "servers", "start",
    )  # fmt: skip

    def __init__(
        self, action: int, attempt: int, start: float, due: float, kind: int,
        finish: float | None, code: int,
    ) -> None:  # fmt: skip
        self.action, self.attempt, self.start, self.due = action, attempt, start, due
        self.kind, self.finish, self.code = kind, finish, code
        self.ready: Timer | None = None
        self.latency = 0.0
        self.servers: Servers | None = None
        self.consumed = False


@dataclass(slots=True, eq=False)
class Instance:
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
    flights: list[Flight] | None = None  # the attempts in flight, in the state's order
    next: Flight | None = None  # the attempt waited for, at ``position`` in flights
    position: int = 0
    live: StateMachine | None = None  # the python-statemachine instance (driver="library")
    timer: Timer | None = None  # its wake-up, reused: an instance waits for one at a time
    landings: int = 0  # timeouts taken whose outcome has not landed yet: see Chunk._time_out


class AnyOf:
    """``env.any_of(events)``: the first of them schedules the instance's resumption now (the
    chunk's ``resume_cbs``)."""

    __slots__ = ("chunk", "done", "inst")

    def __init__(self, chunk: Any, inst: Instance) -> None:
        self.chunk, self.inst, self.done = chunk, inst, False

    def check(self, _event: Any) -> None:
        if not self.done:
            self.done = True
            self.chunk.schedule(Timer(self.chunk.resume_cbs, self.inst), NORMAL, 0)


@dataclass(slots=True, eq=False)
class Member(Instance):
    """An instance with what it holds of the shared resources and its coordinator's crashes."""

    party: Party | None = None
    crashes: int = 0
    pending: Flight | None = None  # the call in doubt, until recovery takes its edge
    down: tuple[float, float] = (math.inf, math.inf)  # the coordinator's last restart


class Landing(Participants):
    """The participants' bookkeeping, with the landing of a call left in doubt."""

    def land(self, ledger: Ledger, action: str, running: tuple[str, ...]) -> Ledger:
        """The call of ``action`` a crash left in doubt lands now: as a late landing (a
        duplicate, hanging or late leak where one is), with nothing pending."""
        if action in self.undoes:
            return self._undo(ledger, self.undoes[action])
        if action not in self.effect_index:
            return ledger
        return self._apply(ledger, action, late=True, running=action in running)
