"""Hypothesis strategies for sagas of the graph model: choices (with fail ends), bounded and
read-only loops, maps, sub-sagas, self-compensation, and parallel groups with a choice in a
branch; small enough to explore in milliseconds."""

from __future__ import annotations

from dataclasses import replace
from itertools import count

from hypothesis import strategies as st

from sagasim.model import (
    Branch,
    Choice,
    Compensation,
    Constant,
    Entry,
    Exponential,
    Fail,
    Goto,
    Map,
    Parallel,
    Retry,
    Saga,
    Step,
    SubSaga,
    Succeed,
    walk,
)

CHANCES = st.sampled_from([0.0, 0.1, 0.3])
LATENCIES = st.sampled_from([Constant(value_ms=10.0), Exponential(mean_ms=10.0)])


@st.composite
def graph_steps(draw: st.DrawFn, names: count[int], *, timeouts: bool = True) -> Step:
    name = f"s{next(names)}"
    fields: dict[str, object] = {
        "latency": draw(LATENCIES),
        "failure": draw(CHANCES),
        "reject": draw(CHANCES),
        "retry": Retry(attempts=draw(st.sampled_from([1, 2, None]))),
    }
    if timeouts and draw(st.integers(0, 4)) == 0:
        fields |= {"latency": Exponential(mean_ms=10.0), "timeout_ms": 15.0}
        fields["rejects_late"] = draw(st.booleans())
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return Step(name=name, effects=False, **fields)  # type: ignore[arg-type]
    compensation = None if kind == 1 else Compensation(name=f"undo_{name}")
    return Step(
        name=name,
        compensation=compensation,
        compensate_on_failure=compensation is not None and draw(st.booleans()),
        **fields,  # type: ignore[arg-type]
    )


@st.composite
def choices(
    draw: st.DrawFn, names: count[int], *, depth: int, plain: bool = False, ends: bool = False
) -> Choice:
    """A choice of 2 or 3 branches, some ending in ``fail``; ``plain``: its branches hold
    steps and choices only (no map or sub-saga); ``ends``: a branch may end in ``succeed``."""
    name = f"c{next(names)}"
    branches = []
    ways = draw(st.integers(2, 3))
    for b in range(ways):
        steps: list[Entry] = [
            draw(graph_entries(names, depth=depth - 1, plain=plain, ends=ends))
            for _ in range(draw(st.integers(0, 2)))
        ]
        end = draw(st.integers(0, 3))
        if end == 0:
            steps.append(Fail(name=f"f{next(names)}"))
        elif end == 1 and ends:
            steps.append(Succeed(name=f"ok{next(names)}"))
        default = b == ways - 1
        branches.append(
            Branch(
                when=f"w{b}",
                steps=tuple(steps),
                default=default,
                probability=None if default else 0.5 / ways * (b + 1),
            )
        )
    return Choice(name=name, branches=tuple(branches))


@st.composite
def graph_entries(
    draw: st.DrawFn, names: count[int], *, depth: int = 1, plain: bool = False, ends: bool = False
) -> Entry:
    """One entry: a step, or (while ``depth`` allows) a choice, a map or a sub-saga (only a
    choice when ``plain``; ``ends``: its branches may end in ``succeed``)."""
    what = draw(st.integers(0, 5)) if depth > 0 else 0
    if what == 3:
        return draw(choices(names, depth=depth, plain=plain, ends=ends))
    if plain:
        return draw(graph_steps(names))
    if what == 4:
        body = draw(graph_steps(names, timeouts=False))
        items = draw(st.sampled_from([1, 2, 3, (1, 2), (0, 2)]))
        return Map(
            name=f"m{next(names)}",
            items=items,
            concurrency=draw(st.sampled_from([None, 1, 2])),
            steps=(body,),
        )
    if what == 5:
        child = tuple(draw(graph_steps(names)) for _ in range(draw(st.integers(1, 2))))
        if draw(st.booleans()):
            child += (Succeed(name=f"done{next(names)}"),)
        whole = Compensation(name=f"undo_sub{next(names)}") if draw(st.booleans()) else None
        return SubSaga(
            name=f"sub{next(names)}",
            model="child.yaml",
            saga=Saga(name="child", steps=child),
            compensation=whole,
        )
    return draw(graph_steps(names))


@st.composite
def bounded_loops(draw: st.DrawFn, names: count[int]) -> tuple[Entry, ...]:
    """A step the saga may return to (bounded by ``max_visits`` when it has effects)."""
    head = draw(graph_steps(names, timeouts=False))
    if head.effects:
        head = replace(head, max_visits=draw(st.integers(1, 3)))
    again = Choice(
        name=f"c{next(names)}",
        branches=(
            Branch(when="again", probability=0.4, steps=(Goto(target=head.name),)),
            Branch(when="on", default=True),
        ),
    )
    return (head, again)


@st.composite
def graph_sagas(draw: st.DrawFn, *, max_entries: int = 3) -> Saga:
    names = count()
    entries: list[Entry] = []
    for _ in range(draw(st.integers(1, max_entries))):
        shape = draw(st.integers(0, 5))
        if shape == 0:
            entries.extend(draw(bounded_loops(names)))
        elif shape == 1:
            first = (draw(graph_steps(names, timeouts=False)),)
            chooser = (draw(graph_steps(names, timeouts=False)), draw(choices(names, depth=0)))
            entries.append(Parallel(branches=(first, chooser)))
        else:
            entries.append(draw(graph_entries(names)))
    targets = {e.target for e in walk(tuple(entries)) if isinstance(e, Goto)}
    tops = [i for i, e in enumerate(entries) if isinstance(e, Step) and e.name not in targets]
    if tops and draw(st.booleans()):
        at = draw(st.sampled_from(tops))
        pivot = entries[at]
        assert isinstance(pivot, Step)
        entries[at] = replace(
            pivot, kind_declared="pivot", compensation=None, compensate_on_failure=False,
            max_visits=None,
        )  # fmt: skip
    return Saga(
        name="generated",
        steps=tuple(entries),
        compensation_order=draw(st.sampled_from(["reverse", "parallel"])),
    )


@st.composite
def choreography_sagas(draw: st.DrawFn, *, max_entries: int = 3, timeouts: bool = True) -> Saga:
    """Sagas a choreography runs: steps (some undoing themselves), choices nested two deep with
    ``fail`` and ``succeed`` ends, a parallel group with a choice in a branch, a ``succeed`` at
    the end and a top-level pivot; no goto, map or sub-saga."""
    names = count()
    entries: list[Entry] = []
    for _ in range(draw(st.integers(1, max_entries))):
        shape = draw(st.integers(0, 3))
        if shape == 0:
            first = (draw(graph_steps(names, timeouts=timeouts)),)
            chooser = (
                draw(graph_steps(names, timeouts=timeouts)),
                draw(choices(names, depth=0)),
            )
            entries.append(Parallel(branches=(first, chooser)))
        elif shape == 1:
            entries.append(draw(choices(names, depth=2, plain=True, ends=True)))
        else:
            entries.append(draw(graph_steps(names, timeouts=timeouts)))
    if draw(st.integers(0, 3)) == 0:
        entries.append(Succeed(name="finished"))
    tops = [i for i, e in enumerate(entries) if isinstance(e, Step)]
    if tops and draw(st.booleans()):
        at = draw(st.sampled_from(tops))
        pivot = entries[at]
        assert isinstance(pivot, Step)
        entries[at] = replace(
            pivot, kind_declared="pivot", compensation=None, compensate_on_failure=False
        )
    return Saga(
        name="generated",
        steps=tuple(entries),
        compensation_order=draw(st.sampled_from(["reverse", "parallel"])),
    )
