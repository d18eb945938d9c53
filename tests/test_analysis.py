"""analysis: exact probabilities against closed forms, supports against the checker, expected
latencies against hand derivations and a Monte Carlo, honesty about what is not exact."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagasim.analysis import analyze
from sagasim.exceptions import SagaSimError
from sagasim.model import (
    Action,
    Arrivals,
    Compensation,
    Constant,
    Exponential,
    Latency,
    Parallel,
    Retry,
    Saga,
    Step,
)
from sagasim.verify import explore

from .strategies import sagas

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES = ("committed", "compensated", "leaked", "stuck")
Z999 = 3.2905  # two-sided 99.9% normal quantile


# --- the closed form of a sequential saga ---------------------------------------------------


def p_late(latency: Latency, timeout_ms: float | None) -> float:
    """P(latency > timeout), worked out here for the two distributions the tests draw."""
    if timeout_ms is None:
        return 0.0
    if isinstance(latency, Constant):
        return 1.0 if latency.value_ms > timeout_ms else 0.0
    assert isinstance(latency, Exponential)
    return math.exp(-timeout_ms / latency.mean_ms)


def succeeds(action: Action) -> float:
    """P(the action eventually succeeds): s = a (1 - x^A) / (1 - x) over its attempts."""
    t = p_late(action.latency, action.timeout_ms)
    a = (1 - action.reject) * (1 - action.failure) * (1 - t)
    b = action.reject * (1 - t)
    x = 1 - a - b
    attempts = action.retry.attempts
    if a == 0:
        return 0.0
    if attempts is None:
        return a / (1 - x)
    if x == 0:
        return a
    return a * (1 - x**attempts) / (1 - x)


def closed_form(saga: Saga) -> tuple[dict[str, float], float]:
    """P(outcome) and P(compensation) of a sequential saga, step by step of the first failure."""
    steps = [e for e in saga.steps if isinstance(e, Step)]
    assert len(steps) == len(saga.steps)
    pivot = saga.pivot_index
    result = dict.fromkeys(OUTCOMES, 0.0)
    compensation = 0.0
    reach = 1.0  # P(every step so far succeeded)
    for k, step in enumerate(steps):
        first_failure = reach * (1 - succeeds(step))
        if pivot is None or k <= pivot:
            undo = [s.compensation for s in steps[:k] if s.compensation is not None]
            leak = any(s.effects and s.compensation is None for s in steps[:k])
            undone = math.prod(succeeds(c) for c in undo)
            result["leaked" if leak else "compensated"] += first_failure * undone
            result["stuck"] += first_failure * (1 - undone)
            compensation += first_failure if undo else 0.0
        else:
            result["stuck"] += first_failure
        reach *= succeeds(step)
    result["committed"] = reach
    return result, compensation


PROBABILITY = st.one_of(st.just(0.0), st.floats(0.0, 0.9))
LATENCIES = [Constant(value_ms=5.0), Constant(value_ms=20.0), Exponential(mean_ms=10.0)]


@st.composite
def action_fields(draw: st.DrawFn, name: str) -> dict[str, object]:
    latency = draw(st.sampled_from(LATENCIES))
    timeout = draw(st.sampled_from([None, 10.0, 30.0]))
    attempts = draw(st.sampled_from([1, 2, 3, None]))
    if attempts is None and p_late(latency, timeout) == 1.0:
        attempts = 3  # every attempt times out: unbounded would retry forever
    retry = Retry(
        attempts=attempts,
        delay_ms=draw(st.sampled_from([0.0, 5.0])),
        backoff=draw(st.sampled_from(["fixed", "exponential"])),
    )
    return {
        "name": name,
        "failure": draw(PROBABILITY),
        "reject": draw(PROBABILITY),
        "latency": latency,
        "timeout_ms": timeout,
        "retry": retry,
    }


@st.composite
def sequential_sagas(draw: st.DrawFn) -> Saga:
    steps = []
    for i in range(draw(st.integers(1, 5))):
        fields = draw(action_fields(f"s{i}"))
        shape = draw(st.sampled_from(["compensatable", "compensatable", "uncompensatable", "read"]))
        compensation = None
        if shape == "compensatable":
            compensation = Compensation(**draw(action_fields(f"undo_s{i}")))  # type: ignore[arg-type]
        steps.append(
            Step(**fields, effects=shape != "read", compensation=compensation)  # type: ignore[arg-type]
        )
    if draw(st.booleans()):
        at = draw(st.integers(0, len(steps) - 1))
        steps[at] = replace(steps[at], kind_declared="pivot", compensation=None)
    order = draw(st.sampled_from(["reverse", "parallel"]))
    return Saga(name="sequential", steps=tuple(steps), compensation_order=order)


@SETTINGS
@given(sequential_sagas())
def test_sequential_sagas_match_the_closed_form(saga: Saga) -> None:
    result = analyze(saga, sensitivity=False)
    expected, compensation = closed_form(saga)
    for outcome in OUTCOMES:
        assert result.outcomes[outcome] == pytest.approx(expected[outcome], abs=1e-9), outcome
    assert result.compensation_probability == pytest.approx(compensation, abs=1e-9)
    assert sum(result.outcomes.values()) == pytest.approx(1.0, abs=1e-12)
    assert result.exact  # parallel compensations race, but their order cannot matter


def pinned_saga() -> Saga:
    failure, attempts = [0.05, 0.10, 0.02, 0.20], [3, 2, 1, 2]
    comp_failure, comp_attempts = [0.10, 0.30, 0.05, 0.0], [2, 2, 3, 1]
    return Saga(
        name="pinned",
        steps=tuple(
            Step(
                name=f"s{i}",
                failure=failure[i],
                retry=Retry(attempts=attempts[i]),
                compensation=Compensation(
                    name=f"u{i}", failure=comp_failure[i], retry=Retry(attempts=comp_attempts[i])
                ),
            )
            for i in range(4)
        ),
    )


def test_the_pinned_four_step_saga() -> None:
    result = analyze(pinned_saga(), sensitivity=False)
    p, a = [0.05, 0.10, 0.02, 0.20], [3, 2, 1, 2]
    q, b = [0.10, 0.30, 0.05, 0.0], [2, 2, 3, 1]
    s = [1 - p[i] ** a[i] for i in range(4)]
    c = [1 - q[i] ** b[i] for i in range(4)]
    committed = math.prod(s)
    compensated = sum(math.prod(s[:k]) * (1 - s[k]) * math.prod(c[:k]) for k in range(4))
    stuck = sum(math.prod(s[:k]) * (1 - s[k]) * (1 - math.prod(c[:k])) for k in range(4))
    assert result.outcomes["committed"] == pytest.approx(committed, abs=1e-12)
    assert result.outcomes["compensated"] == pytest.approx(compensated, abs=1e-12)
    assert result.outcomes["stuck"] == pytest.approx(stuck, abs=1e-12)
    assert result.outcomes["leaked"] == 0.0
    assert f"{result.outcomes['committed']:.6f}" == "0.931276"
    assert f"{result.outcomes['compensated']:.6f}" == "0.062813"
    assert f"{result.outcomes['stuck']:.6f}" == "0.005912"


@SETTINGS
@given(sagas())
def test_outcomes_with_positive_probability_are_the_reachable_ones(saga: Saga) -> None:
    result = analyze(saga, sensitivity=False)
    possible = {k for k, p in result.outcomes.items() if p > 0}
    assert possible == explore(saga).outcomes_reachable()
    assert sum(result.outcomes.values()) == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= result.compensation_probability <= 1.0 + 1e-12


# --- expected latency ----------------------------------------------------------------------


def test_expected_latency_of_a_sequential_saga_with_retries() -> None:
    saga = Saga(
        name="timed",
        steps=(
            Step(
                name="a",
                latency=Constant(value_ms=10.0),
                failure=0.2,
                retry=Retry(attempts=3, delay_ms=5.0),
                compensation=Compensation(name="undo_a", latency=Constant(value_ms=3.0)),
            ),
            Step(name="b", latency=Constant(value_ms=20.0), reject=0.25),
        ),
    )
    result = analyze(saga, sensitivity=False)
    # a succeeds on attempt k after (k - 1) failures: 10 k + 5 (k - 1) ms; three failures: 40 ms.
    ok_at = {k: 0.8 * 0.2 ** (k - 1) for k in (1, 2, 3)}
    a_time = {k: 15 * k - 5 for k in (1, 2, 3)}
    committed = sum(p * 0.75 * (a_time[k] + 20) for k, p in ok_at.items())
    undone = sum(p * 0.25 * (a_time[k] + 20 + 3) for k, p in ok_at.items())
    never = 0.2**3 * 40
    p_committed = 0.992 * 0.75
    assert result.outcomes["committed"] == pytest.approx(p_committed, abs=1e-12)
    latency = result.expected_latency_ms
    assert latency["committed"] == pytest.approx(committed / p_committed, rel=1e-12)
    assert latency["compensated"] == pytest.approx((undone + never) / (1 - p_committed), rel=1e-12)
    assert latency["all"] == pytest.approx(committed + undone + never, rel=1e-12)
    assert latency["leaked"] is None and latency["stuck"] is None


def test_expected_latency_with_a_timeout_counts_the_timeout_and_the_backoff() -> None:
    step = Step(
        name="call",
        latency=Exponential(mean_ms=10.0),
        timeout_ms=20.0,
        retry=Retry(attempts=2, delay_ms=7.0),
        rejects_late=True,
    )
    result = analyze(Saga(name="t", steps=(step,)), sensitivity=False)
    late = math.exp(-2.0)  # P(L > 20 ms)
    in_time = (10.0 - math.exp(-2.0) * 30.0) / (1 - late)  # E[L | L <= 20 ms]
    committed = (1 - late) * in_time + late * (1 - late) * (20 + 7 + in_time)
    assert result.outcomes["committed"] == pytest.approx(1 - late**2, abs=1e-12)
    assert result.expected_latency_ms["committed"] == pytest.approx(
        committed / (1 - late**2), rel=1e-12
    )
    assert result.expected_latency_ms["compensated"] == pytest.approx(47.0, rel=1e-12)
    assert result.anomalies == dict.fromkeys(("duplicate_effect", "hanging", "late_leak"), 0.0)


def unbounded(failure: float, max_delay_ms: float | None) -> Saga:
    retry = Retry(attempts=None, backoff="exponential", delay_ms=1.0, max_delay_ms=max_delay_ms)
    step = Step(name="call", latency=Constant(value_ms=10.0), failure=failure, retry=retry)
    return Saga(name="backoff", steps=(step,))


def test_unbounded_exponential_backoff_beyond_the_tracked_attempts() -> None:
    # delays 1, 2, 4, ...: E[T] = 10 / 0.7 + sum of 0.3^n 2^(n - 1) = 10 / 0.7 + 0.3 / 0.4
    result = analyze(unbounded(0.3, None), sensitivity=False)
    assert result.expected_latency_ms["all"] == pytest.approx(10 / 0.7 + 0.75, rel=1e-9)
    # capped at 4 ms: 0.3 * 1 + 0.09 * 2 + 4 * 0.3^3 / 0.7
    capped = analyze(unbounded(0.3, 4.0), sensitivity=False)
    expected = 10 / 0.7 + 0.3 + 0.18 + 4 * 0.027 / 0.7
    assert capped.expected_latency_ms["all"] == pytest.approx(expected, rel=1e-9)


def test_an_infinite_expected_latency_is_reported_as_such() -> None:
    result = analyze(unbounded(0.9, None), sensitivity=False)  # 0.9 * 2 >= 1: diverges
    assert result.outcomes["committed"] == pytest.approx(1.0)
    assert result.expected_latency_ms["all"] == math.inf
    assert result.expected_latency_ms["committed"] == math.inf
    assert result.to_dict()["expected_latency_ms"]["all"] is None
    assert any("infinite" in note for note in result.notes)
    assert "infinite" in result.to_text()


def race_saga() -> Saga:
    return Saga(
        name="race",
        steps=(
            Step(
                name="a",
                latency=Exponential(mean_ms=5.0),
                reject=0.1,
                compensation=Compensation(name="ua", latency=Exponential(mean_ms=4.0)),
            ),
            Parallel(
                branches=(
                    (
                        Step(
                            name="b",
                            latency=Exponential(mean_ms=10.0),
                            failure=0.3,
                            reject=0.1,
                            retry=Retry(attempts=2),
                            compensation=Compensation(name="ub", latency=Exponential(mean_ms=6.0)),
                        ),
                    ),
                    (
                        Step(
                            name="c",
                            latency=Exponential(mean_ms=20.0),
                            reject=0.2,
                            compensation=Compensation(
                                name="uc",
                                latency=Exponential(mean_ms=8.0),
                                failure=0.2,
                                retry=Retry(attempts=2),
                            ),
                        ),
                    ),
                )
            ),
        ),
    )


@pytest.mark.statistical
def test_a_parallel_group_of_exponential_latencies_against_monte_carlo() -> None:
    result = analyze(race_saga(), sensitivity=False)
    assert result.exact and result.expected_latency_ms["all"] is not None
    n = 400_000
    rng = np.random.default_rng(12345)
    a_time, a_rejected = rng.exponential(5.0, n), rng.random(n) < 0.1
    # b: up to two attempts; each rejects with 0.1, else fails with 0.3
    b1, b2 = rng.exponential(10.0, n), rng.exponential(10.0, n)
    u1, u2 = rng.random(n), rng.random(n)
    f1, f2 = rng.random(n) < 0.3, rng.random(n) < 0.3
    retried = (u1 >= 0.1) & f1
    b_ok = ((u1 >= 0.1) & ~f1) | (retried & (u2 >= 0.1) & ~f2)
    b_time = b1 + retried * b2
    c_time, c_ok = rng.exponential(20.0, n), rng.random(n) >= 0.2
    group_end = a_time + np.maximum(b_time, c_time)  # in-flight work is awaited
    # the group's compensations run concurrently, then ua
    ub_time = np.where(b_ok, rng.exponential(6.0, n), 0.0)
    uc1, uc2 = rng.exponential(8.0, n), rng.exponential(8.0, n)
    uc_f1, uc_f2 = rng.random(n) < 0.2, rng.random(n) < 0.2
    uc_time = np.where(c_ok, uc1 + uc_f1 * uc2, 0.0)
    uc_stuck = c_ok & uc_f1 & uc_f2
    ua_time = rng.exponential(4.0, n)
    group_failed = ~a_rejected & ~(b_ok & c_ok)
    undo_end = group_end + np.maximum(ub_time, uc_time)
    outcome = {
        "committed": ~a_rejected & b_ok & c_ok,
        "compensated": a_rejected | (group_failed & ~uc_stuck),
        "stuck": group_failed & uc_stuck,
    }
    time = np.where(a_rejected, a_time, group_end)
    time = np.where(group_failed, undo_end + np.where(uc_stuck, 0.0, ua_time), time)
    for key, hits in outcome.items():
        p = result.outcomes[key]
        assert abs(hits.mean() - p) <= Z999 * math.sqrt(p * (1 - p) / n), key
        sample = time[hits]
        half_width = Z999 * sample.std() / math.sqrt(len(sample))
        assert abs(sample.mean() - result.expected_latency_ms[key]) <= half_width, key
    assert result.outcomes["leaked"] == 0.0
    p = result.compensation_probability
    assert abs(group_failed.mean() - p) <= Z999 * math.sqrt(p * (1 - p) / n)
    assert abs(time.mean() - result.expected_latency_ms["all"]) <= Z999 * time.std() / math.sqrt(n)


# --- compensation probability, honesty, errors --------------------------------------------


def test_compensation_probability_is_everything_but_commits_and_failures_with_nothing_to_undo() -> (
    None
):
    saga = Saga(
        name="shop",
        steps=(
            Step(name="validate", effects=False, reject=0.1),
            Step(name="reserve", failure=0.1, compensation=Compensation(name="release")),
            Step(name="charge", kind_declared="pivot", reject=0.2),
            Step(name="ship", kind_declared="retriable", failure=0.1, retry=Retry(attempts=2)),
        ),
    )
    result = analyze(saga, sensitivity=False)
    nothing_to_undo = 0.1 + 0.9 * 0.1  # validate rejects, or reserve fails
    after_pivot = 0.9 * 0.9 * 0.8 * 0.01  # ship fails twice: forward recovery, no compensation
    expected = 1 - result.outcomes["committed"] - nothing_to_undo - after_pivot
    assert result.compensation_probability == pytest.approx(expected, abs=1e-12)
    assert result.compensation_probability == pytest.approx(0.9 * 0.9 * 0.2, abs=1e-12)
    assert result.outcomes["stuck"] == pytest.approx(after_pivot, abs=1e-12)


def test_a_step_that_always_fails_without_bound_is_an_error() -> None:
    saga = Saga(
        name="loop", steps=(Step(name="hopeless", failure=1.0, retry=Retry(attempts=None)),)
    )
    with pytest.raises(SagaSimError, match=r"hopeless retries forever: no end state is reachable"):
        analyze(saga)


def test_anomalies_are_left_to_simulation_when_an_action_can_land_late() -> None:
    step = Step(name="call", latency=Exponential(mean_ms=10.0), timeout_ms=5.0)
    result = analyze(Saga(name="late", steps=(step,)), sensitivity=False)
    assert result.anomalies == dict.fromkeys(("duplicate_effect", "hanging", "late_leak"))
    assert any("depend on timing" in note for note in result.notes)


def test_load_is_left_to_simulation() -> None:
    saga = Saga(name="busy", steps=(Step(name="call"),), arrivals=Arrivals(rate_per_s=50.0))
    result = analyze(saga, sensitivity=False)
    assert result.outcomes["committed"] == 1.0
    assert any("arrivals are not modelled" in note for note in result.notes)


def test_a_race_whose_order_matters_is_reported_as_approximate() -> None:
    first = (
        Step(name="p", compensation=Compensation(name="undo_p"), latency=Constant(value_ms=5.0)),
        Step(name="q", latency=Constant(value_ms=5.0)),  # uncompensatable
    )
    second = (Step(name="r", reject=0.5, latency=Constant(value_ms=8.0)),)
    saga = Saga(name="order", steps=(Parallel(branches=(first, second)),))
    result = analyze(saga, sensitivity=False)
    assert not result.exact
    assert any("approximate" in n and "steps[0] (p, r)" in n for n in result.notes)
    assert result.expected_latency_ms["all"] is None
    assert result.outcomes["leaked"] > 0 and result.outcomes["compensated"] > 0
    assert result.to_dict()["exact"] is False


def test_a_race_whose_order_does_not_matter_is_exact_without_latency() -> None:
    branches = tuple(
        (Step(name=n, reject=r, compensation=Compensation(name=f"undo_{n}")),)
        for n, r in (("b", 0.2), ("c", 0.3))
    )
    result = analyze(Saga(name="calm", steps=(Parallel(branches=branches),)), sensitivity=False)
    assert result.exact
    assert result.outcomes["committed"] == pytest.approx(0.8 * 0.7, abs=1e-12)
    assert result.compensation_probability == pytest.approx(0.8 * 0.3 + 0.2 * 0.7, abs=1e-12)
    assert result.expected_latency_ms["all"] == 0.0  # every action takes no time


def test_to_dict_has_the_design_shape_and_is_json() -> None:
    result = analyze(pinned_saga())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["saga"] == "pinned"
    assert set(data["outcomes"]) == set(OUTCOMES)
    assert set(data["expected_latency_ms"]) == {"all", *OUTCOMES}
    assert data["outcomes"]["committed"] == float(f"{result.outcomes['committed']:.12g}")
    assert data["exact"] is True and data["notes"] == []
    assert data["states"] == result.states > 0 and data["transitions"] == result.transitions
    assert {"parameter", "d_compensation_probability", "d_stuck"} == set(data["sensitivity"][0])
    assert "committed" in result.to_text()


# --- sensitivity ------------------------------------------------------------------------------


def test_sensitivity_matches_derivatives_of_the_closed_form() -> None:
    saga = pinned_saga()
    steps = list(saga.steps)
    steps[2] = replace(steps[2], reject=0.05)
    saga = replace(saga, steps=tuple(steps))
    result = analyze(saga)
    by_name = {s.parameter: s for s in result.sensitivity}

    def closed(name: str, **change: object) -> tuple[float, float]:
        def alter(a: Action) -> Action:
            return replace(a, **change) if a.name == name else a

        altered = tuple(
            replace(alter(s), compensation=alter(s.compensation) if s.compensation else None)
            for s in saga.steps
            if isinstance(s, Step)
        )
        outcomes, compensation = closed_form(replace(saga, steps=altered))
        return compensation, outcomes["stuck"]

    h = 1e-5
    for name, attr, value in [
        ("s1", "failure", 0.1),
        ("s2", "reject", 0.05),
        ("u1", "failure", 0.3),
    ]:
        hi, lo = closed(name, **{attr: value + h}), closed(name, **{attr: value - h})
        row = by_name[f"{name}.{attr}"]
        assert row.d_compensation_probability == pytest.approx((hi[0] - lo[0]) / (2 * h), abs=1e-6)
        assert row.d_stuck == pytest.approx((hi[1] - lo[1]) / (2 * h), abs=1e-6)
    for name, attempts in (("s0", 3), ("u1", 2)):
        more = closed(name, retry=Retry(attempts=attempts + 1))
        now = closed(name)
        row = by_name[f"{name}.retry.attempts"]
        assert row.d_compensation_probability == pytest.approx(more[0] - now[0], abs=1e-12)
        assert row.d_stuck == pytest.approx(more[1] - now[1], abs=1e-12)
    # s0.reject is 0: one-sided, on a state space that has the reject edges it lacks
    hi, now = closed("s0", reject=1e-6), closed("s0")
    row = by_name["s0.reject"]
    assert row.d_compensation_probability == pytest.approx((hi[0] - now[0]) / 1e-6, abs=1e-6)
    assert row.d_stuck == pytest.approx((hi[1] - now[1]) / 1e-6, abs=1e-6)
    assert row.d_compensation_probability < 0  # rejecting early leaves less to compensate
    effects = [abs(s.d_compensation_probability) for s in result.sensitivity]
    assert effects == sorted(effects, reverse=True)


def test_sensitivity_to_attempts_of_a_racing_action_matches_a_new_analysis() -> None:
    saga = race_saga()
    result = analyze(saga)
    row = {s.parameter: s for s in result.sensitivity}["b.retry.attempts"]
    group = saga.steps[1]
    assert isinstance(group, Parallel)
    b = replace(group.branches[0][0], retry=Retry(attempts=3))
    longer = replace(saga, steps=(saga.steps[0], Parallel(branches=((b,), group.branches[1]))))
    more = analyze(longer, sensitivity=False)
    expected = more.compensation_probability - result.compensation_probability
    assert row.d_compensation_probability == pytest.approx(expected, abs=1e-12)
    assert row.d_stuck == pytest.approx(
        more.outcomes["stuck"] - result.outcomes["stuck"], abs=1e-12
    )
