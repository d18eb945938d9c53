"""The graph model choreographed. Self-compensation: a step with ``compensate_on_failure`` undoes
itself when it fails for good, then says it failed, so the undo cascade runs as the orchestrator
orders it. Choices: the deciding service publishes ``CHOICE.LABEL``; ``fail`` and ``succeed``
are roles of the service before them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from sagasim.analysis import analyze
from sagasim.exceptions import SagaSimError, StateSpaceLimitError
from sagasim.machine import compile_choreography, compile_saga
from sagasim.model import (
    Branch,
    Broker,
    Choice,
    Compensation,
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
    validate,
)
from sagasim.sim import simulate, simulate_instance
from sagasim.verify import check, explore, explore_choreography
from sagasim.viz import draw
from sagasim.viz.choreography import extract_choreography

from .graph_strategies import choreography_sagas
from .strategies import sagas
from .test_cross_oracle import assert_around_exact_values

SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def self_undoing(saga: Saga, flags: list[bool]) -> Saga:
    """``saga`` with ``compensate_on_failure`` on the steps with a compensation the flags say."""
    flag = iter(flags * 10)

    def mark(step: Step) -> Step:
        wanted = step.compensation is not None and next(flag)
        return replace(step, compensate_on_failure=wanted)

    entries = tuple(
        mark(e)
        if isinstance(e, Step)
        else Parallel(branches=tuple(tuple(map(mark, b)) for b in e.branches))  # type: ignore[arg-type]
        for e in saga.steps
    )
    return replace(saga, steps=entries)


@settings(SETTINGS, max_examples=150)
@given(sagas(timeouts=False), st.lists(st.booleans(), min_size=1, max_size=4))
def test_a_perfect_broker_reaches_the_orchestrated_end_states(
    saga: Saga, flags: list[bool]
) -> None:
    saga = self_undoing(saga, flags)
    choreographed = explore_choreography(replace(saga, coordination="choreography"))
    assert set(choreographed.ends.values()) == set(explore(saga).ends.values())


def test_the_failing_step_refunds_itself_before_the_reservation_is_released() -> None:
    saga = Saga(
        name="order",
        coordination="choreography",
        steps=(
            Step(name="reserve", service="stock", compensation=Compensation(name="release")),
            Step(
                name="charge",
                service="payments",
                reject=0.3,
                compensation=Compensation(name="refund"),
                compensate_on_failure=True,
            ),
        ),
    )
    chor = compile_choreography(saga)
    assert "charge_self_undoing" in chor.services["payments"].states
    report = check(saga)
    assert report.consistent and report.anomalies["empty_compensation"] >= 1
    trace = next(
        t
        for t in simulate(saga, runs=200, seed=3, trace_limit=200).traces
        if t.outcome == "compensated"
    )
    order = [e.event for e in trace.events if e.event.endswith((".reject", ".ok"))]
    assert order.index("refund.ok") < order.index("release.ok")


@pytest.mark.statistical
def test_choreographed_self_compensation_rates_match_analyze() -> None:
    saga = Saga(
        name="order",
        steps=(
            Step(name="reserve", compensation=Compensation(name="release")),
            Step(
                name="charge",
                reject=0.2,
                failure=0.3,
                retry=Retry(attempts=2),
                compensation=Compensation(name="refund"),
                compensate_on_failure=True,
            ),
            Step(name="ship", kind_declared="pivot", reject=0.1),
        ),
    )
    exact = analyze(saga, sensitivity=False)
    results = simulate(replace(saga, coordination="choreography"), runs=20_000, seed=8)
    assert_around_exact_values(results, exact)


def test_the_service_view_draws_the_self_undoing_state(tmp_path: Path) -> None:
    saga = Saga(
        name="order",
        coordination="choreography",
        steps=(
            Step(name="reserve", compensation=Compensation(name="release")),
            Step(name="charge", reject=0.1, compensation=Compensation(name="refund"),
                 compensate_on_failure=True),
        ),
    )  # fmt: skip
    out = draw(saga, tmp_path / "charge.dot", view="service:charge")
    text = out.read_text()
    assert "charge_self_undoing" in text and "refund.ok" in text


# --- choices, fail and succeed --------------------------------------------------------------


def orchestrated_ends(saga: Saga) -> set[tuple[str, tuple[str, ...], str | None]]:
    """Every (end state, anomalies, fail name) the orchestrated saga can end in."""
    space, states = explore(saga), compile_saga(saga).states
    return {(*space.ends[i], states[space.nodes[i][0]].fail) for i in space.ends}  # type: ignore[index]


def choreographed_ends(saga: Saga) -> set[tuple[str, tuple[str, ...], str | None]]:
    """Every (end state, anomalies, fail name) the choreography over its broker can end in
    (a saga whose message interleavings pass ``LIMIT`` states is left out: too slow here)."""
    try:
        space = explore_choreography(replace(saga, coordination="choreography"), max_states=LIMIT)
    except StateSpaceLimitError:
        assume(False)
        raise
    fail_of = space.choreography.fail_of
    return {(*space.ends[i], fail_of(space.nodes[i][0])) for i in space.ends}


LIMIT = 20_000


@settings(SETTINGS, max_examples=120)
@given(choreography_sagas(timeouts=False, max_entries=2))
def test_choices_over_a_perfect_broker_reach_the_orchestrated_end_states(saga: Saga) -> None:
    validate(saga)  # what the strategy makes, the model rules accept
    assert choreographed_ends(saga) == orchestrated_ends(saga), saga


@settings(SETTINGS, max_examples=60)
@given(choreography_sagas(max_entries=2))
def test_with_timeouts_too_the_end_states_are_the_orchestrated_ones(saga: Saga) -> None:
    assert choreographed_ends(saga) == orchestrated_ends(saga), saga


@settings(SETTINGS, max_examples=25)
@given(choreography_sagas(max_entries=2), st.integers(0, 1000))
def test_the_table_takes_the_edges_of_the_library_classes(saga: Saga, seed: int) -> None:
    saga = replace(
        saga,
        coordination="choreography",
        broker=Broker(latency=Exponential(mean_ms=3.0), duplicate=0.2, reorder=0.3),
    )
    table = simulate_instance(saga, seed=seed)
    assert simulate_instance(saga, seed=seed, driver="library") == table


STOCK = Saga(
    name="stock",
    compensation_order="reverse",
    steps=(
        Step(name="check", service="stock", effects=False),
        Choice(
            name="level",
            branches=(
                Branch(
                    when="high",
                    probability=0.6,
                    steps=(
                        Step(name="reserve", service="stock",
                             compensation=Compensation(name="release"), failure=0.1),
                        Choice(name="vip", branches=(
                            Branch(when="yes", probability=0.3,
                                   steps=(Succeed(name="fast_track"),)),
                            Branch(when="no", default=True),
                        )),
                    ),
                ),
                Branch(when="low", probability=0.3, steps=(Fail(name="out_of_stock"),)),
                Branch(when="none", default=True, steps=()),
            ),
        ),
        Step(
            name="charge",
            service="payments",
            reject=0.2,
            failure=0.2,
            retry=Retry(attempts=2),
            compensation=Compensation(name="refund"),
            compensate_on_failure=True,
        ),
        Choice(name="fraud", branches=(
            Branch(when="flagged", probability=0.1, steps=(Fail(name="fraud_suspected"),)),
            Branch(when="clean", default=True),
        )),
        Step(name="ship", kind_declared="pivot", reject=0.1),
    ),
)  # fmt: skip


def test_the_deciding_service_publishes_the_branch_event() -> None:
    chor = compile_choreography(replace(STOCK, coordination="choreography"))
    level = chor.role("level")
    assert (level.kind, level.service, level.triggers) == ("choice", "stock", {"check.done"})
    assert chor.role("reserve").triggers == {"level.high"}
    assert chor.role("charge").starts == (
        frozenset({"level.none"}), frozenset({"vip.no"}),  # an OR-join after the choice
    )  # fmt: skip
    assert chor.subscribers["level.high"] == ("reserve",)
    assert chor.role("out_of_stock").kind == "fail"
    assert "level.high" in {t.event for t in chor.services["stock"].transitions}
    results = simulate(replace(STOCK, coordination="choreography"), runs=400, seed=5,
                       trace_limit=400)  # fmt: skip
    decided = [
        next(e.event for e in t.events if e.event.startswith("level.")) for t in results.traces
    ]
    assert set(decided) == {"level.high", "level.low", "level.none"}
    assert results.decisions == frozenset({"level", "vip", "fraud"})
    fast = next(t for t in results.traces if any(e.event == "vip.yes" for e in t.events))
    assert fast.outcome == "committed"
    assert not any(e.event.startswith("charge.") for e in fast.events)  # succeed ends it


def test_check_counts_the_choreographed_ends_by_fail_name() -> None:
    orchestrated = check(STOCK)
    choreographed = check(replace(STOCK, coordination="choreography"))
    assert set(choreographed.fails) == {"out_of_stock", "fraud_suspected"}
    assert set(choreographed.fails) == set(orchestrated.fails)
    assert all(count > 0 for count in choreographed.fails.values())
    assert {k for k, v in choreographed.end_states.items() if v} == {
        k for k, v in orchestrated.end_states.items() if v
    }


@pytest.mark.statistical
def test_choreographed_choice_rates_match_analyze() -> None:
    exact = analyze(STOCK, sensitivity=False)
    results = simulate(replace(STOCK, coordination="choreography"), runs=20_000, seed=11)
    assert_around_exact_values(results, exact)
    assert set(results.fails) == set(exact.fails) == {"out_of_stock", "fraud_suspected"}
    for name, by_outcome in exact.fails.items():
        for outcome, p in by_outcome.items():
            k = results.fails[name][outcome]
            ci = stats.binomtest(k, results.runs).proportion_ci(0.999, method="wilson")
            assert ci.low <= p <= ci.high, (name, outcome, p, k)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (Goto(target="a"), "a goto (a), which a choreography cannot run yet: a service starts"),
        (Map(name="m", items=2, steps=(Step(name="b"),)), "a map (m), which a choreography"),
        (
            SubSaga(name="sub", model="child.yaml", saga=Saga(name="c", steps=(Step(name="b"),))),
            "a sub-saga (sub), which a choreography cannot run yet: a child recovers first",
        ),
    ],
    ids=["goto", "map", "sub-saga"],
)
def test_gotos_maps_and_sub_sagas_are_refused_in_one_line(entry: Entry, why: str) -> None:
    saga = Saga(name="s", coordination="choreography", steps=(Step(name="a"), entry))
    for run in (compile_choreography, check, lambda s: simulate(s, runs=10)):
        with pytest.raises(SagaSimError) as refused:
            run(saga)
        message = str(refused.value)
        assert why in message and "\n" not in message
        assert message.endswith("run it orchestrated (coordination: orchestration)")


def test_a_pivot_inside_a_choice_is_refused_in_one_line() -> None:
    pivot = Step(name="b", kind_declared="pivot")
    saga = Saga(name="s", coordination="choreography", steps=(
        Step(name="a"),
        Choice(name="c", branches=(Branch(when="x", probability=0.5, steps=(pivot,)),
                                   Branch(when="y", default=True))),
    ))  # fmt: skip
    with pytest.raises(SagaSimError, match=r"^s: steps\[1\] is a choice \(c\) holding the pivot"):
        compile_choreography(saga)


def test_the_service_views_draw_choice_roles(tmp_path: Path) -> None:
    saga = replace(STOCK, coordination="choreography")
    d = extract_choreography(saga)
    looks = {node.id: node.look for node in d.nodes}
    assert (looks["level"], looks["out_of_stock"], looks["fast_track"]) == (
        "choice", "fail", "succeed",
    )  # fmt: skip
    edges = {(e.source, e.label, e.target) for e in d.edges}
    assert {("level", "level.high", "reserve"), ("level", "level.low", "out_of_stock")} <= edges
    assert ("out_of_stock", "out_of_stock.failed", "release") not in edges  # nothing done yet
    assert ("fraud_suspected", "fraud_suspected.failed", "refund") in edges
    stock = extract_choreography(saga, "service:stock")
    titles = "\n".join(node.title for node in stock.nodes)
    assert "level: deciding" in titles and "level: chose_high" in titles
    for view, name in (("collaboration", "stock.mmd"), ("service:stock", "stock.dot")):
        assert draw(saga, tmp_path / name, view=view).stat().st_size > 0
