"""Choreographed sagas under load: services with a capacity queue attempts as orchestration does.

Without a broker delay, the same seed gives both forms the same arrival times (the gaps are the
first numbers drawn), so on a saga whose attempts draw nothing random the two forms must agree
instance by instance. With random latencies they draw different numbers: there they are held
to queueing theory and to each other with 99.9% Wilson intervals.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Literal

import numpy as np
import pytest
from scipy import stats

from sagasim import io
from sagasim.model import Arrivals, Broker, Constant, Exponential, Saga, Service, Step
from sagasim.sim import Results, simulate
from sagasim.sim.choreography import Chunk

from .conftest import check_invariants

#: Nothing random but the arrivals: reserve, then a charge at a single server that times out
#: once its wait grows past 12 ms, is retried, and fails during the ledger's outage.
DETERMINISTIC = io.loads("""
saga: queued
services:
  ledger: {capacity: 1, outages: [{start: 10s, end: 12s}]}
steps:
  - name: reserve
    service: stock
    latency: {dist: constant, value: 2ms}
    compensation: {name: release, latency: {dist: constant, value: 1ms}}
  - name: charge
    service: ledger
    kind: pivot
    latency: {dist: constant, value: 8ms}
    timeout: 20ms
    retry: {attempts: 2, delay: 5ms}
arrivals: {rate: 60/s}
""")

#: M/G/1 at the ledger: every instance reaches charge (reserve cannot fail), whose latency
#: alone never reaches its 30 ms timeout; queueing does, and a timed-out charge lands late.
TIMEOUTS = io.loads("""
saga: timeouts
services:
  ledger: {capacity: 1}
steps:
  - name: reserve
    service: stock
    latency: {dist: exponential, mean: 2ms}
    compensation: {name: release, latency: {dist: uniform, low: 1ms, high: 3ms}}
  - name: charge
    service: ledger
    kind: pivot
    latency: {dist: uniform, low: 4ms, high: 12ms}
    reject: 0.05
    timeout: 30ms
arrivals: {rate: 90/s}
""")
RATE, MEAN_S, MEAN_S2 = 0.09, 8.0, 8.0**2 / 12 + 8.0**2  # per ms; U(4, 12) ms: E[S], E[S^2]
RHO = RATE * MEAN_S
#: Pollaczek-Khinchine: the mean wait in an M/G/1 queue.
PK_WAIT_MS = RATE * MEAN_S2 / (2 * (1 - RHO))
RUNS = 20_000

Form = Literal["orchestration", "choreography"]


def _interval(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.999, method="wilson")
    return float(ci.low), float(ci.high)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def uncapped(saga: Saga) -> Saga:
    return replace(saga, services=tuple(replace(s, capacity=None) for s in saga.services))


@functools.cache
def run(form: Form, capped: bool, seed: int) -> Results:
    """TIMEOUTS in one form over a perfect broker without delay, with or without capacity."""
    saga = replace(TIMEOUTS, coordination=form)
    return simulate(saga if capped else uncapped(saga), runs=RUNS, seed=seed, trace_limit=2_000)


def rounded(*fields: object) -> tuple[object, ...]:
    """A span's or an event's fields, times rounded to a nanosecond."""
    return tuple(round(f, 6) if isinstance(f, float) else f for f in fields)


def timeouts(results: Results) -> int:
    """Attempts that timed out among the traced instances."""
    return sum(span.result == "timeout" for trace in results.traces for span in trace.spans)


def test_over_an_instant_broker_the_queues_are_the_orchestrated_ones() -> None:
    runs = 5_000
    orchestrated = simulate(DETERMINISTIC, runs=runs, seed=4, trace_limit=runs)
    choreographed = simulate(
        replace(DETERMINISTIC, coordination="choreography"), runs=runs, seed=4, trace_limit=runs
    )
    # the case is not vacuous: waits, timeouts, retries, outage failures and late landings
    ledger = choreographed.service_stats()["ledger"]
    assert isinstance(ledger["mean_queue_wait_ms"], float) and ledger["mean_queue_wait_ms"] > 1
    results = [span.result for trace in choreographed.traces for span in trace.spans]
    assert results.count("timeout") > 1_000 and results.count("fail") > 0
    assert choreographed.anomalies["late_leak"] > 500
    assert choreographed.anomalies["duplicate_effect"] > 500
    # instance by instance, as orchestration
    for column in ("outcome", "anomaly_flags", "retries", "compensations", "start_ms"):
        assert np.array_equal(getattr(orchestrated, column), getattr(choreographed, column))
    np.testing.assert_allclose(choreographed.latency_ms, orchestrated.latency_ms, atol=1e-9)
    theirs = orchestrated.service_stats()
    for name, ours in choreographed.service_stats().items():
        assert ours == pytest.approx(theirs[name]), name
    for a, b in zip(choreographed.traces, orchestrated.traces):
        assert [rounded(*span) for span in a.spans] == [rounded(*span) for span in b.spans]
        late = [rounded(e.t_ms, e.event) for e in a.events if ".late_" in e.event]
        assert late == [rounded(e.t_ms, e.event) for e in b.events if ".late_" in e.event]


def test_an_instance_stays_open_while_its_attempt_queues() -> None:
    # reserve (1 ms), a 2 ms message, then charge at a single busy server, which nobody hears
    # from: an instance lasts exactly 3 ms, its wait and its service time
    saga = Saga(
        name="open",
        coordination="choreography",
        broker=Broker(latency=Constant(value_ms=2.0)),
        steps=(
            Step(name="reserve", latency=Constant(value_ms=1.0)),
            Step(name="charge", latency=Exponential(mean_ms=10.0)),
        ),
        services=(Service(name="charge", capacity=1),),
        arrivals=Arrivals(rate_per_s=70.0),
    )
    results = simulate(saga, runs=5_000, seed=6)
    charge = results.services["charge"]
    assert charge.wait_ms > 0 and charge.attempts == results.runs
    expected = 3.0 + (charge.wait_ms + charge.busy_ms) / charge.attempts
    assert results.latency_ms.mean() == pytest.approx(expected, rel=1e-9)
    assert results.latency_ms.min() >= 3.0
    free = simulate(uncapped(saga), runs=5_000, seed=6)
    assert free.services["charge"].wait_ms == 0.0
    assert results.latency_ms.mean() > free.latency_ms.mean() + 5  # 0.7 / 0.3 x 10 ms queued


@pytest.mark.statistical
def test_queue_waits_and_utilisation_follow_queueing_theory_in_both_forms() -> None:
    choreographed, orchestrated = run("choreography", True, 1), run("orchestration", True, 2)
    ours, theirs = (r.service_stats()["ledger"] for r in (choreographed, orchestrated))
    for stats_ in (ours, theirs):
        utilisation, wait = stats_["utilisation"], stats_["mean_queue_wait_ms"]
        assert isinstance(utilisation, float) and isinstance(wait, float)
        assert 0 < utilisation <= 1
        assert utilisation == pytest.approx(RHO, abs=0.02)
        assert wait == pytest.approx(PK_WAIT_MS, rel=0.15)
    # the same attempts run in both forms: the same load on the ledger
    assert ours["attempts"] == theirs["attempts"] == RUNS
    assert ours["utilisation"] == pytest.approx(theirs["utilisation"], abs=0.02)
    free = run("choreography", False, 1)
    assert free.service_stats()["ledger"]["mean_queue_wait_ms"] == 0.0
    assert choreographed.latency_ms.mean() > free.latency_ms.mean() + 5


@pytest.mark.statistical
def test_queueing_times_attempts_out_and_they_land_late_as_in_orchestration() -> None:
    free = run("choreography", False, 1)
    assert timeouts(free) == 0 and free.anomalies["late_leak"] == 0  # latency never does
    low, high = _interval(free.outcomes["compensated"], RUNS)
    assert low <= 0.05 <= high  # only charge's rejections
    choreographed, orchestrated = run("choreography", True, 1), run("orchestration", True, 2)
    assert timeouts(choreographed) > 100
    for results in (choreographed, orchestrated):
        assert results.anomalies["late_leak"] > 0.1 * RUNS  # timed-out charges landed late
        assert results.anomalies["hanging"] == results.anomalies["duplicate_effect"] == 0
    for count in (
        lambda r: r.outcomes["compensated"],
        lambda r: r.anomalies["late_leak"],
        lambda r: int(np.count_nonzero(r.anomaly_flags)),
    ):
        ours, theirs = (_interval(count(r), RUNS) for r in (choreographed, orchestrated))
        assert _overlap(ours, theirs), (ours, theirs)


def test_table_and_library_drivers_take_the_same_edges_under_capacity() -> None:
    saga = replace(
        DETERMINISTIC,
        name="queued_random",
        coordination="choreography",
        broker=Broker(latency=Exponential(mean_ms=1.0)),
        arrivals=Arrivals(rate_per_s=80.0),
    )
    charge = saga.steps[1]
    assert isinstance(charge, Step)
    random_charge = replace(
        charge,
        latency=Exponential(mean_ms=9.0),
        failure=0.1,
        retry=replace(charge.retry, attempts=3, jitter=True),
    )
    saga = replace(saga, steps=(saga.steps[0], random_charge))
    n = 800
    runs = []
    for library in (False, True):
        chunk = Chunk(saga, np.random.default_rng(9), n, 0, n)
        chunk.library = library
        runs.append(chunk.run(9))
    table, live = runs
    for results in runs:
        check_invariants(results)
    assert table.traces == live.traces
    assert table.service_stats() == live.service_stats()
    assert np.array_equal(table.anomaly_flags, live.anomaly_flags)
    # edges under queueing were taken: retries after timeouts and failures, late landings
    assert table.service_stats()["ledger"]["mean_queue_wait_ms"] > 1  # type: ignore[operator]
    assert timeouts(table) > 20 and table.retries.sum() > 50
    assert any(".late_" in e.event for trace in table.traces for e in trace.events)
