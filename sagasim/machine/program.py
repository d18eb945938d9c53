"""The saga the machines run: a model with its maps unrolled, and the names of its decisions.

Every answer works on :func:`core` of a saga. A ``map`` becomes a parallel group of one branch
per item, started at most ``concurrency`` at a time; item ``k``'s copy of a body step ``s`` is
the action ``s_k`` (its service stays ``s``'s), so each item has effects of its own that
``check`` and ``simulate`` tell apart. A map whose item count is drawn becomes a choice between
those groups, one branch per count. Sub-sagas, choices, ends and jumps stay as they are: the
compiler walks them.

A choice is decided by events ``CHOICE.LABEL``: the branch's ``when`` where it is an
identifier (``ready.done``), else its index (``stock_level.branch_1``).

Examples
--------
>>> from sagasim.model import Map, Saga, Step
>>> bulk = Saga(name="bulk", steps=(Map(name="pack", items=2, steps=(Step(name="box"),)),))
>>> [step.name for step in core(bulk).all_steps()]
['box_1', 'box_2']
>>> drawn = Saga(name="bulk", steps=(Map(name="pack", items=(1, 3), steps=(Step(name="box"),)),))
>>> decision_events(core(drawn))
{'pack.items_1': ('pack', 0, 0.5), 'pack.items_3': ('pack', 1, 0.5)}
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Mapping
from dataclasses import replace

from ..exceptions import SagaSimError
from ..model import (
    Branch,
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
    blocks_of,
    rebuild,
    walk,
)

__all__ = ["branch_labels", "core", "decision_events", "ends", "repeatable"]

#: Event kinds of an attempt; a branch label must not read like one.
ATTEMPT_KINDS = frozenset(
    {"ok", "fail", "reject", "timeout", "late_ok", "late_fail"}
    | {"crash", "landed", "lost", "conflict"}  # a crash, the call in doubt, a refused attempt
)


@functools.lru_cache(maxsize=64)
def core(saga: Saga) -> Saga:
    """``saga`` with every map unrolled (see the module docstring); ``saga`` itself when it has
    no map."""
    if not any(isinstance(e, Map) for e in walk(saga.steps)):
        return saga
    return replace(saga, steps=rebuild(saga.steps, _unrolled))


def _unrolled(m: Entry) -> Entry:
    """A map (whose body is unrolled already) as its groups; any other entry as it is."""
    if not isinstance(m, Map):
        return m
    groups = {
        n: Parallel(
            branches=tuple(_item(m.steps, k) for k in range(1, n + 1)),
            concurrency=m.concurrency,
            origin=m.name,
        )
        for n in m.counts
    }
    if len(groups) == 1:
        return next(iter(groups.values()))
    branches = tuple(
        Branch(when=f"items_{n}", probability=p, steps=(groups[n],)) for n, p in m.counts.items()
    )
    return Choice(name=m.name, branches=branches)


def _item(entries: tuple[Entry, ...], k: int) -> tuple[Entry, ...]:
    """Item ``k``'s copy of a map body: every name it declares gets the suffix ``_k``."""
    names = {
        name
        for e in walk(entries)
        for name in (
            getattr(e, "name", None),
            getattr(getattr(e, "compensation", None), "name", None),
        )
        if name is not None and not isinstance(e, Fail)
    }
    return tuple(_renamed(e, names, k) for e in entries)


def _renamed(entry: Entry, names: set[str], k: int) -> Entry:
    def new(name: str) -> str:
        return f"{name}_{k}" if name in names else name

    if isinstance(entry, Step):
        comp = entry.compensation
        if comp is not None:
            comp = replace(comp, name=new(comp.name), service=comp.service or entry.service_name)
        return replace(entry, name=new(entry.name), service=entry.service_name, compensation=comp)
    if isinstance(entry, Goto):
        return replace(entry, target=new(entry.target))
    if isinstance(entry, Choice):
        branches = tuple(
            replace(b, steps=tuple(_renamed(e, names, k) for e in b.steps)) for b in entry.branches
        )
        return replace(entry, name=new(entry.name), branches=branches)
    if isinstance(entry, SubSaga):
        child = entry.saga
        steps = tuple(_renamed(e, names, k) for e in child.steps)
        comp = entry.compensation
        if comp is not None:
            comp = replace(comp, name=new(comp.name), service=comp.service or entry.name)
        return replace(
            entry, name=new(entry.name), saga=replace(child, steps=steps), compensation=comp
        )
    return entry  # Fail keeps its name (outcomes are counted by it), Succeed too


def branch_labels(choice: Choice) -> tuple[str, ...]:
    """The event label of each branch of ``choice``: ``when`` if every branch's is a distinct
    identifier that reads like no attempt event, else ``branch_0``, ``branch_1``, ..."""
    whens = [b.when for b in choice.branches]
    plain = all(
        w.isidentifier() and not keyword.iskeyword(w) and w not in ATTEMPT_KINDS for w in whens
    )
    if plain and len(set(whens)) == len(whens):
        return tuple(whens)
    return tuple(f"branch_{b}" for b in range(len(whens)))


def decision_events(saga: Saga) -> dict[str, tuple[str, int, float]]:
    """Every decision event of ``saga`` (a core saga): its choice, branch index and
    probability."""
    events: dict[str, tuple[str, int, float]] = {}
    for entry in walk(saga.steps):
        if isinstance(entry, Choice):
            for b, (label, p) in enumerate(zip(branch_labels(entry), entry.probabilities)):
                events[f"{entry.name}.{label}"] = (entry.name, b, p)
    return events


def sub_saga_compensations(saga: Saga) -> dict[str, SubSaga]:
    """Each whole-child compensation of ``saga`` by name, with its sub-saga."""
    return {
        e.compensation.name: e
        for e in walk(saga.steps)
        if isinstance(e, SubSaga) and e.compensation is not None
    }


def ends(saga: Saga) -> tuple[str, ...]:
    """The names of ``saga``'s ``fail`` entries, in document order (``max_visits`` last when a
    step is bounded): the fail names its outcomes are counted by."""
    names = [e.name for e in walk(saga.steps) if isinstance(e, Fail)]
    if any(isinstance(e, Step) and e.max_visits is not None for e in walk(saga.steps)):
        names.append("max_visits")
    return tuple(dict.fromkeys(names))


def repeatable(saga: Saga) -> frozenset[str]:
    """The steps a backward ``goto`` can reach again: each lies in a cycle from the goto's
    target up to the entry holding the goto, in the list where the target is.

    >>> from sagasim.model import Saga, Step, Goto
    >>> sorted(repeatable(Saga(name="s", steps=(
    ...     Step(name="a"), Step(name="b"), Goto(target="b")))))
    ['b']
    """
    found: set[str] = set()

    def visit(block: tuple[Entry, ...], outer: list[tuple[tuple[Entry, ...], int]]) -> None:
        for i, entry in enumerate(block):
            chain = [*outer, (block, i)]
            if isinstance(entry, Goto):
                for held, at in reversed(chain):
                    target = next(
                        (t for t, e in enumerate(held) if getattr(e, "name", None) == entry.target),
                        None,
                    )
                    if target is not None:
                        if target <= at:
                            found.update(
                                e.name for e in walk(held[target : at + 1]) if isinstance(e, Step)
                            )
                        break
            for inner in blocks_of(entry):
                visit(inner, chain)

    visit(saga.steps, [])
    return frozenset(found)


def straight_line_only(
    saga: Saga,
    who: str,
    why: str | Mapping[str, str],
    *,
    self_undo: bool = False,
    choices: bool = False,
) -> None:
    """Refuse, in one line naming the first construct, a saga that uses the graph model where
    ``who`` cannot run it yet, and say ``why`` (one reason, or one per construct: ``a goto``,
    ``a map``, ...); ``self_undo``: ``who`` can run steps with ``compensate_on_failure``;
    ``choices``: it can run choices, fail and succeed entries."""
    for index, entry in enumerate(saga.steps):
        found = next((e for e in walk((entry,)) if _beyond_a_line(e, self_undo, choices)), None)
        if found is None:
            continue
        what = {
            Choice: "a choice",
            Fail: "a fail entry",
            Succeed: "a succeed entry",
            Goto: "a goto",
            Map: "a map",
            SubSaga: "a sub-saga",
        }.get(type(found), "a step with compensate_on_failure or max_visits")
        name = getattr(found, "name", getattr(found, "target", ""))
        reason = why if isinstance(why, str) else why[what]
        raise SagaSimError(
            f"{saga.name}: steps[{index}] is {what} ({name}), which {who} cannot run yet: {reason}"
        )


def _beyond_a_line(entry: Entry, self_undo: bool, choices: bool) -> bool:
    if isinstance(entry, Step):
        return (entry.compensate_on_failure and not self_undo) or entry.max_visits is not None
    if choices and isinstance(entry, (Choice, Fail, Succeed)):
        return False
    return not isinstance(entry, Parallel) or entry.concurrency is not None or bool(entry.origin)
