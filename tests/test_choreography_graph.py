"""Self-compensation choreographed: a step with ``compensate_on_failure`` undoes itself when it
fails for good, then says it failed, so the undo cascade runs as the orchestrator orders it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagasim.analysis import analyze
from sagasim.machine import compile_choreography
from sagasim.model import Compensation, Parallel, Retry, Saga, Step
from sagasim.sim import simulate
from sagasim.verify import check, explore, explore_choreography
from sagasim.viz import draw

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
