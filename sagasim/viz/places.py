"""Where everything of a saga sits in its model: what the saga view lays out, and how the
machine's names map back onto the model's.

:func:`layout` walks the model once, in document order, and gives every node a saga diagram
can draw a :class:`Place`: steps, compensations, choices and the ``fail`` and ``succeed`` ends
(``fail__NAME``, ``succeed__NAME``; ``fail__max_visits`` beside the first bounded step). Rank
columns run left to right: a step, a choice, a fail or a succeed takes one, a goto none; the
branches of a parallel group or a choice share columns (stacked top to bottom, after the
choice's diamond); a map's body and a sub-saga's steps follow each other inside their box. A
compensation sits in its step's column, a whole-child compensation under the middle of its
sub-saga. Parallel groups, maps and sub-sagas are :class:`Container` boxes, which nest.

The machine runs :func:`~sagasim.machine.core` of the saga, where a map's body is copied once
per item (``pack_1``, ``pack_2``, ...): :attr:`Layout.aliases` maps those names back to the
body's, and :attr:`Layout.items` says which map and item each copy belongs to. Which step
completions flow into a ``goto`` or a ``succeed`` is read off the model here too
(:attr:`Layout.gotos`, :attr:`Layout.succeeds`): the machine's edges do not say what entries
they passed on the way.

Examples
--------
>>> from sagasim.model import Branch, Choice, Fail, Map, Saga, Step
>>> saga = Saga(name="s", steps=(
...     Step(name="a"),
...     Choice(name="c", branches=(Branch(when="yes", probability=0.5, steps=(Step(name="b"),)),
...                                Branch(when="no", default=True, steps=(Fail(name="f"),)))),
...     Map(name="m", items=2, steps=(Step(name="p"),)),
... ))
>>> lay = layout(saga)
>>> {name: place.column for name, place in lay.places.items()}
{'a': 1, 'c': 2, 'b': 3, 'fail__f': 3, 'p': 4}
>>> lay.containers["cluster_map_m"].label, lay.places["p"].containers
('map m · items: 2 · concurrency: all', ('cluster_map_m',))
>>> lay.aliases["p_2"], lay.items["p_2"], lay.width
('p', ('m', 2), 5)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ..machine import branch_labels, core
from ..model.saga import (
    Choice,
    Entry,
    Fail,
    Goto,
    Map,
    Parallel,
    Saga,
    Step,
    SubSaga,
    Succeed,
    walk,
)

__all__ = ["Container", "Layout", "Place", "fail_node", "layout", "succeed_node"]

#: A completion that moves the saga on: ``(action or choice, "ok" or the branch label)``.
Exit = tuple[str, str]


def fail_node(name: str) -> str:
    """The node id of the ``fail`` entry ``name`` (or of ``max_visits``).

    >>> fail_node("out_of_stock")
    'fail__out_of_stock'
    """
    return f"fail__{name}"


def succeed_node(name: str) -> str:
    """The node id of the ``succeed`` entry ``name``.

    >>> succeed_node("done")
    'succeed__done'
    """
    return f"succeed__{name}"


@dataclass(frozen=True, slots=True)
class Container:
    """A box around part of the saga: ``kind`` is ``parallel``, ``map`` or ``saga``.

    ``path`` is where it is written (``steps[3]``); ``entry`` the model's entry itself.
    """

    id: str
    kind: str
    label: str
    parent: str | None
    path: str
    entry: Parallel | Map | SubSaga


@dataclass(frozen=True, slots=True)
class Place:
    """Where a node sits: its ``role`` (``step``, ``compensation``, ``choice``, ``fail`` or
    ``succeed``), rank ``column``, the top-level ``entry`` holding it, the top-level parallel
    ``group`` and ``branch`` it is in (None elsewhere), its ``position`` in its step list, the
    ``containers`` around it (outermost first) and its ``owner``: for a compensation the step
    or sub-saga it undoes, else its own name."""

    role: str
    column: int
    entry: int
    group: int | None
    branch: int | None
    position: int
    containers: tuple[str, ...]
    owner: str


@dataclass(slots=True)
class Layout:
    """Every node's :class:`Place` (document order), the boxes, and the name maps.

    ``width`` is the first column after the steps (where ``committed`` goes); ``hidden`` the
    decisions of maps whose item count is drawn (the map's box shows the counts);
    ``ending`` the succeed nodes that end the whole saga (not just a sub-saga).
    """

    places: dict[str, Place] = field(default_factory=dict)
    containers: dict[str, Container] = field(default_factory=dict)
    width: int = 1
    aliases: dict[str, str] = field(default_factory=dict)
    items: dict[str, tuple[str, int]] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    gotos: frozenset[Exit] = frozenset()
    succeeds: dict[Exit, str] = field(default_factory=dict)
    ending: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _At:
    """Where the walk is: the top-level entry, group and branch, the boxes around it and the
    path of the step list (``steps[2].parallel[0]``)."""

    entry: int
    group: int | None
    branch: int | None
    containers: tuple[str, ...]
    path: str

    def inside(self, cid: str, path: str) -> _At:
        return _At(self.entry, self.group, self.branch, (*self.containers, cid), path)


class _Walker:
    """One walk of the model placing every node (:meth:`block`), then one tracing what flows
    into gotos and succeeds (:meth:`flow`)."""

    def __init__(self) -> None:
        self.lay = Layout()
        self.gotos: set[Exit] = set()
        self.ending: set[str] = set()
        self.bounded = False

    def place(self, name: str, role: str, column: int, at: _At, k: int, owner: str) -> None:
        if name not in self.lay.places:  # a fail name used twice is one node
            self.lay.places[name] = Place(
                role, column, at.entry, at.group, at.branch, k, at.containers, owner
            )

    def box(self, kind: str, label: str, at: _At, entry: Parallel | Map | SubSaga, key: str) -> str:
        cid = f"cluster_{key}"
        parent = at.containers[-1] if at.containers else None
        self.lay.containers[cid] = Container(cid, kind, label, parent, at.path, entry)
        return cid

    def top(self, entries: tuple[Entry, ...]) -> int:
        column = 1
        for k, e in enumerate(entries):
            column = self.entry(e, column, _At(k, None, None, (), f"steps[{k}]"), k, top=True)
        return column

    def block(self, entries: tuple[Entry, ...], column: int, at: _At) -> int:
        """Place ``entries`` from ``column``; the first column after them."""
        for k, e in enumerate(entries):
            column = self.entry(e, column, at, k, top=False)
        return column

    def entry(self, e: Entry, column: int, at: _At, k: int, *, top: bool) -> int:
        if isinstance(e, Step):
            self.place(e.name, "step", column, at, k, e.name)
            if e.max_visits is not None and not self.bounded:
                self.bounded = True
                self.place(fail_node("max_visits"), "fail", column, at, k, e.name)
            if e.compensation is not None:
                self.place(e.compensation.name, "compensation", column, at, k, e.name)
            return column + 1
        if isinstance(e, Fail):
            self.place(fail_node(e.name), "fail", column, at, k, fail_node(e.name))
            return column + 1
        if isinstance(e, Succeed):
            self.place(succeed_node(e.name), "succeed", column, at, k, succeed_node(e.name))
            return column + 1
        if isinstance(e, Goto):
            return column
        if isinstance(e, Choice):
            self.place(e.name, "choice", column, at, k, e.name)
            return max(self.block(b.steps, column + 1, at) for b in e.branches)
        if isinstance(e, Parallel):
            return self.parallel(e, column, at, top=top)
        if isinstance(e, Map):
            items = e.items if isinstance(e.items, int) else list(e.items)
            label = f"map {e.name} · items: {items} · concurrency: {e.concurrency or 'all'}"
            cid = self.box("map", label, at, e, f"map_{e.name}")
            return self.block(e.steps, column, at.inside(cid, f"{at.path}.map"))
        return self.sub_saga(e, column, at, k)

    def parallel(self, e: Parallel, column: int, at: _At, *, top: bool) -> int:
        """A group's branches side by side from ``column``; a top-level group keeps the ids
        and attributes it always had (``cluster_group_3``, ``group`` and ``branch``)."""
        key = f"group_{at.entry}" if top else f"group_{len(self.lay.containers)}"
        cid = self.box("parallel", "parallel", at, e, key)
        end = column
        for b, branch in enumerate(e.branches):
            inner = at.inside(cid, f"{at.path}.parallel[{b}]")
            if top:
                inner = _At(at.entry, at.entry, b, inner.containers, inner.path)
            end = max(end, self.block(branch, column, inner))
        return end

    def sub_saga(self, e: SubSaga, column: int, at: _At, k: int) -> int:
        cid = self.box("saga", f"saga {e.name} ({e.model})", at, e, f"saga_{e.name}")
        end = self.block(e.saga.steps, column, at.inside(cid, f"{at.path}.saga"))
        if e.compensation is not None:
            middle = column + max(0, end - column - 1) // 2
            self.place(e.compensation.name, "compensation", middle, at, k, e.name)
        return end

    def flow(
        self, entries: tuple[Entry, ...], incoming: frozenset[Exit], inside: list[set[Exit]]
    ) -> frozenset[Exit]:
        """The completions that fall off the end of ``entries`` when ``incoming`` enter it,
        recording those that flow into a goto or a succeed on the way. ``inside`` collects
        what flows into the succeeds of the sub-sagas being walked (they end only the child)."""
        current = incoming
        for e in entries:
            if isinstance(e, Step):
                current = frozenset({(e.name, "ok")})
            elif isinstance(e, Choice):
                labels = branch_labels(e)
                current = frozenset().union(
                    *(
                        self.flow(b.steps, frozenset({(e.name, label)}), inside)
                        for label, b in zip(labels, e.branches)
                    )
                )
            elif isinstance(e, Parallel):
                current = frozenset().union(*(self.flow(b, current, inside) for b in e.branches))
            elif isinstance(e, Map):
                skipped = current if 0 in e.counts else frozenset()
                current = self.flow(e.steps, current, inside) | skipped
            elif isinstance(e, SubSaga):
                inside.append(set())
                current = self.flow(e.saga.steps, current, inside) | inside.pop()
            else:
                self.ended(e, current, inside)
                current = frozenset()
        return current

    def ended(self, e: Fail | Succeed | Goto, current: frozenset[Exit], inside: list[set[Exit]]):
        if isinstance(e, Goto):
            self.gotos |= current
        elif isinstance(e, Succeed):
            node = succeed_node(e.name)
            self.lay.succeeds.update(dict.fromkeys(current, node))
            if inside:
                inside[-1].update(current)
            else:
                self.ending.add(node)


def _aliases(
    model: tuple[Entry, ...], ran: tuple[Entry, ...], lay: Layout, item: tuple[str, int] | None
) -> None:
    """Pair the ``model`` entries with the core saga's ``ran`` ones, naming copies back."""
    for m, c in zip(model, ran):
        if isinstance(m, Map):
            groups = [b.steps[0] for b in c.branches] if isinstance(c, Choice) else [c]
            for group in groups:
                assert isinstance(group, Parallel)
                for k, branch in enumerate(group.branches, start=1):
                    _aliases(m.steps, branch, lay, (m.name, k))
            continue
        for model_name, core_name in _names(m, c):
            if core_name != model_name:
                lay.aliases[core_name] = model_name
            if item is not None:
                lay.items[core_name] = item
        if isinstance(m, Choice) and isinstance(c, Choice):
            for mb, cb in zip(m.branches, c.branches):
                _aliases(mb.steps, cb.steps, lay, item)
        elif isinstance(m, Parallel) and isinstance(c, Parallel):
            for mbranch, cbranch in zip(m.branches, c.branches):
                _aliases(mbranch, cbranch, lay, item)
        elif isinstance(m, SubSaga) and isinstance(c, SubSaga):
            _aliases(m.saga.steps, c.saga.steps, lay, item)


def _names(m: Entry, c: Entry) -> list[tuple[str, str]]:
    """The names ``m`` declares, each with its name in the core entry ``c``."""
    if isinstance(m, (Step, SubSaga)) and isinstance(c, (Step, SubSaga)):
        pairs = [(m.name, c.name)]
        if m.compensation is not None and c.compensation is not None:
            pairs.append((m.compensation.name, c.compensation.name))
        return pairs
    if isinstance(m, Choice) and isinstance(c, Choice):
        return [(m.name, c.name)]
    return []


@functools.lru_cache(maxsize=64)
def layout(saga: Saga) -> Layout:
    """Where every node of ``saga``'s diagram sits (see the module docstring).

    >>> from sagasim.model import Branch, Choice, Goto, Saga, Step, Succeed
    >>> lay = layout(Saga(name="poll", steps=(
    ...     Step(name="poll", effects=False),
    ...     Choice(name="ready", branches=(
    ...         Branch(when="done", probability=0.6),
    ...         Branch(when="pending", default=True, steps=(Goto(target="poll"),)))),
    ...     Succeed(name="finished"),
    ... )))
    >>> sorted(lay.gotos), lay.succeeds, sorted(lay.ending)
    ([('ready', 'pending')], {('ready', 'done'): 'succeed__finished'}, ['succeed__finished'])
    """
    w = _Walker()
    w.lay.width = w.top(saga.steps)
    w.flow(saga.steps, frozenset(), [])
    w.lay.gotos, w.lay.ending = frozenset(w.gotos), frozenset(w.ending)
    ran = core(saga)
    if ran is not saga:
        _aliases(saga.steps, ran.steps, w.lay, None)
    maps = (e for e in walk(saga.steps) if isinstance(e, Map))
    w.lay.hidden = frozenset(m.name for m in maps if len(m.counts) > 1)
    return w.lay
