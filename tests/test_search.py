"""``explore`` searches a level at a time on arrays (``sagasim.verify.search``). It must find
what a plain breadth-first search finds, one state at a time, id for id and edge for edge:
the same parents and vias (so the same shortest traces), edges, ends, and the same point to
stop at when the limit is reached.

The plain search below asks the same memo for each state's moves and late events; what it
checks is the level-at-a-time numbering, edge order, ledger steps and limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagasim.exceptions import StateSpaceLimitError
from sagasim.machine import compile_saga
from sagasim.machine.participants import Participants
from sagasim.machine.program import core
from sagasim.model import Compensation, Exponential, Parallel, Retry, Saga, Step
from sagasim.verify import explore
from sagasim.verify.statespace import CAP, Edge, Node, _Memo

from .graph_strategies import graph_sagas
from .strategies import sagas


@dataclass
class Plain:
    """What a one-state-at-a-time BFS finds."""

    nodes: list[Node] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    ends: set[int] = field(default_factory=set)
    #: (state being expanded, edges found before) when state number ``limit`` is found
    stopped: tuple[int, int] | None = None


def _successors(memo: _Memo, control: int, ledger: int) -> Iterator[tuple[int, int, str, str]]:
    """(control, ledger, action, kind) of each edge out of a state, in order."""
    moves = memo.control_moves[control]
    for target, _, step, action, kind, _ in (
        moves if moves is not None else memo.expand_control(control)
    ):
        yield target, ledger if step is None else step[ledger], action, kind
    if memo.deciding[control]:
        return
    late = memo.late_moves[ledger]
    for action, kind, _, running, idle in late if late is not None else memo.expand_ledger(ledger):
        yield control, running if action in memo.running[control] else idle, action, kind


def plain_bfs(saga: Saga, limit: int | None = None) -> Plain:
    saga = core(saga)
    machine = compile_saga(saga)
    memo = _Memo(saga, machine, Participants(saga, cap=CAP), False)
    initial = machine.initial
    start = (
        memo.control(initial, tuple(1 for _ in machine.states[initial].running)),
        memo.ledger(memo.people.initial),  # type: ignore[union-attr]
    )
    found = Plain(parent=[-1], via=[""])
    ids = {start: 0}
    queue = [start]
    for i, (control, ledger) in enumerate(queue):  # the queue grows while it is read
        before = len(found.edges)
        for target in _successors(memo, control, ledger):
            key, (_, _, action, kind) = target[:2], target
            j = ids.setdefault(key, len(ids))
            if j == len(queue):
                if j == limit:
                    found.stopped = (i, len(found.edges))
                    return found
                queue.append(key)
                found.parent.append(i)
                found.via.append(f"{action}.{kind}")
            found.edges.append((i, j, action, kind))
        if len(found.edges) == before:
            found.ends.add(i)
    found.nodes = [(*memo.controls[c], memo.ledgers[le]) for c, le in queue]
    return found


def assert_same_search(saga: Saga) -> None:
    space, plain = explore(saga), plain_bfs(saga)
    assert space.nodes == plain.nodes
    assert space.parent == plain.parent
    assert space.via == plain.via
    assert space.edges == plain.edges
    assert set(space.ends) == plain.ends
    # the first end state of each outcome is the first in id order
    for key, first in space.first_end.items():
        assert first == min(i for i, (o, a) in space.ends.items() if key == o or key in a)


def assert_same_stop(saga: Saga, limit: int) -> None:
    plain = plain_bfs(saga, limit)
    if plain.stopped is None:
        explore(saga, max_states=limit)  # no error: the space is small enough
        return
    state, edges = plain.stopped
    with pytest.raises(StateSpaceLimitError) as raised:
        explore(saga, max_states=limit)
    assert f"after exploring {state:,} of them ({edges:,} transitions so far)" in str(raised.value)


def wide(branches: int, retries: int, steps: int = 3, timeout_ms: float | None = None) -> Saga:
    """One parallel group of ``branches`` x ``steps`` failing, retried steps; with ``timeout_ms``
    their calls may time out and land late."""
    retry = Retry(attempts=retries + 1)
    return Saga(
        name=f"wide_{branches}x{steps}_{retries}_{timeout_ms}",
        steps=(
            Parallel(
                branches=tuple(
                    tuple(
                        Step(
                            name=f"s{b}_{k}",
                            failure=0.1,
                            latency=Exponential(mean_ms=10.0),
                            timeout_ms=timeout_ms,
                            retry=retry,
                            compensation=Compensation(name=f"u{b}_{k}", failure=0.1, retry=retry),
                        )
                        for k in range(steps)
                    )
                    for b in range(branches)
                )
            ),
        ),
    )


def deep(steps: int, attempts: int) -> Saga:
    """A line of ``steps`` failing steps and compensations with ``attempts`` attempts each:
    a few states a level, a hundred levels, a new ledger step at almost every level."""
    retry = Retry(attempts=attempts)
    return Saga(
        name=f"deep_{steps}_{attempts}",
        steps=tuple(
            Step(
                name=f"s{k}",
                failure=0.2,
                retry=retry,
                compensation=Compensation(name=f"u{k}", failure=0.1, retry=retry),
            )
            for k in range(steps)
        ),
    )


@pytest.mark.parametrize(
    "saga",
    [
        wide(2, 1),
        wide(3, 1),
        wide(2, 0, timeout_ms=20.0),
        wide(2, 1, 2, timeout_ms=20.0),
        deep(30, 10),
    ],
    ids=lambda s: s.name,
)
def test_wide_and_deep_spaces_are_searched_as_one_state_at_a_time(saga: Saga) -> None:
    # thousands of states a level, ledger steps, (with timeouts) late events; or (deep) a
    # hundred narrow levels
    assert_same_search(saga)
    states = len(explore(saga).nodes)
    for limit in (1, 2, states // 3, states - 1, states):
        assert_same_stop(saga, limit)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sagas())
def test_random_sagas_are_searched_as_one_state_at_a_time(saga: Saga) -> None:
    assert_same_search(saga)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_sagas(), st.integers(min_value=1, max_value=400))
def test_random_graph_sagas_are_searched_as_one_state_at_a_time(saga: Saga, limit: int) -> None:
    assert_same_search(saga)
    assert_same_stop(saga, limit)
