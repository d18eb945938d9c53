"""dsl: a saga written in Python equals its YAML twin, and is held to the same rules."""

from __future__ import annotations

import pytest

from sagasim.exceptions import SagaDefinitionError
from sagasim.io import format as io
from sagasim.io.dsl import (
    compensation,
    constant,
    empirical,
    exponential,
    lognormal,
    normal,
    parallel,
    retry,
    saga,
    service,
    step,
    uniform,
)
from sagasim.model import (
    Broker,
    Constant,
    Empirical,
    LogNormal,
    Parallel,
    Retry,
    Saga,
    Step,
    Uniform,
)

from .bad_inputs import GOOD_MODEL


def good_model_in_python() -> Saga:
    """GOOD_MODEL of bad_inputs.py, written with the DSL."""
    return saga(
        "order_fulfillment",
        step(
            "validate_order",
            service="orders",
            effects=False,
            latency=lognormal("15ms", p99="80ms"),
            reject=0.02,
        ),
        step(
            "recommend_upsell",
            service="recommender",
            compensation="cancel_recommendation_tracking",
            latency=uniform("5ms", "40ms"),
            failure=0.05,
            timeout="300ms",
            retry=retry(
                3, backoff="exponential", delay="50ms", max_delay="400ms", multiplier=3, jitter=True
            ),
        ),
        step(
            "reserve_inventory",
            service="inventory",
            latency=normal("20ms", "5ms"),
            idempotent=True,
            compensation=compensation(
                "release_inventory",
                service="inventory_admin",
                latency=empirical(["4ms", "6ms", "11ms"]),
                failure=0.01,
                reject=0.001,
                timeout="1s",
                retry=retry("unbounded", delay="100ms"),
                idempotent=True,
                rejects_late=True,
            ),
        ),
        parallel(
            [step("fraud_check", service="risk", effects=False, reject=0.01)],
            [
                step(
                    "hold_loyalty_points",
                    service="loyalty",
                    compensation="restore_points",
                    latency=lognormal("8ms", sigma=0.4),
                    rejects_late=True,
                )
            ],
        ),
        step(
            "process_payment",
            service="payments",
            kind="pivot",
            latency=constant("35ms"),
            reject=0.05,
        ),
        step(
            "trigger_delivery",
            service="shipping",
            kind="retriable",
            latency=exponential("2s"),
            retry=retry("unbounded", delay="1s"),
        ),
        description="Validate, recommend, reserve, charge, ship.",
        coordination="orchestration",
        compensation_order="reverse",
        services=[service("payments", capacity=20, outages=[("60s", "90s")]), service("shipping")],
        arrivals="50/s",
        broker=Broker(
            latency=uniform("1ms", "4ms"),
            loss=0.001,
            duplicate=0.01,
            reorder=0.05,
            redelivery=Retry(attempts=3, delay_ms=500.0),
        ),
    )


def test_the_python_twin_equals_the_yaml_model() -> None:
    built, loaded = good_model_in_python(), io.loads(GOOD_MODEL)
    for mine, theirs in zip(built.all_steps(), loaded.all_steps(), strict=True):
        assert mine == theirs, mine.name
    assert built == loaded
    assert io.to_dict(built) == io.to_dict(loaded)


def test_the_twin_covers_every_distribution_and_every_field() -> None:
    built = good_model_in_python()
    kinds = {action.latency.dist for action in built.actions()}
    assert kinds == set(io.DISTRIBUTIONS)
    keys = {key for action in io.to_dict(built)["steps"] if "name" in action for key in action}
    parallel_steps = [
        s
        for entry in io.to_dict(built)["steps"]
        if "parallel" in entry
        for b in entry["parallel"]
        for s in b
    ]
    keys |= {key for step in parallel_steps for key in step}
    graph_keys = {"compensate_on_failure", "max_visits"}  # tests/test_dsl_graph.py has them
    shared_keys = {"reads", "writes"}  # tests/test_shared_model.py has them
    assert keys == {key for key, *_ in io.STEP} - graph_keys - shared_keys
    release = io.to_dict(built)["steps"][2]["compensation"]
    assert set(release) == {key for key, *_ in io.COMPENSATION} - shared_keys
    assert set(io.to_dict(built)["steps"][1]["retry"]) == {key for key, *_ in io.RETRY}
    assert set(io.to_dict(built)) == {key for key, *_ in io.SAGA} - {
        *("resources", "isolation", "instances", "coordinator"),  # tests/test_shared_model.py
        "coordination",
        "compensation_order",
    }


def test_helpers_build_the_model_objects() -> None:
    assert constant("1.5s") == Constant(value_ms=1500.0)
    assert uniform("1ms", "1ms") == Uniform(low_ms=1.0, high_ms=1.0)
    assert lognormal("15ms", sigma=0) == LogNormal(median_ms=15.0, sigma=0.0)
    assert empirical(("2min",)) == Empirical(samples_ms=(120000.0,))
    assert retry() == Retry()
    assert step("a", compensation="undo").compensation == compensation("undo")
    group = parallel([step("a")], (step("b"), step("c")))
    assert group == Parallel(branches=((Step(name="a"),), (Step(name="b"), Step(name="c"))))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: step("a", timeout=300),
            "a.timeout: expected a duration with a unit (ms, s, min), got 300",
        ),
        (lambda: step("a", failure="often"), "a.failure: expected a number, got 'often'"),
        (lambda: step("a", effects="no"), "a.effects: expected true or false, got 'no'"),
        (
            lambda: step("a", kind="pivott"),
            "a.kind: expected 'pivot' or 'retriable', got 'pivott' (did you mean 'pivot'?)",
        ),
        (
            lambda: step("a", latency="5ms"),
            "a.latency: expected a distribution such as constant('5ms'), got '5ms'",
        ),
        (lambda: step("a", retry=3), "a.retry: expected a retry(...), got 3"),
        (
            lambda: step("a", compensation=5),
            "a.compensation: expected a compensation name or compensation(...), got 5",
        ),
        (
            lambda: compensation("undo", timeout="-1s"),
            "undo.timeout: expected a non-negative duration, got '-1s'",
        ),
        (
            lambda: uniform("5ms", "1ms"),
            "uniform.high: expected a duration of at least low (5ms), got '1ms'",
        ),
        (lambda: exponential("0ms"), "exponential.mean: expected a positive duration, got '0ms'"),
        (lambda: lognormal("15ms"), "lognormal: expected either 'p99' or 'sigma', got neither"),
        (
            lambda: lognormal("15ms", p99="10ms"),
            "lognormal.p99: expected a duration above the median (15ms), got '10ms'",
        ),
        (
            lambda: empirical([]),
            "empirical.samples: expected a non-empty list of durations, got an empty list",
        ),
        (lambda: retry(0), "retry.attempts: expected a positive integer or 'unbounded', got 0"),
        (
            lambda: retry(backoff="linear"),
            "retry.backoff: expected 'fixed' or 'exponential', got 'linear'",
        ),
        (lambda: retry(multiplier=0.5), "retry.multiplier: expected a number >= 1, got 0.5"),
        (
            lambda: service("payments", capacity=0),
            "services.payments.capacity: expected a positive integer, got 0",
        ),
        (
            lambda: service("payments", outages=[("1m", "2m")]),
            "services.payments.outages[0].start: expected a duration with a unit (ms, s, min),"
            " got '1m'",
        ),
        (
            lambda: parallel([step("a")], step("b")),
            "parallel[1]: expected a list of steps, got 'Step'",
        ),
        (
            lambda: parallel([step("a"), "b"]),
            "parallel[0][1]: expected a step(...) or another entry, got 'b'",
        ),
        (lambda: saga("s", "a"), "steps[0]: expected a step(...) or another entry, got 'a'"),
        (
            lambda: saga("s", step("a"), step("a")),
            "steps[1].name: expected a unique name, got 'a' again (first used at steps[0].name)",
        ),
        (
            lambda: saga("s", step("a", kind="pivot"), step("b", kind="pivot")),
            "steps[1].kind: expected at most one pivot, got a second one (first at steps[0])",
        ),
        (
            lambda: saga("s", step("a"), services=[service("a"), service("a")]),
            "services: expected each service(...) once, got 'a'",
        ),
        (
            lambda: saga("s", step("a"), services=[service("b")]),
            "services.b: expected a service that a step calls (a), got 'b'",
        ),
        (
            lambda: saga("s", step("a"), arrivals="fast"),
            "arrivals.rate: expected a rate such as 50/s, 3000/min or a number per second, got"
            " 'fast'",
        ),
        (
            lambda: saga("s", step("a"), compensation_order="backwards"),
            "compensation_order: expected 'reverse' or 'parallel', got 'backwards'",
        ),
        (lambda: saga("", step("a")), "saga: expected a non-empty name, got ''"),
    ],
)
def test_the_dsl_is_held_to_the_rules_of_a_file(build: object, message: str) -> None:
    with pytest.raises(SagaDefinitionError) as caught:
        build()  # type: ignore[operator]
    assert str(caught.value) == message
