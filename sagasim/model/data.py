"""Many instances at once: the data sagas share, and a coordinator that crashes.

A saga may name :class:`Resource` s (a seat count, a balance) that its steps read and write.
Concurrent instances then interfere, as sagas give up isolation: DESIGN.md, "Many instances at
once", says how (lost updates, dirty reads, stale compensations) and which countermeasure
removes what. A :class:`Coordinator` says how often the orchestrator crashes after a log write,
how long it takes to restart and how it recovers the call left in doubt.

Nothing here runs anything; :mod:`sagasim.verify` explores interleavings, :mod:`sagasim.sim`
simulates them, and :mod:`sagasim.analysis` works out crash effects exactly.

Examples
--------
>>> seats = Resource(name="seats", initial=10)
>>> seats.isolation, Write(resource="seats").mode
('none', 'set')
>>> Coordinator(crash=0.01).recovery
'backward'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .latency import Constant, Latency

__all__ = ["ISOLATIONS", "Coordinator", "Isolation", "Resource", "Write", "WriteMode"]

Isolation = Literal["none", "semantic_lock", "reread", "version"]
#: Countermeasures, cheapest first (the order lint tries them in; ``add`` is a write mode).
ISOLATIONS: tuple[Isolation, ...] = ("none", "reread", "version", "semantic_lock")
WriteMode = Literal["set", "add"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """A piece of data that instances share: its ``initial`` value and its isolation.

    ``on_locked`` says what an attempt does that finds a ``semantic_lock`` held by another
    instance: ``wait`` until it is released, or ``fail`` at once (transiently).
    """

    name: str
    initial: float = 0.0
    isolation: Isolation = "none"
    on_locked: Literal["wait", "fail"] = "wait"


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """How a step changes a resource when its attempt ends ``ok``.

    ``set``: read-modify-write, the value this instance last read (or, if it read none, the
    current value) plus ``by``; ``add``: the current value plus ``by`` (writes commute). The
    step's compensation writes back the value it replaced (``set``) or adds ``-by`` (``add``).
    """

    resource: str
    mode: WriteMode = "set"
    by: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Coordinator:
    """The orchestrator's faults: after each log write it crashes with probability ``crash``
    (at most ``max_crashes`` times per saga), is down for a ``restart`` sample, and then
    resumes from its log, recovering a call left in doubt ``forward`` (re-run it, Seata's
    Forward) or ``backward`` (compensate, Seata's Compensate)."""

    crash: float = 0.0
    restart: Latency = field(default_factory=Constant)
    recovery: Literal["forward", "backward"] = "backward"
    max_crashes: int = 1
