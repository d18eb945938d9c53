"""The breadth-first search of :func:`~sagasim.verify.statespace.explore`, a level at a time.

A state is a pair of interned ids, a *control* (machine state and attempt numbers) and a
*ledger* (the participants' effects); :class:`~sagasim.verify.statespace._Memo` works out the
moves of each control and the late events of each ledger once, in Python. What is left is the
same few steps for each of a million edges: find the target's ledger, look the target up,
number it if it is new. Here they are numpy operations over every edge out of one BFS level
at once.

The result is the one a state-at-a-time BFS gives, id for id and edge for edge: a level's
states are expanded in id order, each state's edges in its moves' order (the orchestrator's,
then the late events), and a new state gets the next id at its *first* edge in that order.

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> from sagasim.verify import explore
>>> space = explore(Saga(name="s", steps=(
...     Step(name="a", compensation=Compensation(name="undo_a")),
...     Step(name="b", failure=0.5),
... )))
>>> space.parent, space.via
([-1, 0, 1, 1, 3], ['', 'a.ok', 'b.ok', 'b.fail', 'undo_a.ok'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .statespace import StateSpace, _Memo

#: A state's key is ``control << SHIFT | ledger`` (both ids stay below 2**31).
SHIFT = 32
LOW = (1 << SHIFT) - 1
Ints = np.ndarray[Any, np.dtype[np.int64]]


def breadth_first(
    memo: _Memo,
    space: StateSpace,
    start: tuple[int, int],
    max_states: int,
    too_many: Callable[[int, int], Exception],
) -> tuple[Ints, Ints, Ints]:
    """Search from ``start`` (control, ledger): fill ``space``'s parents, vias and ends, and
    return every state's control and ledger id, by state id, and every edge's target, in the
    order of :attr:`StateSpace.edges`. Raise ``too_many(state, edges)`` on finding state
    number ``max_states`` (``state`` is being expanded, ``edges`` were found before)."""
    events = _Names()
    moves, late = _Moves(memo, events), _LateEvents(memo, events)
    seen = _SortedMap()  # state key -> id
    first = np.array([start[0] << SHIFT | start[1]], np.int64)
    seen.add(first, np.zeros(1, np.int64))
    keys, parents, vias, targets = [first], [np.array([-1])], [np.array([-1])], []
    found = 1  # states found so far
    level = 0  # id of the level's first state
    edges = 0  # edges found before this level
    while len(keys[-1]):
        controls, ledgers = keys[-1] >> SHIFT, keys[-1] & LOW
        outs, lates = moves.count(controls), late.count(controls, ledgers)
        for k in np.flatnonzero((outs + lates) == 0).tolist():
            memo.record_end(space, level + k, int(controls[k]), int(ledgers[k]))
        source, event, after = _level_edges(moves, late, controls, ledgers, outs, lates)
        if not len(after):
            break
        # Number the targets: sort the level's edges by target, then find which are new.
        order = np.argsort(after)
        ordered = after[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        unique = ordered[starts]
        earliest = np.minimum.reduceat(order, starts) if len(order) else starts
        ids = seen.find(unique)
        fresh = np.flatnonzero(ids < 0)  # by key
        new = fresh[np.argsort(earliest[fresh], kind="stable")]  # in the order reached
        if found + len(new) > max_states:
            at = int(earliest[new[max_states - found]])
            raise too_many(level + int(source[at]), edges + at)
        ids[new] = np.arange(found, found + len(new))
        seen.add(unique[fresh], ids[fresh])
        of_edge = np.empty(len(after), np.int64)
        of_edge[order] = np.repeat(ids, np.diff(np.append(starts, len(order))))
        targets.append(of_edge)
        reached_by = earliest[new]
        parents.append(level + source[reached_by])
        vias.append(event[reached_by])
        keys.append(unique[new])
        level, found, edges = found, found + len(new), edges + len(after)
    space.parent[:] = np.concatenate(parents).tolist()
    names = [*events.names, ""]  # the start's via is ""
    space.via[:] = [names[e] for e in np.concatenate(vias).tolist()]
    every = np.concatenate(keys)
    return every >> SHIFT, every & LOW, np.concatenate(targets or [np.zeros(0, np.int64)])


def _level_edges(
    moves: _Moves, late: _LateEvents, controls: Ints, ledgers: Ints, outs: Ints, lates: Ints
) -> tuple[Ints, Ints, Ints]:
    """Every edge out of one level, in order: its source (position in the level), event and
    target key. Each state's moves come first, then its late events."""
    per_state = outs + lates
    total = int(per_state.sum())
    offset = np.cumsum(per_state) - per_state  # where each state's edges start
    source, event, after = (np.empty(total, np.int64) for _ in range(3))
    at, index = _spread(outs)
    edge = moves.start[controls][at] + index
    place = offset[at] + index
    ledger = moves.ledgers_after(edge, ledgers[at])
    source[place], event[place] = at, moves.event[edge]
    after[place] = moves.target[edge] << SHIFT | ledger
    if len(place) < total:
        at, index = _spread(lates)
        edge = late.start[ledgers][at] + index
        place = offset[at] + outs[at] + index
        running = late.running(controls[at], edge)
        source[place], event[place] = at, late.event[edge]
        after[place] = controls[at] << SHIFT | np.where(
            running, late.if_running[edge], late.if_not[edge]
        )
    return source, event, after


def _spread(counts: Ints) -> tuple[Ints, Ints]:
    """For ``counts[i]`` items of each ``i``: each item's ``i`` and its index among them."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


class _Column:
    """A growing int64 array (``values[:size]``), doubling its room as it fills."""

    def __init__(self, fill: int = 0) -> None:
        self.fill = fill
        self.values: Ints = np.full(16, fill, np.int64)
        self.size = 0

    def extend(self, items: Any) -> None:
        items = np.asarray(items, np.int64)
        self.reserve(self.size + len(items))
        self.values[self.size : self.size + len(items)] = items
        self.size += len(items)

    def reserve(self, size: int) -> None:
        """Room for ``size`` items (new room holds ``fill``)."""
        if size > len(self.values):
            grown = np.full(max(size, 2 * len(self.values)), self.fill, np.int64)
            grown[: len(self.values)] = self.values
            self.values = grown


class _Names:
    """Event names as ids (one numbering for moves and late events)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []

    def number(self, names: Any) -> list[int]:
        ids = self.ids
        numbered = [ids.setdefault(name, len(ids)) for name in names]
        self.names.extend(list(ids)[len(self.names) :])
        return numbered


class _Moves:
    """The orchestrator's moves of every expanded control, flat: ``start[c]`` is where
    control ``c``'s are, ``-1`` until it is expanded."""

    def __init__(self, memo: _Memo, names: _Names) -> None:
        self.memo = memo
        self.names = names
        self.starts, self.counts = _Column(-1), _Column(-1)
        self.targets, self.steps, self.events = _Column(), _Column(), _Column()
        self.step_ids: dict[int, int] = {}  # id(_LedgerStep) -> its number
        self.ledger_steps: list[Any] = []
        #: ``step << SHIFT | ledger`` -> the ledger after the step, once worked out
        self.after = _SortedMap()

    def count(self, controls: Ints) -> Ints:
        """The moves out of each of ``controls``, expanding those met for the first time."""
        self.starts.reserve(len(self.memo.controls))
        self.counts.reserve(len(self.memo.controls))
        fresh = np.unique(controls[self.counts.values[controls] < 0]).tolist()
        if fresh:
            edges: list[Any] = []
            lengths = []
            for control in fresh:
                out = self.memo.control_moves[control]
                if out is None:
                    out = self.memo.expand_control(control)
                edges.extend(out)
                lengths.append(len(out))
            self.starts.values[fresh] = self.targets.size + np.cumsum(lengths) - lengths
            self.counts.values[fresh] = lengths
            if edges:
                targets, _, steps, _, _, events = zip(*edges)
                self.targets.extend(targets)
                self.steps.extend([self._step(step) for step in steps])
                self.events.extend(self.names.number(events))
            # the new controls their moves lead to
            self.starts.reserve(len(self.memo.controls))
            self.counts.reserve(len(self.memo.controls))
        return self.counts.values[controls]

    @property
    def start(self) -> Ints:
        return self.starts.values

    @property
    def target(self) -> Ints:
        return self.targets.values

    @property
    def event(self) -> Ints:
        return self.events.values

    def _step(self, step: Any) -> int:
        if step is None:
            return -1
        row = self.step_ids.get(id(step))
        if row is None:
            row = self.step_ids[id(step)] = len(self.ledger_steps)
            self.ledger_steps.append(step)
        return row

    def ledgers_after(self, edges: Ints, ledgers: Ints) -> Ints:
        """The ledger after each of ``edges`` taken from the matching one of ``ledgers``."""
        step = self.steps.values[edges]
        moving = np.flatnonzero(step >= 0)
        if not len(moving):
            return ledgers
        ledgers = ledgers.copy()
        pairs, back = np.unique(step[moving] << SHIFT | ledgers[moving], return_inverse=True)
        after = self.after.find(pairs)
        gap = np.flatnonzero(after < 0)
        if len(gap):
            # the memo's steps work them out (and may intern new ledgers)
            steps = self.ledger_steps
            after[gap] = [steps[p >> SHIFT][p & LOW] for p in pairs[gap].tolist()]
            self.after.add(pairs[gap], after[gap])
        ledgers[moving] = after[back]
        return ledgers


class _LateEvents:
    """The late events of every expanded ledger, flat, as :class:`_Moves` keeps moves."""

    def __init__(self, memo: _Memo, names: _Names) -> None:
        self.memo = memo
        self.names = names
        self.starts, self.counts = _Column(-1), _Column(-1)
        self.actions, self.events = _Column(), _Column()
        self.running_ids, self.not_running_ids = _Column(), _Column()
        self.action_ids = {name: i for i, name in enumerate(memo.outcomes)}
        self.deciding = _Column()
        self.runs = np.zeros((0, len(self.action_ids)), bool)  # per control, per action
        #: No action's timed-out attempt is kept pending, so nothing ever lands late.
        self.never = memo.people is None or not memo.people.pending_index

    def count(self, controls: Ints, ledgers: Ints) -> Ints:
        """The late events out of each state (none in a deciding machine state)."""
        memo = self.memo
        if self.never:
            return np.zeros(len(controls), np.int64)
        if self.deciding.size < len(memo.controls):
            self.deciding.extend(memo.deciding[self.deciding.size :])
        self.starts.reserve(len(memo.ledgers))
        self.counts.reserve(len(memo.ledgers))
        open_ = self.deciding.values[controls] == 0
        fresh = np.unique(ledgers[open_ & (self.counts.values[ledgers] < 0)]).tolist()
        if fresh:
            events: list[Any] = []
            lengths = []
            for ledger in fresh:
                out = memo.late_moves[ledger]
                if out is None:
                    out = memo.expand_ledger(ledger)
                events.extend(out)
                lengths.append(len(out))
            self.starts.values[fresh] = self.actions.size + np.cumsum(lengths) - lengths
            self.counts.values[fresh] = lengths
            if events:
                actions, _, names, running, not_running = zip(*events)
                self.actions.extend([self.action_ids[a] for a in actions])
                self.events.extend(self.names.number(names))
                self.running_ids.extend(running)
                self.not_running_ids.extend(not_running)
            self.starts.reserve(len(memo.ledgers))
            self.counts.reserve(len(memo.ledgers))
        return np.where(open_, np.maximum(self.counts.values[ledgers], 0), 0)

    start = property(lambda self: self.starts.values)
    event = property(lambda self: self.events.values)
    if_running = property(lambda self: self.running_ids.values)
    if_not = property(lambda self: self.not_running_ids.values)

    def running(self, controls: Ints, edges: Ints) -> Any:
        """Whether the action of each late event in ``edges`` runs in its control."""
        memo = self.memo
        if len(self.runs) < len(memo.controls):
            ids = self.action_ids
            rows = np.zeros((len(memo.controls) - len(self.runs), len(ids)), bool)
            for row, running in zip(rows, memo.running[len(self.runs) :]):
                row[[ids[a] for a in running]] = True
            self.runs = np.concatenate((self.runs, rows))
        return self.runs[controls, self.actions.values[edges]]


class _SortedMap:
    """Int keys to int values, as sorted arrays: a large sorted run and a small one that takes
    the new keys and is merged in when it grows to a quarter of the large one (so each key is
    copied O(log n) times, however many levels add to it)."""

    def __init__(self) -> None:
        empty = np.zeros(0, np.int64)
        self.runs = [(empty, empty), (empty, empty)]

    def find(self, keys: Ints) -> Ints:
        """The value of each of ``keys`` (sorted), ``-1`` for one not found."""
        ids = np.full(len(keys), -1, np.int64)
        for run, run_ids in self.runs:
            if len(run):
                at = np.minimum(np.searchsorted(run, keys), len(run) - 1)
                hit = run[at] == keys
                ids[hit] = run_ids[at[hit]]
        return ids

    def add(self, keys: Ints, ids: Ints) -> None:
        """Add ``keys`` (sorted, none already in) with their values ``ids``."""
        (large, large_ids), (small, small_ids) = self.runs
        small, small_ids = _merged(small, small_ids, keys, ids)
        if 4 * len(small) > len(large):
            large, large_ids = _merged(large, large_ids, small, small_ids)
            small = small_ids = np.zeros(0, np.int64)
        self.runs = [(large, large_ids), (small, small_ids)]


def _merged(keys: Ints, values: Ints, more: Ints, more_values: Ints) -> tuple[Ints, Ints]:
    """Two sorted runs of keys (with their values) as one."""
    every = np.concatenate((keys, more))
    order = np.argsort(every, kind="stable")  # two runs: a linear merge
    return every[order], np.concatenate((values, more_values))[order]
