"""``check`` with many instances at once: every interleaving of ``saga.instances`` instances
over the resources they share, and the isolation anomalies each can reach (docs/concurrency.md).

A global state is the instances' *local* states, sorted, and the anomalies met on the way. A
local state is a tuple of small ints: the instance's control (machine state and attempt
numbers, interned by the single-instance explorer's :class:`~sagasim.verify.statespace._Memo`
with the participants off) and, per resource, what the anomalies depend on:

* ``read`` (resources written with ``set``): none, fresh, or stale (another instance wrote
  since this one's last read);
* one *record* per step that writes the resource: none, current (its write made the current
  value), superseded (by this instance's own later write, or by any later write of a
  counter), or overwritten (another instance wrote a register since), and whether another
  instance read it while it was in the value: a register's value is its last write's, a
  counter's holds every write not yet undone;
* ``lock`` (``semantic_lock`` resources): whether this instance holds it.

An instance that has ended keeps only its control: it releases its locks, and nothing it did
can be undone any more. No fact names another instance, so sorting the locals is a correct
symmetry reduction (instances are interchangeable). Values are not kept: the anomalies depend
on who wrote after whom, not on the numbers. Exploration is breadth-first with parent pointers,
so the first state that reaches an anomaly gives its shortest trace, each event prefixed by the
instance it belongs to as if nothing had been reduced (``2:book_seat.ok``). An attempt that a
countermeasure refuses ends ``ACTION.conflict`` (the machine's ``fail`` edge). A timed-out
attempt never lands here (late landings are the single-instance explorer's business, as are
coordinator crashes), and a choice is taken at once, before any other instance moves (it
touches no resource). A step's reads happen before its writes, so a step that reads and
writes a register loses nothing.

Examples
--------
>>> from sagasim.model import Compensation, Resource, Saga, Step, Write
>>> seats = Saga(name="seats", resources=(Resource(name="seats"),), instances=2, steps=(
...     Step(name="count", effects=False, reads=("seats",)),
...     Step(name="book", writes=(Write(resource="seats", by=-1),),
...          compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.2),
... ))
>>> space = explore_instances(seats)
>>> space.reachable()
{'lost_update': ('seats',), 'dirty_read': ('seats',), 'stale_compensation': ('seats',)}
>>> space.trace("lost_update")
('1:count.ok', '2:count.ok', '1:book.ok', '2:book.ok')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..exceptions import StateSpaceLimitError
from ..machine.orchestration import compile_saga
from ..machine.program import core
from ..model import Action, Saga, Step, SubSaga, walk
from .statespace import DEFAULT_MAX_STATES, _Memo

__all__ = ["ANOMALIES", "CONFLICT", "KINDS", "InterleavedSpace", "explore_instances", "interleaves"]

#: The isolation anomalies, in the order they are reported.
ANOMALIES = ("lost_update", "dirty_read", "stale_compensation")
#: What the interleaving can find: the anomalies, and instances that wait on each other for good.
KINDS = (*ANOMALIES, "deadlock")
#: The event kind of an attempt a countermeasure refuses (a transient failure, no effect).
CONFLICT = "conflict"

# read statuses (0: never read)
_FRESH, _STALE = 1, 2
# record statuses; the slot after a record's status says whether another instance read it
_NONE, _CURRENT, _SUPERSEDED, _OVERWRITTEN = 0, 1, 2, 3

Local = tuple[int, ...]
Key = tuple[tuple[Local, ...], int]


def interleaves(saga: Saga) -> bool:
    """Whether ``check`` explores interleaved instances: more than one, and some action reads
    or writes a resource.

    >>> from sagasim.model import Saga, Step
    >>> interleaves(Saga(name="s", instances=2, steps=(Step(name="a"),)))
    False
    """
    touches = any(a.writes or (isinstance(a, Step) and a.reads) for a in saga.actions())
    return saga.instances > 1 and touches


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an attempt of one action does to the resources when it ends ``ok`` (slots are
    indices into a local state; resources are indices into :attr:`_Layout.names`)."""

    reads: tuple[int, ...] = ()
    writes: tuple[tuple[int, int], ...] = ()  # (resource, its record's status slot)
    undoes: tuple[tuple[int, int], ...] = ()  # the same, in the order the undo runs
    locks: tuple[int, ...] = ()  # lock slots taken
    waits: tuple[int, ...] = ()  # lock slots that, held by another, keep the attempt waiting
    refuses: tuple[int, ...] = ()  # lock slots that, held by another, fail it at once
    rereads: tuple[int, ...] = ()  # read slots a reread or version check looks at


class _Layout:
    """Where each fact sits in a local state, and what each action does to them."""

    def __init__(self, saga: Saga) -> None:
        declared = {r.name: r for r in saga.all_resources()}
        steps = list(saga.all_steps())
        touched = {w.resource for a in saga.actions() for w in a.writes}
        touched |= {name for s in steps for name in s.reads}
        self.names = tuple(name for name in declared if name in touched)
        index = {name: i for i, name in enumerate(self.names)}
        self.resources = tuple(declared[name] for name in self.names)
        self.modes = ["add"] * len(self.names)
        for a in saga.actions():
            for w in a.writes:
                self.modes[index[w.resource]] = w.mode
        size = 1
        self.read_slot: list[int] = []
        for r in range(len(self.names)):
            written = any(w.resource == self.names[r] for a in saga.actions() for w in a.writes)
            self.read_slot.append(size if written and self.modes[r] == "set" else -1)
            size += self.read_slot[-1] > 0
        self.lock_slot: list[int] = []
        for resource in self.resources:
            self.lock_slot.append(size if resource.isolation == "semantic_lock" else -1)
            size += self.lock_slot[-1] > 0
        self.records: list[list[int]] = [[] for _ in self.names]
        record: dict[tuple[str, int], int] = {}
        for step in steps:
            for w in step.writes:
                r = index[w.resource]
                record[(step.name, r)] = size
                self.records[r].append(size)
                size += 2
        self.size = size
        self.plans: dict[str, _Plan] = {}
        for step in steps:
            self.plans[step.name] = self.step_plan(step, index, record)
        for entry in walk(saga.steps):
            if isinstance(entry, Step) and entry.compensation is not None:
                self.plans[entry.compensation.name] = self.undo_plan((entry,), record)
            elif isinstance(entry, SubSaga) and entry.compensation is not None:
                undone = tuple(reversed(list(entry.saga.all_steps())))
                self.plans[entry.compensation.name] = self.undo_plan(undone, record)

    def step_plan(
        self, step: Step, index: dict[str, int], record: dict[tuple[str, int], int]
    ) -> _Plan:
        reads = tuple(index[name] for name in step.reads)
        writes = tuple(
            (index[w.resource], record[(step.name, index[w.resource])]) for w in step.writes
        )
        touched = sorted({*reads, *(r for r, _ in writes)})
        locks = [r for r in touched if self.lock_slot[r] > 0]
        checked = ("reread", "version")
        return _Plan(
            reads=reads,
            writes=writes,
            locks=tuple(self.lock_slot[r] for r in locks),
            waits=tuple(self.lock_slot[r] for r in locks if self.resources[r].on_locked == "wait"),
            refuses=tuple(
                self.lock_slot[r] for r in locks if self.resources[r].on_locked == "fail"
            ),
            rereads=tuple(
                self.read_slot[r]
                for r, _ in writes
                if self.modes[r] == "set"
                and self.resources[r].isolation in checked
                and r not in reads
            ),
        )

    def undo_plan(self, steps: tuple[Step, ...], record: dict[tuple[str, int], int]) -> _Plan:
        undoes = [
            (r, record[(step.name, r)])
            for step in steps
            for r in range(len(self.names))
            if (step.name, r) in record
        ]
        return _Plan(undoes=tuple(undoes))

    def bit(self, kind: str, resource: int) -> int:
        return 1 << (ANOMALIES.index(kind) * len(self.names) + resource)

    def found(self, bits: int) -> Iterator[tuple[str, str]]:
        """The (anomaly, resource) pairs set in ``bits``."""
        for kind in ANOMALIES:
            for r, name in enumerate(self.names):
                if bits & self.bit(kind, r):
                    yield kind, name


#: A move of one instance: (action, kind, event, target control, conflict target, plan).
_Move = tuple[str, str, str, int, int, "_Plan | None"]


class _Explorer:
    """The moves of interleaved instances: what each local state can do, and what a move does
    to every instance's facts."""

    def __init__(self, saga: Saga, instances: int) -> None:
        self.saga = saga
        self.instances = instances
        self.machine = compile_saga(saga)
        self.memo = _Memo(saga, self.machine, None, timed=False)
        self.layout = _Layout(saga)
        actions: dict[str, Action] = {a.name: a for a in saga.actions()}
        alone = replace(saga, instances=1, arrivals=None)
        #: Whether an attempt can fail by itself (the machine's fail edge may be there for
        #: conflicts only).
        self.fails = {name: alone.can_fail(a) for name, a in actions.items()}
        self.move_table: dict[int, tuple[_Move, ...]] = {}
        self.terminal: dict[int, bool] = {}
        initial = self.machine.initial
        control = self.memo.control(initial, tuple(1 for _ in self.machine.states[initial].running))
        self.start: Key = (((control,) + (0,) * (self.layout.size - 1),) * instances, 0)

    def ended(self, control: int) -> bool:
        done = self.terminal.get(control)
        if done is None:
            sid = self.memo.controls[control][0]
            done = self.terminal[control] = self.machine.states[sid].outcome is not None
        return done

    def moves(self, control: int) -> tuple[_Move, ...]:
        moves = self.move_table.get(control)
        if moves is not None:
            return moves
        edges = self.memo.control_moves[control] or self.memo.expand_control(control)
        fail_target = {action: target for target, _, _, action, kind, _ in edges if kind == "fail"}
        found: list[_Move] = []
        for target, _, _, action, kind, event in edges:
            if kind == "fail" and not self.fails.get(action, True):
                continue  # the edge is there for conflict failures only
            plan = self.layout.plans.get(action)
            if plan is not None and plan == _Plan():
                plan = None
            conflict = fail_target.get(action, -1)
            found.append((action, kind, event, target, conflict, plan))
        self.move_table[control] = result = tuple(found)
        return result

    def successors(self, key: Key) -> Iterator[tuple[int, str, list[Local], int]]:
        """Every move from ``key``: (position of the instance that moves, its event, the new
        locals in the same order as ``key``'s, the anomaly bits after it)."""
        locals_, bits = key
        deciding = [p for p, local in enumerate(locals_) if self.memo.deciding[local[0]]]
        for pos in deciding[:1] or range(len(locals_)):
            mine = locals_[pos]
            if pos and locals_[pos - 1] == mine:
                continue  # the same moves as the instance before it: the same states, sorted
            for action, kind, event, target, conflict, plan in self.moves(mine[0]):
                if plan is None:
                    yield pos, event, self.moved(locals_, pos, list(mine), target), bits
                    continue
                others = [local for p, local in enumerate(locals_) if p != pos]
                if kind != "timeout" and any(o[s] for s in plan.waits for o in others):
                    continue  # waits for a lock another instance holds
                if kind != "ok":
                    yield pos, event, self.moved(locals_, pos, list(mine), target), bits
                    continue
                refused = any(o[s] for s in plan.refuses for o in others)
                stale = [s for s in plan.rereads if mine[s] == _STALE]
                if refused or stale:
                    assert conflict >= 0, f"{action} has no fail edge for a conflict"
                    local = list(mine)
                    for s in stale if not refused else ():
                        local[s] = _FRESH  # the participant reread the current value
                    yield (
                        pos,
                        f"{action}.{CONFLICT}",
                        self.moved(locals_, pos, local, conflict),
                        bits,
                    )
                    continue
                new = [list(local) for local in locals_]
                landed = self.land(new, pos, plan)
                yield pos, event, self.moved(new, pos, new[pos], target), bits | landed

    def moved(self, locals_: Any, pos: int, mine: list[int], target: int) -> list[Local]:
        """``locals_`` with instance ``pos`` as ``mine`` in control ``target`` (cleared if it
        ended there)."""
        if self.ended(target):
            local: Local = (target,) + (0,) * (self.layout.size - 1)
        else:
            mine[0] = target
            local = tuple(mine)
        return [local if p == pos else tuple(other) for p, other in enumerate(locals_)]

    def land(self, new: list[list[int]], a: int, plan: _Plan) -> int:
        """Apply instance ``a``'s attempt that ended ``ok`` to ``new``; the anomalies it makes."""
        layout, mine, bits = self.layout, new[a], 0
        for r in plan.reads:
            if layout.read_slot[r] > 0:
                mine[layout.read_slot[r]] = _FRESH
            # a register's value is its last write's; a counter's, every write not undone
            seen = (_CURRENT,) if layout.modes[r] == "set" else (_CURRENT, _SUPERSEDED)
            for b, other in enumerate(new):
                for s in layout.records[r] if b != a else ():
                    if other[s] in seen:
                        other[s + 1] = 1  # read while its write was in the value
        for r, s in plan.writes:
            read = layout.read_slot[r]
            if layout.modes[r] == "set" and mine[read] == _STALE:
                bits |= layout.bit("lost_update", r)
            self.wrote(new, a, r)
            mine[s], mine[s + 1] = _CURRENT, 0
            if read > 0:
                mine[read] = _FRESH  # its last read is the value it wrote
        for r, s in plan.undoes:
            if mine[s] == _NONE:
                continue  # the step did not write: nothing to undo
            if mine[s + 1]:
                bits |= layout.bit("dirty_read", r)
            over = mine[s] == _OVERWRITTEN and layout.resources[r].isolation != "version"
            if layout.modes[r] == "set" and over:
                bits |= layout.bit("stale_compensation", r)
            mine[s], mine[s + 1] = _NONE, 0
            self.wrote(new, a, r)
        for s in plan.locks:
            mine[s] = 1
        return bits

    def wrote(self, new: list[list[int]], a: int, r: int) -> None:
        """Instance ``a`` wrote resource ``r``: every other instance's read of it is stale, and
        every earlier write of it no longer current."""
        layout = self.layout
        read, records, register = layout.read_slot[r], layout.records[r], layout.modes[r] == "set"
        for b, other in enumerate(new):
            if b == a:
                for s in records:
                    if other[s] == _CURRENT:
                        other[s] = _SUPERSEDED
                continue
            if read > 0 and other[read] == _FRESH:
                other[read] = _STALE
            for s in records:
                if other[s] != _NONE:
                    other[s] = _OVERWRITTEN if register else _SUPERSEDED

    def waiting_on(self, locals_: tuple[Local, ...]) -> set[str]:
        """The resources instances wait on in ``locals_`` (a deadlock's)."""
        names = set()
        for pos, mine in enumerate(locals_):
            others = [local for p, local in enumerate(locals_) if p != pos]
            for _, _, _, _, _, plan in self.moves(mine[0]):
                for s in plan.waits if plan is not None else ():
                    if any(o[s] for o in others):
                        names.add(self.layout.names[self.layout.lock_slot.index(s)])
        return names


@dataclass(slots=True, kw_only=True)
class InterleavedSpace:
    """Every reachable global state of ``instances`` interleaved instances (see the module).

    ``ends`` counts the end states (no move left) with each of :data:`KINDS`; ``first`` maps
    ``(kind, resource)`` to the first state, in breadth-first order, that reached it (the
    shortest way there), ``parent`` and ``via`` say how each state was first reached.
    """

    saga: Saga
    instances: int
    resources: tuple[str, ...]
    states: int = 0
    transitions: int = 0
    end_states: int = 0
    ends: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    first: dict[tuple[str, str], int] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list, repr=False)
    parent: list[int] = field(default_factory=list, repr=False)
    via: list[tuple[int, str]] = field(default_factory=list, repr=False)
    explorer: _Explorer | None = field(default=None, repr=False)

    def reachable(self) -> dict[str, tuple[str, ...]]:
        """Each kind reached, with the resources it was reached on (in declaration order)."""
        found: dict[str, tuple[str, ...]] = {}
        for kind in KINDS:
            on = tuple(name for name in (*self.resources, "") if (kind, name) in self.first)
            if on:
                found[kind] = on
        return found

    def trace(self, kind: str, resource: str | None = None) -> tuple[str, ...]:
        """The shortest interleaved trace to ``kind`` (on ``resource``, or on any)."""
        states = [
            i for (k, name), i in self.first.items() if k == kind and resource in (None, name)
        ]
        if not states:
            raise KeyError((kind, resource))
        return self.trace_to(min(states))

    def trace_to(self, index: int) -> tuple[str, ...]:
        """The events from the start to state ``index``, each as ``INSTANCE:ACTION.KIND`` with
        instances numbered 1 to n as they would be without symmetry reduction."""
        assert self.explorer is not None
        path = []
        while index:
            path.append(index)
            index = self.parent[index]
        labels = list(range(1, self.instances + 1))
        trace = []
        for j in reversed(path):
            pos, event = self.via[j]
            new = next(
                new
                for q, e, new, _ in self.explorer.successors(self.keys[self.parent[j]])
                if (q, e) == (pos, event)
            )
            trace.append(f"{labels[pos]}:{event}")
            # instances in the same local state are interchangeable: keep their numbers in order
            order = sorted(range(self.instances), key=lambda k: (new[k], labels[k]))
            labels = [labels[k] for k in order]
        return tuple(trace)

    def follow(self, trace: tuple[str, ...] | list[str]) -> tuple[set[tuple[str, str]], bool]:
        """The (anomaly, resource) pairs a trace of ``INSTANCE:ACTION.KIND`` events reaches,
        and whether it ends where no instance can move; a ``ValueError`` if it cannot happen.

        >>> from sagasim.model import Resource, Saga, Step, Write
        >>> saga = Saga(name="s", resources=(Resource(name="r"),), instances=2, steps=(
        ...     Step(name="look", effects=False, reads=("r",)),
        ...     Step(name="put", writes=(Write(resource="r"),))))
        >>> explore_instances(saga).follow(["1:look.ok", "2:look.ok", "2:put.ok", "1:put.ok"])
        ({('lost_update', 'r')}, True)
        """
        assert self.explorer is not None
        key, labels = self.explorer.start, list(range(1, self.instances + 1))
        for item in trace:
            label, _, event = item.partition(":")
            pos = labels.index(int(label)) if label.isdigit() and int(label) in labels else -1
            if pos < 0:
                raise ValueError(f"{item}: no instance {label}")
            # the explorer moves the first of the instances in the same local state
            first = key[0].index(key[0][pos])
            labels[first], labels[pos] = labels[pos], labels[first]
            found = [
                (new, bits)
                for q, e, new, bits in self.explorer.successors(key)
                if (q, e) == (first, event)
            ]
            if not found:
                raise ValueError(f"{item} cannot happen there")
            new, bits = found[0]
            order = sorted(range(self.instances), key=lambda k: (new[k], labels[k]))
            labels = [labels[k] for k in order]
            key = (tuple(new[k] for k in order), bits)
        stuck = next(self.explorer.successors(key), None) is None
        return set(self.explorer.layout.found(key[1])), stuck

    def to_dict(self) -> dict[str, Any]:
        """The ``interleaving`` entry of ``check --json``."""
        return {
            "instances": self.instances,
            "states": self.states,
            "transitions": self.transitions,
            "anomalies": dict(self.ends),
        }


def explore_instances(saga: Saga, *, max_states: int = DEFAULT_MAX_STATES) -> InterleavedSpace:
    """Explore every interleaving of ``saga.instances`` instances of ``saga`` over its
    resources (a choreography on its orchestrated form); raise
    :class:`StateSpaceLimitError` past ``max_states`` global states."""
    orchestrated = core(replace(saga, coordination="orchestration"))
    explorer = _Explorer(orchestrated, saga.instances)
    space = InterleavedSpace(
        saga=orchestrated,
        instances=saga.instances,
        resources=explorer.layout.names,
        explorer=explorer,
    )
    keys, parent, via, first, ends = space.keys, space.parent, space.via, space.first, space.ends
    ids: dict[Key, int] = {explorer.start: 0}
    keys.append(explorer.start)
    parent.append(-1)
    via.append((-1, ""))
    layout = explorer.layout
    for i, key in enumerate(keys):  # the list grows while the loop reads it: the BFS queue
        moved = False
        for pos, event, new, bits in explorer.successors(key):
            moved = True
            space.transitions += 1
            target = (tuple(sorted(new)), bits)
            if target in ids:
                continue
            j = ids[target] = len(keys)
            if j >= max_states:
                raise StateSpaceLimitError(
                    f"{saga.name}: more than {max_states:,} states interleaving "
                    f"{saga.instances} instances ({space.transitions:,} transitions so far); "
                    "fewer instances, fewer retries or fewer steps that touch resources shrink "
                    "it, or raise --max-states"
                )
            keys.append(target)
            parent.append(i)
            via.append((pos, event))
            for found in layout.found(bits):
                first.setdefault(found, j)
        if moved:
            continue
        locals_, bits = key
        space.end_states += 1
        for kind in {kind for kind, _ in layout.found(bits)}:
            ends[kind] += 1
        if not all(explorer.ended(local[0]) for local in locals_):
            ends["deadlock"] += 1
            for name in explorer.waiting_on(locals_) or {""}:
                first.setdefault(("deadlock", name), i)
    space.states = len(keys)
    return space
