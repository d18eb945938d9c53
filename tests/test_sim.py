"""The simulator against the machine, the state space, exact values and queueing theory."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from scipy import stats

from sagasim import io
from sagasim.exceptions import SagaSimError
from sagasim.model import (
    Arrivals,
    Compensation,
    Constant,
    Exponential,
    LogNormal,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
)
from sagasim.sim import simulate, simulate_instance
from sagasim.sim.results import COLUMNS
from sagasim.verify import explore, explore_choreography
from sagasim.verify.crashes import can_crash, explore_crashes
from tests.strategies import sagas

MODELS = Path(__file__).resolve().parent.parent / "models"
EXP = Exponential(mean_ms=10.0)


def sequential_with_timeouts() -> Saga:
    """Retries, timeouts that land late, rejections, fragile compensations, a pivot."""
    return Saga(
        name="seq",
        steps=(
            Step(
                name="reserve",
                latency=EXP,
                failure=0.1,
                retry=Retry(attempts=2, delay_ms=5.0),
                compensation=Compensation(
                    name="release", latency=EXP, failure=0.3, retry=Retry(attempts=2)
                ),
            ),
            Step(
                name="authorize",
                latency=EXP,
                timeout_ms=12.0,
                failure=0.05,
                reject=0.05,
                retry=Retry(attempts=3, backoff="exponential", delay_ms=4.0, jitter=True),
                compensation=Compensation(name="void", latency=EXP, timeout_ms=15.0),
            ),
            Step(name="confirm", kind_declared="pivot", latency=EXP, reject=0.2),
            Step(
                name="ship",
                kind_declared="retriable",
                latency=EXP,
                failure=0.3,
                retry=Retry(attempts=3, delay_ms=20.0),
            ),
        ),
    )


def with_parallel_group(order: str = "reverse") -> Saga:
    """Two branches of two steps, failing, retried, timing out; then a pivot."""

    def step(name: str, **kwargs: object) -> Step:
        return Step(
            name=name,
            latency=EXP,
            compensation=Compensation(
                name=f"undo_{name}", latency=EXP, failure=0.2, retry=Retry(attempts=2)
            ),
            **kwargs,  # type: ignore[arg-type]
        )

    return Saga(
        name="par",
        compensation_order=order,  # type: ignore[arg-type]
        steps=(
            step("a", failure=0.1, retry=Retry(attempts=2)),
            Parallel(
                branches=(
                    (step("b1", reject=0.1), step("b2", failure=0.2, retry=Retry(attempts=2))),
                    (step("c1", timeout_ms=12.0, retry=Retry(attempts=2)), step("c2", reject=0.1)),
                )
            ),
            Step(name="pay", kind_declared="pivot", latency=EXP, reject=0.2),
        ),
    )


# --- the table and the library take the same edges ---------------------------------------------


@pytest.mark.parametrize(
    ("saga", "seeds"),
    # python-statemachine takes ~50 ms to instantiate the 82 states of parallel compensation
    [(sequential_with_timeouts(), 200), (with_parallel_group(), 200),
     (with_parallel_group("parallel"), 40)],
    ids=["sequential", "parallel-group", "parallel-compensation"],
)  # fmt: skip
def test_table_and_library_drivers_give_identical_traces(saga: Saga, seeds: int) -> None:
    outcomes: set[str] = set()
    events: set[str] = set()
    for seed in range(seeds):
        table = simulate_instance(saga, seed, driver="table")
        library = simulate_instance(saga, seed, driver="library")
        assert table == library, f"seed {seed}"
        outcomes.add(table.outcome)
        events.update(e.event.rsplit(".", 1)[1] for e in table.events)
    # the seeds exercised the interesting edges, so agreement means something
    assert {"committed", "compensated", "stuck"} <= outcomes
    assert {"ok", "fail", "reject", "timeout"} <= events


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sagas())
def test_drivers_agree_and_outcomes_are_reachable_on_random_sagas(saga: Saga) -> None:
    for seed in range(5):
        assert simulate_instance(saga, seed) == simulate_instance(saga, seed, driver="library")
    results = simulate(saga, runs=300, seed=1)
    assert sum(results.outcomes.values()) == 300
    if saga.coordination == "choreography":
        space = explore_choreography(saga)
    else:  # a coordinator that crashes: check's crash at every log point
        space = explore_crashes(saga) if can_crash(saga) else explore(saga)
    seen = {name for name, n in results.outcomes.items() if n}
    assert seen <= space.outcomes_reachable()
    assert {name for name, n in results.anomalies.items() if n} <= space.anomalies_reachable()


# --- agreement with check -----------------------------------------------------------------------


def model_files() -> list[Path]:
    return sorted(MODELS.glob("*.yaml")) + sorted(MODELS.glob("flawed/*.yaml"))


@pytest.mark.parametrize("path", model_files(), ids=lambda p: p.stem)
def test_every_simulated_outcome_and_anomaly_is_reachable(path: Path) -> None:
    # explore knows neither outages nor queues (they add events): check the saga without them
    saga = replace(io.load(path), services=(), arrivals=None)
    results = simulate(saga, runs=4_000, seed=11)
    assert sum(results.outcomes.values()) == results.runs == 4_000
    if saga.coordination == "choreography":
        space = explore_choreography(saga)
    else:  # a coordinator that crashes: check's crash at every log point
        space = explore_crashes(saga) if can_crash(saga) else explore(saga)
    seen = {name for name, n in results.outcomes.items() if n}
    assert seen and seen <= space.outcomes_reachable()
    assert {name for name, n in results.anomalies.items() if n} <= space.anomalies_reachable()


def test_outcomes_caused_by_an_outage_are_reachable_for_check() -> None:
    saga = Saga(
        name="outage_stuck",
        steps=(
            Step(
                name="reserve",
                latency=Constant(value_ms=10.0),
                compensation=Compensation(name="release", service="inventory"),
            ),
            Step(name="charge", kind_declared="pivot", reject=0.5),
        ),
        services=(Service(name="inventory", outages=(Outage(start_ms=5.0, end_ms=100.0),)),),
    )
    results = simulate(saga, runs=1_000)
    assert results.outcomes["stuck"] > 0  # release runs at 10 ms, inside the outage
    assert "stuck" in explore(saga).outcomes_reachable()


def test_the_flawed_timeout_model_shows_the_anomalies_check_predicts() -> None:
    saga = io.load(MODELS / "flawed" / "ambiguous_timeout.yaml")
    anomalies = simulate(saga, runs=20_000, seed=2).anomalies
    for name in ("duplicate_effect", "hanging", "late_leak"):
        assert anomalies[name] > 0, name
        assert name in explore(saga).anomalies_reachable()


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_gives_identical_json_whatever_the_workers() -> None:
    saga = io.load(MODELS / "order_fulfillment.yaml")
    one = simulate(saga, runs=24_000, seed=3, chunk_size=5_000, workers=1)
    two = simulate(saga, runs=24_000, seed=3, chunk_size=5_000, workers=2)
    with ThreadPoolExecutor(3) as pool:
        threads = simulate(saga, runs=24_000, seed=3, chunk_size=5_000, executor=pool)
    text = json.dumps(one.to_dict(), allow_nan=False)
    assert json.dumps(two.to_dict(), allow_nan=False) == text
    assert json.dumps(threads.to_dict(), allow_nan=False) == text
    np.testing.assert_array_equal(one.latency_ms, two.latency_ms)
    assert one.to_dict() != simulate(saga, runs=24_000, seed=4, chunk_size=5_000).to_dict()


def test_a_shared_run_is_one_chunk_and_reproducible() -> None:
    saga = io.load(MODELS / "order_fulfillment_under_load.yaml")
    first = simulate(saga, runs=3_000, seed=5, chunk_size=500)
    again = simulate(saga, runs=3_000, seed=5, chunk_size=1_000, workers=2)
    assert first.to_dict() == again.to_dict()
    assert np.all(np.diff(first.start_ms) >= 0)  # arrivals in order, one clock


# --- exact values -------------------------------------------------------------------------------


def _succeeds(action: Step | Compensation) -> float:
    """P(the action succeeds within its attempts): a(1 - x^A)/(1 - x)."""
    t = action.p_timeout
    a = (1 - action.reject) * (1 - action.failure) * (1 - t)
    b = action.reject * (1 - t)
    x = 1 - a - b
    attempts = action.retry.attempts
    if attempts is None:
        return a / (1 - x)
    return a * (1 - x**attempts) / (1 - x)


def closed_form(saga: Saga) -> tuple[dict[str, float], float]:
    """Outcome probabilities and P(a compensation ran) of a sequential saga without leaks."""
    steps = [e for e in saga.steps if isinstance(e, Step)]
    pivot = saga.pivot_index
    p = {"committed": 1.0, "compensated": 0.0, "leaked": 0.0, "stuck": 0.0}
    compensation = 0.0
    reach = 1.0  # P(the first k steps succeeded)
    for k, step in enumerate(steps):
        s = _succeeds(step)
        fail = reach * (1 - s)
        if pivot is not None and k > pivot:
            p["stuck"] += fail
        else:
            undo = [j.compensation for j in steps[:k] if j.compensation is not None]
            ok = math.prod(_succeeds(c) for c in undo)
            p["compensated"] += fail * ok
            p["stuck"] += fail * (1 - ok)
            compensation += fail if undo else 0.0
        reach *= s
    p["committed"] = reach
    return p, compensation


@pytest.mark.statistical
def test_outcome_rates_contain_the_closed_form() -> None:
    saga = Saga(
        name="exact",
        steps=(
            Step(
                name="s1",
                latency=Exponential(mean_ms=10.0),
                timeout_ms=20.0,
                failure=0.1,
                reject=0.05,
                retry=Retry(attempts=2, delay_ms=3.0),
                compensation=Compensation(name="c1", failure=0.2, retry=Retry(attempts=2)),
            ),
            Step(name="s2", effects=False, reject=0.1, latency=Exponential(mean_ms=5.0)),
            Step(
                name="s3",
                failure=0.3,
                retry=Retry(attempts=3, backoff="exponential", delay_ms=2.0, jitter=True),
                compensation=Compensation(name="c3", failure=0.1),
            ),
            Step(
                name="s4", kind_declared="pivot", reject=0.15, failure=0.1, retry=Retry(attempts=2)
            ),
            Step(name="s5", kind_declared="retriable", failure=0.2, retry=Retry(attempts=2)),
        ),
    )
    exact, compensation = closed_form(saga)
    results = simulate(saga, runs=200_000, seed=2024)
    for outcome, p in exact.items():
        rate = results.rate(outcome, confidence=0.999)
        assert rate.low <= p <= rate.high, (outcome, p, rate)
    rate = results.rate("compensation", confidence=0.999)
    assert rate.low <= compensation <= rate.high, (compensation, rate)


def test_times_follow_latencies_backoff_and_timeouts_exactly() -> None:
    saga = Saga(
        name="timed",
        steps=(
            Step(name="a", latency=Constant(value_ms=10.0), compensation=Compensation(name="u")),
            Step(
                name="b",
                latency=Constant(value_ms=50.0),
                timeout_ms=30.0,
                retry=Retry(attempts=3, backoff="exponential", delay_ms=100.0),
            ),
        ),
    )
    trace = simulate_instance(saga)
    # every attempt of b times out 30 ms after it starts and lands 20 ms later; backoff 100
    # then 200 ms; the second landing duplicates the first; giving up on b while its effect has
    # landed is a late leak, and so is the third landing after recovery
    assert trace.timeline == [
        (10.0, "a.ok"),
        (40.0, "b.timeout"),
        (60.0, "b.late_ok"),
        (170.0, "b.timeout"),
        (190.0, "b.late_ok"),
        (400.0, "b.timeout"),
        (400.0, "u.ok"),
        (420.0, "b.late_ok"),
    ]
    assert [e.state for e in trace.events][-3:] == ["u", "compensated", "compensated"]
    assert trace.outcome == "compensated"
    assert trace.latency_ms == 400.0
    assert trace.anomalies == ("duplicate_effect", "late_leak")


# --- timeouts: anomalies with unsafe steps, none with safe ones ---------------------------------


def timeout_saga(safe: bool) -> Saga:
    authorize = Step(
        name="authorize",
        latency=Exponential(mean_ms=15.0),
        timeout_ms=20.0,
        failure=0.02,
        retry=Retry(attempts=3, delay_ms=5.0),
        idempotent=safe,
        rejects_late=safe,
        compensation=Compensation(name="void", latency=Constant(value_ms=2.0)),
    )
    return Saga(
        name="timeouts",
        steps=(
            Step(name="reserve", compensation=Compensation(name="release")),
            authorize,
            Step(name="confirm", kind_declared="pivot", reject=0.1),
            Step(name="ship", kind_declared="retriable", retry=Retry(attempts=None)),
        ),
    )


def test_ambiguous_timeouts_cause_duplicates_hanging_and_late_leaks() -> None:
    results = simulate(timeout_saga(safe=False), runs=20_000, seed=9)
    assert results.anomalies["duplicate_effect"] > 100
    assert results.anomalies["hanging"] > 10
    assert results.anomalies["late_leak"] > 10
    assert results.to_dict()["anomalies"]["late_leaks"] == results.anomalies["late_leak"]


def test_idempotent_steps_that_reject_late_work_cause_none() -> None:
    results = simulate(timeout_saga(safe=True), runs=20_000, seed=9)
    assert results.anomalies == {
        "duplicate_effect": 0,
        "hanging": 0,
        "late_leak": 0,
        "empty_compensation": 0,
    }
    assert results.retries.sum() > 1_000  # the timeouts did happen
    assert not explore(timeout_saga(safe=True)).anomalies_reachable()


# --- load: arrivals, capacities, outages --------------------------------------------------------


def test_a_single_server_queue_matches_mm1() -> None:
    # M/M/1 with rho = 0.5: mean wait in queue rho / (mu - lambda) = 10 ms, in system 20 ms
    saga = Saga(
        name="mm1",
        steps=(Step(name="work", latency=Exponential(mean_ms=10.0)),),
        services=(Service(name="work", capacity=1),),
        arrivals=Arrivals(rate_per_s=50.0),
    )
    results = simulate(saga, runs=60_000, seed=4)
    service = results.service_stats()["work"]
    assert service["utilisation"] == pytest.approx(0.5, abs=0.02)
    assert service["mean_queue_wait_ms"] == pytest.approx(10.0, rel=0.12)
    assert results.latency()["mean"] == pytest.approx(20.0, rel=0.12)


def test_queueing_past_a_timeout_is_a_timeout_even_if_latency_never_is() -> None:
    saga = Saga(
        name="queue_timeout",
        steps=(
            Step(name="reserve", compensation=Compensation(name="release")),
            Step(
                name="charge",
                latency=Constant(value_ms=8.0),
                timeout_ms=20.0,
                retry=Retry(attempts=2),
            ),
        ),
        services=(Service(name="charge", capacity=1),),
        arrivals=Arrivals(rate_per_s=110.0),
    )
    results = simulate(saga, runs=5_000, seed=1)
    assert results.retries.sum() > 100
    assert results.outcomes["compensated"] > 0
    assert results.anomalies["duplicate_effect"] > 0  # queued attempts still land
    utilisation = results.service_stats()["charge"]["utilisation"]
    assert utilisation is not None and 0.8 < utilisation <= 1.0  # 110/s x 8 ms = 0.88


def outage_saga() -> Saga:
    return Saga(
        name="outage",
        steps=(
            Step(
                name="reserve",
                latency=LogNormal.from_p99(median_ms=20.0, p99_ms=80.0),
                compensation=Compensation(name="release", latency=Constant(value_ms=5.0)),
            ),
            Step(
                name="pay",
                service="payments",
                kind_declared="pivot",
                reject=0.02,
                latency=LogNormal.from_p99(median_ms=100.0, p99_ms=500.0),
            ),
            Step(name="ship", kind_declared="retriable", retry=Retry(attempts=None)),
        ),
        services=(
            Service(name="payments", capacity=10, outages=(Outage(start_ms=100e3, end_ms=130e3),)),
        ),
        arrivals=Arrivals(rate_per_s=20.0),
    )


def test_an_outage_shows_as_a_compensation_spike() -> None:
    results = simulate(outage_saga(), runs=5_000, seed=3)
    starts, rates = results.rate_over_time(10_000)
    during = rates[(starts >= 100e3) & (starts < 120e3)]  # windows inside the outage
    outside = rates[(starts + 10e3 <= 95e3) | (starts >= 135e3)]
    outside = outside[~np.isnan(outside)]
    assert during.min() > 0.95
    assert outside.max() < 0.1
    assert stats.binomtest(results.outcomes["compensated"], 5_000).pvalue < 1e-6
    # payment has failure 0: an outage still makes it fail, and nothing is left stuck
    assert results.outcomes["stuck"] == results.outcomes["leaked"] == 0


def test_retries_at_a_service_with_capacity_wait_their_backoff() -> None:
    saga = Saga(
        name="backoff",
        steps=(
            Step(
                name="a",
                latency=Constant(value_ms=10.0),
                failure=0.5,
                retry=Retry(attempts=3, delay_ms=100.0),
            ),
        ),
        services=(Service(name="a", capacity=50),),  # never full: no waiting
        arrivals=Arrivals(rate_per_s=10.0),
    )
    results = simulate(saga, runs=2_000, seed=8)
    committed = results.latency_ms[results.outcome == 0]
    assert set(np.round(committed, 6)) == {10.0, 120.0, 230.0}
    assert results.service_stats()["a"]["mean_queue_wait_ms"] == 0.0


def test_without_arrivals_outages_count_from_each_instance_start() -> None:
    saga = Saga(
        name="outage_at_start",
        steps=(
            Step(
                name="a",
                latency=Constant(value_ms=10.0),
                retry=Retry(attempts=None, delay_ms=20.0),
            ),
        ),
        services=(Service(name="a", outages=(Outage(start_ms=0.0, end_ms=50.0),)),),
    )
    results = simulate(saga, runs=500, seed=1)
    # attempts at 0 and 30 ms start inside the outage and fail; the one at 60 ms succeeds
    assert set(results.latency_ms) == {70.0}
    assert set(results.retries) == {2}


def test_progress_changes_nothing_but_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    saga = sequential_with_timeouts()
    quiet = simulate(saga, runs=3_000, seed=1, chunk_size=1_000)
    shown = simulate(saga, runs=3_000, seed=1, chunk_size=1_000, progress=True)
    assert shown.to_dict() == quiet.to_dict()
    assert "/3.00k [" in capsys.readouterr().err  # a tqdm bar counting instances


# --- errors and memory --------------------------------------------------------------------------


def test_a_saga_that_could_never_end_is_refused() -> None:
    saga = Saga(name="never", steps=(Step(name="a", failure=1.0, retry=Retry(attempts=None)),))
    with pytest.raises(SagaSimError, match="never end"):
        simulate(saga, runs=10)


@pytest.mark.parametrize(
    "kwargs", [{"runs": 0}, {"workers": 0}, {"chunk_size": 0}], ids=["runs", "workers", "chunk"]
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    saga = Saga(name="s", steps=(Step(name="a"),))
    with pytest.raises(ValueError, match="expected a positive"):
        simulate(saga, **kwargs)


def test_unknown_driver_is_refused() -> None:
    with pytest.raises(ValueError, match="driver"):
        simulate_instance(Saga(name="s", steps=(Step(name="a"),)), driver="fast")  # type: ignore[arg-type]


def test_a_million_instances_fit_in_a_few_tens_of_megabytes() -> None:
    results = simulate(io.load(MODELS / "order_fulfillment.yaml"), runs=2_000)
    per_instance = sum(getattr(results, name).nbytes for name in COLUMNS) / results.runs
    assert per_instance == 29
    assert per_instance * 1_000_000 < 300e6
