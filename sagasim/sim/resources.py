"""Shared resources as instances arriving together see them (docs/concurrency.md): each
resource's value and writes, each instance's last reads and the writes it may have to undo,
the anomalies that follow, and the semantic locks with their waiting lines.

:mod:`sagasim.sim.shared` calls it when attempts end ``ok``; the rules are the doc's:

* a read takes the current value as the instance's last read;
* a ``set`` write is the last read plus ``by`` (the current value plus ``by`` without a read:
  an atomic read-modify-write); if another instance wrote since that read, it is a
  ``lost_update`` of the writer; an ``add`` write adds ``by``;
* a compensation writes back the value its step replaced (``set``) or adds ``-by`` (``add``);
  over another instance's later write that is a ``stale_compensation``, except under
  ``version``, which applies the inverse of its own change instead;
* a read of a value whose writer's saga has not ended is remembered, and when that writer
  compensates the write, the reader has a ``dirty_read`` (under ``add`` a read sees every write
  not yet compensated, so it is remembered against each);
* ``reread`` and ``version`` refuse a ``set`` write whose instance read a value another
  instance has since overwritten (:meth:`Store.conflicts`);
* a ``semantic_lock`` is taken by an instance at the ``ok`` of an attempt touching the resource
  and held until its saga ends; the waiting line is first come, first served.

Examples
--------
>>> from sagasim.model import Resource, Saga, Step, Write
>>> saga = Saga(name="s", resources=(Resource(name="seats", initial=10),), steps=(
...     Step(name="count", effects=False, reads=("seats",)),
...     Step(name="book", writes=(Write(resource="seats", by=-1),)),
... ))
>>> store = Store(saga, list(saga.actions()), 2)
>>> a, b = Party(0), Party(1)
>>> store.ok(a, 0); store.ok(b, 0)       # both count 10 seats
>>> store.ok(a, 1); store.ok(b, 1)       # both write back 9
>>> store.value["seats"], store.lost
(9.0, [0, 1])
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model.data import Write
from ..model.saga import Action, Saga, Step
from .concurrency import Concurrency

__all__ = ["Party", "Store", "Written", "concurrency_of"]


@dataclass(slots=True)
class Written:
    """One write a step made, kept until its compensation undoes it: the resource's version
    after it (1 for the resource's first write), the value it replaced and the one it wrote."""

    resource: str
    version: int
    replaced: float
    new: float
    by: float


@dataclass(slots=True, eq=False)
class Party:
    """What one instance holds of the shared resources."""

    slot: int
    #: per resource: the value last read (or written) and the resource's version then
    last_read: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: per step: the writes of each of its ``ok`` attempts not yet undone, latest last
    written: dict[str, list[list[Written]]] = field(default_factory=dict)
    #: the writes others may read dirty while this saga runs: (resource, version)
    open: list[tuple[str, int]] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # semantic locks held


class Store:
    """The resources of one shared run (one chunk with arrivals) and the anomalies of its
    ``n`` instances, per instance slot (``lost``, ``dirty``, ``stale``)."""

    def __init__(self, saga: Saga, actions: list[Action], n: int) -> None:
        resources = {r.name: r for r in saga.all_resources()}
        self.isolation = {name: r.isolation for name, r in resources.items()}
        self.value = {name: float(r.initial) for name, r in resources.items()}
        #: the writer's slot of each version of each resource (version v at index v - 1)
        self.writers: dict[str, list[int]] = {name: [] for name in resources}
        #: writes whose saga has not ended: version -> (writer's slot, readers' slots)
        self.open: dict[str, dict[int, tuple[int, list[int]]]] = {name: {} for name in resources}
        self.lost, self.dirty, self.stale = [0] * n, [0] * n, [0] * n
        steps = {s.compensation.name: s for s in saga.all_steps() if s.compensation is not None}
        self.mode = {name: "set" for name in resources}
        for a in actions:
            for w in a.writes:
                self.mode[w.resource] = w.mode
        # per action index: what it reads, writes and, for a compensation, the step it undoes
        self.names = [a.name for a in actions]
        self.reads = [a.reads if isinstance(a, Step) else () for a in actions]
        self.undoes = [steps[a.name].name if a.name in steps else None for a in actions]
        self.writes: list[tuple[Write, ...]] = [
            steps[a.name].writes if a.name in steps else a.writes for a in actions
        ]
        touched = [{w.resource for w in ws} | set(rs) for ws, rs in zip(self.writes, self.reads)]
        self.touched = [bool(t) for t in touched]
        lock = [r for r, iso in self.isolation.items() if iso == "semantic_lock"]
        self.locked = [tuple(r for r in lock if r in t) for t in touched]
        self.fails_if_locked = [
            isinstance(a, Step) and any(resources[r].on_locked == "fail" for r in locked)
            for a, locked in zip(actions, self.locked)
        ]
        self.locks = any(self.locked)
        self.holder: dict[str, int | None] = dict.fromkeys(lock)
        #: per lock: the attempt let through after a release, until it ends (slot, token)
        self.granted: dict[str, tuple[int, Any] | None] = dict.fromkeys(lock)
        self.queue: dict[str, deque[tuple[int, Any]]] = {r: deque() for r in lock}

    @staticmethod
    def needed(saga: Saga) -> bool:
        """Whether any action of ``saga`` reads or writes a resource."""
        return any(a.writes or (isinstance(a, Step) and a.reads) for a in saga.actions())

    # --- reading and writing
    def _overwritten(self, slot: int, resource: str, version: int) -> bool:
        return any(w != slot for w in self.writers[resource][version:])

    def conflicts(self, party: Party, action: int) -> bool:
        """Whether ``reread`` or ``version`` refuses the ``set`` writes of ``action``'s attempt
        ending ``ok``: another instance wrote since ``party`` last read. The refused
        resources are read again (the instance's last read becomes the current value)."""
        if self.undoes[action] is not None:
            return False  # a compensation is never refused
        refused = [
            w.resource
            for w in self.writes[action]
            if w.mode == "set"
            and self.isolation[w.resource] in ("reread", "version")
            and w.resource not in self.reads[action]
            and w.resource in party.last_read
            and self._overwritten(party.slot, w.resource, party.last_read[w.resource][1])
        ]
        for r in refused:
            party.last_read[r] = (self.value[r], len(self.writers[r]))
        return bool(refused)

    def ok(self, party: Party, action: int) -> None:
        """``action``'s attempt ended ``ok`` for ``party``: its reads, then its writes (or its
        undo), then the semantic locks it touches are taken."""
        for r in self.reads[action]:
            self._read(party, r)
        step = self.undoes[action]
        if step is not None:
            stack = party.written.get(step)
            if stack:  # else the step wrote nothing: nothing to undo
                for record in stack.pop():
                    self._undo(party, record)
        elif self.writes[action]:
            done = [self._write(party, w) for w in self.writes[action]]
            party.written.setdefault(self.names[action], []).append(done)
        for r in self.locked[action]:
            self.holder[r] = party.slot
            party.held.add(r)

    def _read(self, party: Party, r: str) -> None:
        version = len(self.writers[r])
        party.last_read[r] = (self.value[r], version)
        live = self.open[r]
        if self.mode[r] == "add":  # the value holds every write not compensated
            for writer, readers in live.values():
                if writer != party.slot:
                    readers.append(party.slot)
        elif version in live and live[version][0] != party.slot:
            live[version][1].append(party.slot)

    def _write(self, party: Party, w: Write) -> Written:
        r, slot = w.resource, party.slot
        current = self.value[r]
        if w.mode == "add":
            new = current + w.by
        elif r in party.last_read:
            base, version = party.last_read[r]
            if self._overwritten(slot, r, version):
                self.lost[slot] += 1
            new = base + w.by
        else:  # no read of its own: read and written in the step's local transaction
            new = current + w.by
        version = self._commit(party, r, new)
        self.open[r][version] = (slot, [])
        party.open.append((r, version))
        return Written(r, version, current, new, w.by)

    def _undo(self, party: Party, record: Written) -> None:
        r, slot = record.resource, party.slot
        current = self.value[r]
        if self.mode[r] == "add":
            new = current - record.by
        elif not self._overwritten(slot, r, record.version):
            new = record.replaced
        elif self.isolation[r] == "version":  # the inverse of its own change
            new = current - (record.new - record.replaced)
        else:
            self.stale[slot] += 1
            new = record.replaced
        entry = self.open[r].pop(record.version, None)
        if entry is not None:
            for reader in set(entry[1]):
                self.dirty[reader] += 1
        self._commit(party, r, new)

    def _commit(self, party: Party, r: str, value: float) -> int:
        self.value[r] = value
        self.writers[r].append(party.slot)
        version = len(self.writers[r])
        party.last_read[r] = (value, version)
        return version

    # --- ends and locks
    def end(self, party: Party) -> list[str]:
        """``party``'s saga ended: its writes are no longer dirty; the locks it held are
        released (returned, so that their waiting lines move on)."""
        for r, version in party.open:
            self.open[r].pop(version, None)
        party.open.clear()
        released = sorted(party.held)
        for r in released:
            self.holder[r] = None
        party.held.clear()
        return released

    def held_by_other(self, slot: int, action: int) -> str | None:
        """The first lock ``action`` touches that another instance holds."""
        for r in self.locked[action]:
            if self.holder[r] not in (None, slot):
                return r
        return None

    def blocked(self, slot: int, action: int, skip: str | None = None) -> str | None:
        """The first lock that keeps ``action``'s call from starting: held by another
        instance, let through to another's attempt, or with others waiting (``skip``: a lock
        just granted to this call)."""
        for r in self.locked[action]:
            holder, granted = self.holder[r], self.granted[r]
            if holder == slot:
                continue
            if holder is not None:
                return r
            if r != skip and ((granted is not None and granted[0] != slot) or self.queue[r]):
                return r
        return None


def concurrency_of(
    saga: Saga,
    store: Store | None,
    n: int,
    *,
    locks: bool,
    crashes: list[int],
    in_doubt: list[int],
    lock_waits: list[float],
    restarts: list[float],
) -> Concurrency:
    """What a chunk of ``n`` instances of ``saga`` found (both engines' shared chunks): the
    ``store``'s anomaly counts per instance and final values (none without one), and the
    crashes, calls in doubt, lock waits and restarts the chunk kept."""
    counts = ([0] * n,) * 3 if store is None else (store.lost, store.dirty, store.stale)
    lost, dirty, stale = (np.array(c, dtype=np.uint16) for c in counts)
    return Concurrency(
        lost_updates=lost,
        dirty_reads=dirty,
        stale_compensations=stale,
        crashes=np.array(crashes, dtype=np.uint8),
        in_doubt=np.array(in_doubt, dtype=np.uint8),
        lock_wait_ms=np.array(lock_waits, dtype=np.float64),
        restart_ms=np.array(restarts, dtype=np.float64),
        final=dict(store.value) if store is not None else None,
        resources=Store.needed(saga),
        locks=locks,
        coordinator=saga.coordinator is not None,
    )
