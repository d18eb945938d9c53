"""Instances run ahead of the clock (:attr:`sagasim.sim.orchestration.Chunk.coalesce`) held to
the same engine run on the clock, every attempt on a SimPy wake-up of its own.

Independent instances give the same numbers either way, to the last bit, on every shipped model
and on random sagas. Under arrivals the instances draw their random numbers in another order,
so the statistics are compared within 99.9 % intervals (as the fast path is held to SimPy); and
where no random number matters (constant latencies, no failures), the queues and their waits
are the same instance by instance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given

from sagasim.io import load
from sagasim.model import (
    Arrivals,
    Compensation,
    Constant,
    Exponential,
    Parallel,
    Saga,
    Service,
    Step,
)
from sagasim.sim import Results, shared, simulate
from sagasim.sim.orchestration import Chunk
from sagasim.sim.results import COLUMNS
from tests.graph_strategies import graph_sagas
from tests.strategies import sagas
from tests.test_fast_path import MODELS, RANDOM, _stem, disagreements, ends


def on_both(saga: Saga, runs: int, seed: int, monkeypatch: pytest.MonkeyPatch) -> list[Results]:
    """``saga`` simulated by SimPy ahead of the clock, then on it (same seed)."""
    runs_of = []
    for coalesce in (True, False):
        with monkeypatch.context() as m:
            m.setattr(Chunk, "coalesce", coalesce)
            runs_of.append(simulate(saga, runs=runs, seed=seed, engine="simpy"))
    return runs_of


def assert_same_numbers(ahead: Results, clocked: Results) -> None:
    for column in COLUMNS:
        a, b = getattr(ahead, column), getattr(clocked, column)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), column
    assert ahead.service_stats() == clocked.service_stats()


def on_base_chunk(saga: Saga) -> bool:
    return saga.coordination == "orchestration" and not shared.needed(saga)


@pytest.mark.parametrize("path", MODELS, ids=_stem)
def test_independent_instances_give_the_same_numbers_ahead_of_the_clock(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saga = load(path)
    if not on_base_chunk(saga) or saga.arrivals is not None:
        pytest.skip("not independent instances on the orchestration chunk")
    assert_same_numbers(*on_both(saga, 2_000, 5, monkeypatch))


@RANDOM
@given(saga=sagas())
def test_random_independent_sagas_give_the_same_numbers_ahead_of_the_clock(saga: Saga) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same_numbers(*on_both(saga, 500, 7, monkeypatch))


def stable(saga: Saga) -> bool:
    """No action retries without bound after a timeout: at a capped service each timed-out
    call still waits for its server, so such retries can pile up without end (a retry storm,
    which the engine reports after a million attempts, holding every abandoned call)."""
    return ends(saga) and not any(
        a.retry.unbounded and a.timeout_ms is not None for a in saga.actions()
    )


def loaded(saga: Saga, rate: float = 20.0, capacity: int = 2) -> Saga:
    """``saga`` under Poisson arrivals, every one of its services capped at ``capacity``."""
    names = sorted({saga.service_of(a) for a in saga.actions()})
    services = tuple(Service(name=name, capacity=capacity) for name in names)
    return replace(saga, arrivals=Arrivals(rate_per_s=rate), services=services)


def test_without_randomness_every_instance_queues_and_ends_as_on_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Constant latencies, nothing fails: only the arrival times are random, and they are
    drawn first, so each instance must wait and end exactly as on the clock. The payment
    service takes one call at a time, so queues build up, and a charge that waits too long
    times out and lands late (the instance keeps to the clock until it has landed)."""
    saga = Saga(
        name="queues",
        steps=(
            Step(
                name="reserve",
                latency=Constant(value_ms=20),
                compensation=Compensation(name="release", latency=Constant(value_ms=5)),
            ),
            Parallel(
                branches=(
                    (Step(name="score", service="risk", latency=Constant(value_ms=15)),),
                    (Step(name="hold", service="payments", latency=Constant(value_ms=30)),),
                )
            ),
            Step(
                name="charge",
                service="payments",
                kind_declared="pivot",
                latency=Constant(value_ms=40),
                timeout_ms=60,
            ),
        ),
        services=(Service(name="payments", capacity=1),),
        arrivals=Arrivals(rate_per_s=12.0),
    )
    ahead, clocked = on_both(saga, 3_000, 3, monkeypatch)
    assert ahead.outcomes == clocked.outcomes
    # some time out in the queue; their charge lands late, after the reservation is released
    assert 0 < ahead.outcomes["leaked"] < ahead.runs
    np.testing.assert_allclose(ahead.latency_ms, clocked.latency_ms, rtol=1e-12, atol=1e-9)
    waits = (ahead.service_stats()["payments"], clocked.service_stats()["payments"])
    assert waits[0]["mean_queue_wait_ms"] > 1.0
    assert waits[0]["mean_queue_wait_ms"] == pytest.approx(waits[1]["mean_queue_wait_ms"])


@pytest.mark.statistical
def test_the_loaded_model_agrees_with_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    saga = load(Path(__file__).parent.parent / "models" / "order_fulfillment_under_load.yaml")
    ahead, clocked = on_both(saga, 20_000, 13, monkeypatch)
    assert disagreements(ahead, clocked) == []
    assert ahead.outcomes != clocked.outcomes or not np.array_equal(
        ahead.latency_ms, clocked.latency_ms
    )  # the random numbers are drawn in another order: a different sample, not a copy


@pytest.mark.statistical
@RANDOM
@given(saga=sagas())
def test_random_loaded_sagas_agree_with_the_clock(saga: Saga) -> None:
    assume(stable(saga))
    saga = loaded(saga)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert disagreements(*on_both(saga, 3_000, 17, monkeypatch)) == []


@pytest.mark.statistical
@RANDOM
@given(saga=graph_sagas())
def test_random_loaded_graph_sagas_agree_with_the_clock(saga: Saga) -> None:
    assume(stable(saga))
    saga = loaded(saga, rate=30.0, capacity=1)
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert disagreements(*on_both(saga, 3_000, 19, monkeypatch)) == []


def test_exponential_latencies_keep_the_queue_first_come_first_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One server, instances running ahead to it: each waits at most as long as the work
    of those who asked before it, so the waits agree with the clock's in the mean (a queue
    served out of order would show longer waits for some and a larger spread)."""
    saga = Saga(
        name="fifo",
        steps=(
            Step(name="prepare", latency=Exponential(mean_ms=50)),
            Step(name="serve", service="desk", latency=Exponential(mean_ms=40)),
        ),
        services=(Service(name="desk", capacity=1),),
        arrivals=Arrivals(rate_per_s=12.5),  # still Poisson after prepare (no queue there)
    )
    ahead, clocked = on_both(saga, 20_000, 23, monkeypatch)
    assert disagreements(ahead, clocked) == []
    rho = 12.5 / 25  # M/M/1: mean wait in the queue = rho / (mu - lambda)
    expected = rho / (1 / 40 - 12.5 / 1000)
    for r in (ahead, clocked):
        assert r.service_stats()["desk"]["mean_queue_wait_ms"] == pytest.approx(expected, rel=0.1)
