"""The three answers agree on random sagas: check (what can happen), analyze (how likely) and
simulate (what happens).

``test_sim`` already checks simulated outcomes against the explored state space and the closed
form, and ``test_analysis`` checks analyze against the closed form and the state space. Here the
public ``check`` report is the oracle for both others, on sagas of every shape the strategy makes
(and on the same sagas made safe), and simulated rates are held to 99.9 % Wilson intervals
around analyze's exact values, anomalies included wherever analyze gives them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sagasim.analysis import Analysis, analyze
from sagasim.exceptions import StateSpaceLimitError
from sagasim.machine import ANOMALIES, OUTCOMES
from sagasim.model import Broker, Constant, Exponential, Retry, Saga, Step
from sagasim.sim import Results, simulate
from sagasim.sim import run as sim
from sagasim.verify import check, explore, explore_choreography

from .conftest import check_invariants
from .strategies import make_safe, sagas

PERFECT = Broker()
SETTINGS = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def possible(counts: dict[str, int]) -> set[str]:
    return {name for name, n in counts.items() if n > 0}


@settings(SETTINGS, max_examples=100)
@given(sagas(), st.booleans())
def test_check_allows_everything_simulate_and_analyze_produce(saga: Saga, safe: bool) -> None:
    saga = make_safe(saga) if safe else saga
    report = check(saga)
    reachable = possible(report.end_states)
    results = simulate(saga, runs=400, seed=5)
    assert possible(results.outcomes) <= reachable
    assert possible(results.anomalies) <= possible(report.anomalies)
    result = analyze(saga, sensitivity=False)
    assert sum(result.outcomes.values()) == pytest.approx(1.0, abs=1e-9)
    assert {name for name, p in result.outcomes.items() if p > 0} == reachable
    for name, p in result.anomalies.items():
        if p is not None:
            assert (p > 0) == (name in possible(report.anomalies)), name
    if safe:  # every guarantee of a consistent design: check proves it, simulate agrees
        assert report.consistent and reachable <= {"committed", "compensated"}


def small_sagas() -> st.SearchStrategy[Saga]:
    return sagas(max_entries=3)


@pytest.mark.statistical
@settings(SETTINGS, max_examples=80)
@given(small_sagas())
def test_simulated_rates_lie_in_999_intervals_around_exact_values(saga: Saga) -> None:
    result = analyze(saga, sensitivity=False)
    if not result.exact:
        return  # a race whose order matters: analyze says its numbers are approximate (19 of 80)
    assert_around_exact_values(simulate(saga, runs=3_000, seed=12), result)


def assert_around_exact_values(results: Results, exact: Analysis) -> None:
    """Every end state, the compensation and every anomaly analyze gives a probability for lie
    in the 99.9 % Wilson interval of the simulated rate."""
    probabilities = {**exact.outcomes, "compensation": exact.compensation_probability}
    probabilities |= {name: p for name, p in exact.anomalies.items() if p is not None}
    for name, p in probabilities.items():
        rate = results.rate(name, confidence=0.999)
        assert rate.low <= p <= rate.high, (name, p, rate)


# --- the invariant checker of conftest.py is live -----------------------------------------------


COIN = Saga(name="coin", steps=(Step(name="a", reject=0.5),))


def test_every_simulation_goes_through_the_invariant_checker() -> None:
    assert getattr(sim.merge, "__wrapped__", None) is not None


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("latency_ms", -1.0, "negative"),
        ("outcome", len(OUTCOMES), None),
        ("anomaly_flags", 1 << len(ANOMALIES), "anomaly"),
        ("compensations", 1, "committed"),
    ],
)
def test_the_invariant_checker_catches_broken_results(
    column: str, value: float, message: str | None
) -> None:
    results = simulate(COIN, runs=50, seed=1)
    committed = int(np.flatnonzero(results.outcome == 0)[0])
    getattr(results, column)[committed] = value
    with pytest.raises(AssertionError, match=message):
        check_invariants(results)


def test_a_short_results_is_caught() -> None:
    results = simulate(COIN, runs=50, seed=1)
    fields = {name: getattr(results, name) for name in Results.__slots__}
    broken = Results(**{**fields, "runs": 51})
    with pytest.raises(AssertionError):
        check_invariants(broken)


# --- choreography: the same answers from the services' machines and a broker ------------------

BROKERS = st.builds(
    Broker,
    latency=st.sampled_from([Constant(value_ms=0.0), Exponential(mean_ms=3.0)]),
    loss=st.sampled_from([0.0, 0.0, 0.05]),
    duplicate=st.sampled_from([0.0, 0.0, 0.1]),
    reorder=st.sampled_from([0.0, 0.0, 0.2]),
    redelivery=st.sampled_from([Retry(), Retry(attempts=3, delay_ms=5.0)]),
)


def choreographed(saga: Saga, broker: Broker = PERFECT) -> Saga:
    return replace(saga, coordination="choreography", broker=broker)


@settings(SETTINGS, max_examples=60)
@given(small_sagas())
def test_a_perfect_broker_reaches_exactly_the_orchestrated_end_states(saga: Saga) -> None:
    try:
        ends = explore_choreography(choreographed(saga), max_states=8_000).ends
    except StateSpaceLimitError:
        assume(False)
    assert set(ends.values()) == set(explore(saga).ends.values())


@settings(SETTINGS, max_examples=60)
@given(small_sagas(), BROKERS)
def test_check_allows_everything_a_choreography_simulates(saga: Saga, broker: Broker) -> None:
    saga = choreographed(saga, broker)
    try:
        report = check(saga, max_states=30_000)
    except StateSpaceLimitError:
        assume(False)
    results = simulate(saga, runs=300, seed=8)
    assert possible(results.outcomes) <= possible(report.end_states)
    assert possible(results.anomalies) <= possible(report.anomalies)


@pytest.mark.statistical
@settings(SETTINGS, max_examples=40)
@given(small_sagas())
def test_choreographed_rates_over_a_perfect_broker_lie_around_exact_values(saga: Saga) -> None:
    result = analyze(saga, sensitivity=False)
    if not result.exact:
        return
    assert_around_exact_values(simulate(choreographed(saga), runs=3_000, seed=13), result)
