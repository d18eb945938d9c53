"""Choreography: per-service machines, the broker's faults in check and simulate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from scipy import stats

from sagasim import io
from sagasim.analysis import analyze
from sagasim.exceptions import SagaSimError
from sagasim.experiments import sweep
from sagasim.machine import compile_choreography
from sagasim.model import (
    Broker,
    Compensation,
    Constant,
    Exponential,
    Goto,
    Map,
    Retry,
    Saga,
    Step,
    SubSaga,
    walk,
)
from sagasim.sim import simulate, simulate_instance
from sagasim.verify import check, explore, explore_choreography

MODELS = Path(__file__).parent.parent / "models"
ORDER = io.load(MODELS / "order_fulfillment.yaml")
CHOREO = replace(ORDER, coordination="choreography")


def _interval(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.999, method="wilson")
    return float(ci.low), float(ci.high)


def test_roles_follow_the_saga_shape() -> None:
    chor = compile_choreography(CHOREO)
    assert sorted(chor.services) == sorted({s.service_name for s in ORDER.all_steps()})
    pay = chor.role("process_payment")
    assert pay.triggers == {"fraud_check.done", "hold_loyalty_points.done"}  # the join
    hold = chor.role("hold_loyalty_points")
    assert hold.aborts == {"fraud_check.failed"}  # a concurrent branch failed
    assert hold.failures == {"fraud_check.failed", "process_payment.failed"}
    reserve = chor.role("reserve_inventory")
    assert reserve.waits == (("hold_loyalty_points", "restore_points"),)  # reverse order
    # ... until the loyalty hold is known to hold nothing: undone, failed, or halted unstarted
    assert reserve.clears == (
        {"restore_points.done", "hold_loyalty_points.failed", "hold_loyalty_points.skipped"},
    )
    assert chor.role("trigger_delivery").compensation is None  # after the pivot
    parallel = compile_choreography(replace(CHOREO, compensation_order="parallel"))
    assert parallel.role("reserve_inventory").waits == ()


def test_each_service_machine_is_a_library_class_read_back() -> None:
    chor = compile_choreography(CHOREO)
    inventory = chor.services["inventory"]
    assert set(inventory.states) == {
        f"reserve_inventory_{s}" for s in ("waiting", "running", "done", "undoing", "undone")
    }
    ids = {s.id for s in inventory.machine_class.states}  # type: ignore[attr-defined]
    assert ids == set(inventory.states)
    events = {t.event for t in inventory.transitions}
    assert {"reserve_inventory.start", "reserve_inventory.undo", "release_inventory.ok"} <= events


@pytest.mark.parametrize("path", sorted(MODELS.glob("**/*.yaml")), ids=lambda p: p.stem)
def test_a_perfect_broker_reaches_the_orchestrated_end_states(path: Path) -> None:
    # without crashes: a choreography's outboxes and a coordinator crash differently
    saga = replace(io.load(path), coordination="orchestration", broker=Broker(), coordinator=None)
    if any(isinstance(e, (Goto, Map, SubSaga)) for e in walk(saga.steps)):  # refused in one line
        with pytest.raises(SagaSimError, match="which a choreography cannot run yet"):
            explore_choreography(replace(saga, coordination="choreography"))
        return
    choreographed = explore_choreography(replace(saga, coordination="choreography"))
    assert set(choreographed.ends.values()) == set(explore(saga).ends.values())


def test_an_undo_waits_for_a_later_success_still_in_flight() -> None:
    # s3 is rejected while s2's success is on its way to s0: s0 must not be undone before s2
    # is (it used to be, and then an undo_s2 that fails left s0 undone: an end the orchestrator
    # never reaches, with undo_s0's timed-out attempts landing as empty compensations).
    saga = io.loads(
        "saga: race\nsteps:\n"
        "  - name: s0\n"
        "    compensation: {name: undo_s0, latency: {dist: exponential, mean: 10ms},\n"
        "                   timeout: 15ms, retry: {attempts: unbounded}}\n"
        "  - parallel:\n"
        "      - - {name: s2, compensation: {name: undo_s2, failure: 0.1}}\n"
        "      - - {name: s3, reject: 0.1}\n"
    )
    chor = compile_choreography(saga)
    assert chor.role("s0").clears == ({"undo_s2.done", "s2.failed", "s2.skipped"},)
    space = explore_choreography(replace(saga, coordination="choreography"))
    ends = set(space.ends.values())
    assert ends == set(explore(saga).ends.values())
    assert ("stuck", ("empty_compensation",)) not in ends


def test_loss_without_redelivery_makes_stuck_reachable_with_the_lost_message() -> None:
    report = check(replace(CHOREO, broker=Broker(loss=0.001)))
    assert not report.consistent
    stuck = next(v for v in report.violations if v.outcome == "stuck")
    assert stuck.trace[-1].endswith(" lost") and "→" in stuck.trace[-1]
    assert "lossy-broker" in {w.code for w in report.warnings}
    resent = check(replace(CHOREO, broker=Broker(loss=0.001, redelivery=Retry(attempts=None))))
    assert resent.consistent and resent.end_states["stuck"] == 0


def test_duplicates_need_idempotent_services() -> None:
    saga = Saga(
        name="dup",
        coordination="choreography",
        broker=Broker(duplicate=0.1),
        steps=(
            Step(name="reserve", compensation=Compensation(name="release")),
            Step(name="charge", kind_declared="pivot", reject=0.1),
        ),
    )
    report = check(saga)
    assert report.anomalies["duplicate_effect"] > 0
    assert any("twice" in event for v in report.violations for event in v.trace)
    reserve, charge = saga.steps
    assert isinstance(reserve, Step) and isinstance(charge, Step)
    release = Compensation(name="release", idempotent=True)
    safe = replace(
        saga,
        steps=(
            replace(reserve, idempotent=True, compensation=release),
            replace(charge, idempotent=True),
        ),
    )
    assert check(safe).anomalies["duplicate_effect"] == 0


def test_table_and_library_drivers_take_the_same_edges() -> None:
    faulty = replace(
        CHOREO,
        broker=Broker(
            latency=Exponential(mean_ms=5.0),
            loss=0.1,
            duplicate=0.2,
            reorder=0.3,
            redelivery=Retry(attempts=2, delay_ms=20.0),
        ),
    )
    for seed in range(25):
        table = simulate_instance(faulty, seed=seed)
        assert simulate_instance(faulty, seed=seed, driver="library") == table


@pytest.mark.statistical
def test_simulated_rates_agree_with_the_orchestrated_exact_values() -> None:
    exact = analyze(ORDER)
    results = simulate(
        replace(CHOREO, broker=Broker(latency=Exponential(mean_ms=3.0))), runs=20_000, seed=11
    )
    for outcome, p in exact.outcomes.items():
        low, high = _interval(results.outcomes[outcome], results.runs)
        assert low <= p <= high, outcome
    low, high = _interval(int(results.compensated.sum()), results.runs)
    assert low <= exact.compensation_probability <= high


@pytest.mark.statistical
def test_stuck_rate_follows_the_loss_probability() -> None:
    # A chain of 5 steps that cannot fail: 4 messages carry it; losing any one stalls it.
    chain = Saga(
        name="chain",
        coordination="choreography",
        broker=Broker(loss=0.02, latency=Constant(value_ms=1.0)),
        steps=tuple(Step(name=f"s{i}", effects=False) for i in range(5)),
    )
    results = simulate(chain, runs=20_000, seed=5)
    low, high = _interval(results.outcomes["stuck"], results.runs)
    assert low <= 1 - 0.98**4 <= high
    # the k-th message is sent only when the k - 1 before it arrived
    assert results.messages.mean() == pytest.approx(sum(0.98**k for k in range(4)), abs=0.02)


@pytest.mark.statistical
def test_simulated_duplicates_are_counted_and_reachable() -> None:
    saga = replace(CHOREO, broker=Broker(duplicate=0.05, latency=Exponential(mean_ms=5.0)))
    results = simulate(saga, runs=5_000, seed=2)
    assert results.anomalies["duplicate_effect"] > 0
    reachable = set(check(saga).space.ends.values())  # type: ignore[union-attr]
    for trace in simulate(saga, runs=300, seed=3, trace_limit=300).traces:
        assert (trace.outcome, trace.anomalies) in reachable


def test_analyze_and_sweep_say_when_a_broker_is_beyond_them() -> None:
    ideal = analyze(CHOREO, sensitivity=False)
    assert ideal.outcomes == analyze(ORDER, sensitivity=False).outcomes
    assert not any("broker" in note for note in ideal.notes)
    lossy = replace(CHOREO, broker=Broker(loss=0.01))
    assert any("broker" in note for note in analyze(lossy, sensitivity=False).notes)
    result = sweep(lossy, {"process_payment.reject": [0.0, 0.1]}, runs=200, seed=1)
    assert all(point.analysis is None for point in result.points)
    assert any("does not model a choreography's broker" in note for note in result.notes)
    exact = sweep(CHOREO, {"process_payment.reject": [0.0, 0.1]}, runs=200, seed=1)
    assert all(point.analysis is not None for point in exact.points)


@pytest.mark.statistical
def test_a_message_lost_on_its_last_redelivery_ends_the_saga_stuck() -> None:
    # Each delivery is lost half the time and sent at most twice: reserve.done never reaches
    # charge a quarter of the time. Such an instance must still end (it used to hang, and the
    # instances after it in the chunk were never run, reading as committed in 0 ms).
    saga = Saga(
        name="pay",
        coordination="choreography",
        broker=Broker(loss=0.5, redelivery=Retry(attempts=2, delay_ms=5.0)),
        steps=(
            Step(
                name="reserve",
                latency=Constant(value_ms=10.0),
                compensation=Compensation(name="release"),
            ),
            Step(name="charge", kind_declared="pivot", latency=Constant(value_ms=10.0)),
        ),
    )
    results = simulate(saga, runs=2_000, seed=3)
    assert (results.latency_ms >= 10.0).all() and (results.messages >= 1).all()
    low, high = _interval(results.outcomes["stuck"], results.runs)
    assert low <= 0.25 <= high
