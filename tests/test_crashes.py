"""Coordinator crashes: check places a crash at every log point and finds the duplicates and
leaks they cause with shortest traces; analyze gives their exact probabilities, held here to
closed forms derived by hand from docs/concurrency.md, and to check (same supports)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagasim.analysis import analyze, crash_effects
from sagasim.analysis.crashes import _probabilities
from sagasim.exceptions import SagaSimError
from sagasim.io import load
from sagasim.machine import compile_saga, core
from sagasim.model import (
    Compensation,
    Coordinator,
    Exponential,
    Map,
    Parallel,
    Resource,
    Retry,
    Saga,
    Step,
)
from sagasim.testing import replay
from sagasim.verify import check
from sagasim.verify.crashes import can_crash, crash_warnings, explore_crashes

from .strategies import sagas, sequential_sagas

MODELS = Path(__file__).parent.parent / "models"

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES = ("committed", "compensated", "leaked", "stuck")
Recovery = Literal["forward", "backward"]


def crashing(saga: Saga, c: float, recovery: Recovery, max_crashes: int = 1) -> Saga:
    return replace(
        saga, coordinator=Coordinator(crash=c, recovery=recovery, max_crashes=max_crashes)
    )


def one_step(f: float, attempts: int = 1, **fields: object) -> Saga:
    return Saga(
        name="one",
        steps=(Step(name="a", failure=f, retry=Retry(attempts=attempts), **fields),),  # type: ignore[arg-type]
    )


def reachable(saga: Saga) -> tuple[set[str], set[str]]:
    """check's reachable outcomes and anomalies."""
    space = check(saga).space
    assert space is not None
    return space.outcomes_reachable(), space.anomalies_reachable()


# --- one step, forward: closed forms ------------------------------------------------------


@pytest.mark.parametrize(("f", "c"), [(0.1, 0.01), (0.3, 0.2), (0.0, 0.5), (0.5, 1.0)])
def test_one_step_forward_duplicates_with_probability_c_times_ok_squared(
    f: float, c: float
) -> None:
    # A crash after a's start record (c); the call landed (1 - f); the re-run, with no crash
    # left, ends ok (1 - f): a second application.
    effects = crash_effects(crashing(one_step(f), c, "forward"))
    s = 1 - f
    assert effects.duplicate_effect == pytest.approx(c * s * s, abs=1e-12)
    # landed, and the re-run fails: the effect stays while the saga counts it failed
    assert effects.late_leak == pytest.approx(c * s * f, abs=1e-12)
    # a crash after the start record, or else after the outcome record
    assert effects.crash == pytest.approx(c + (1 - c) * c, abs=1e-12)
    # a re-run is a fresh attempt: the outcomes are those without crashes
    assert effects.outcomes is not None
    assert effects.outcomes["committed"] == pytest.approx(s, abs=1e-12)
    assert effects.outcomes["compensated"] == pytest.approx(f, abs=1e-12)
    assert effects.exact and effects.recovery == "forward"


def _duplicate(k: int, n: int, applied: int, f: float, c: float) -> float:
    """P(a duplicate) for one non-idempotent step with ``k`` counted attempts left, ``n``
    crashes left and its effect applied ``applied`` times, at the start of an attempt
    (docs/concurrency.md, forward). A crash after the start record (c): the call lands with
    1 - f, and the re-run is an uncounted attempt. Otherwise ok (1 - f) applies the effect
    (a duplicate if applied), fail (f) is followed by a crash after the outcome record (c)
    and then a retry while attempts are left."""
    s = 1 - f
    if applied >= 2:
        return 1.0
    if n == 0:
        return 1 - f**k if applied else 0.0
    crash = c * (
        s * _duplicate(k, n - 1, applied + 1, f, c) + f * _duplicate(k, n - 1, applied, f, c)
    )
    retry = 0.0
    if k > 1:
        retry = c * _duplicate(k - 1, n - 1, applied, f, c) + (1 - c) * _duplicate(
            k - 1, n, applied, f, c
        )
    return crash + (1 - c) * (s * applied + f * retry)


@pytest.mark.parametrize(("f", "c"), [(0.1, 0.01), (0.3, 0.2), (0.6, 0.45)])
def test_two_attempts_and_two_crashes_match_the_hand_derivation(f: float, c: float) -> None:
    s = 1 - f
    # D(k, n, a) as in _duplicate, worked out by hand from D(k, 0, 1) = 1 - f**k, D(k, 0, 0) = 0:
    d110 = c * s * s
    d111 = s * (1 + c * f)
    d201 = 1 - f * f
    d211 = s + c * f * s * (1 + f) + (1 - c) * f * s * (1 + c * f - c * c * f)
    d210 = c * s * d201 + c * (1 - c) ** 2 * f * s * s
    d120 = c * s * s * (1 + 2 * c * f)
    d220 = c * s * d211 + c * f * d210 + (1 - c) * f * (c * d110 + (1 - c) * d120)
    assert d111 == pytest.approx(_duplicate(1, 1, 1, f, c), abs=1e-15)
    assert d220 == pytest.approx(_duplicate(2, 2, 0, f, c), abs=1e-15)
    effects = crash_effects(crashing(one_step(f, attempts=2), c, "forward", max_crashes=2))
    assert effects.duplicate_effect == pytest.approx(d220, abs=1e-12)


@pytest.mark.parametrize(("attempts", "max_crashes"), [(1, 3), (3, 1), (3, 3), (2, 4)])
def test_more_attempts_and_crashes_follow_the_recursion(attempts: int, max_crashes: int) -> None:
    f, c = 0.35, 0.3
    saga = crashing(one_step(f, attempts=attempts), c, "forward", max_crashes=max_crashes)
    expected = _duplicate(attempts, max_crashes, 0, f, c)
    assert crash_effects(saga).duplicate_effect == pytest.approx(expected, abs=1e-12)


def test_an_idempotent_step_never_duplicates_and_its_landed_rerun_ends_ok() -> None:
    f, c = 0.3, 0.2
    saga = crashing(one_step(f, idempotent=True), c, "forward")
    effects = crash_effects(saga)
    assert effects.duplicate_effect == 0.0 and effects.late_leak == 0.0
    # landed (1 - f): the re-run is answered ok; lost (f): a fresh attempt
    assert effects.outcomes is not None
    assert effects.outcomes["committed"] == pytest.approx((1 - f) * (1 + c * f), abs=1e-12)
    _, anomalies = reachable(saga)
    assert "duplicate_effect" not in anomalies and "late_leak" not in anomalies
    assert check(saga).consistent
    assert not crash_warnings(saga)


def test_check_finds_the_crash_duplicate_with_the_shortest_trace() -> None:
    saga = crashing(one_step(0.1), 0.01, "forward")
    report = check(saga)
    traces = {v.outcome: v.trace for v in report.violations}
    assert traces["duplicate_effect"] == ("a.crash", "a.landed", "a.ok")
    assert traces["late_leak"] == ("a.crash", "a.landed", "a.fail")
    assert not report.consistent
    # the machine's own events of the trace replay on the library class
    assert (
        compile_saga(saga).states[replay(saga, traces["duplicate_effect"])].outcome == "committed"
    )
    (warning,) = [w for w in report.warnings if w.code == "crash-duplicate"]
    assert warning.message.startswith("a is re-run") and "idempotent: true" in warning.message
    assert "recovery: backward" in warning.message


def test_without_crashes_check_is_the_plain_explorer() -> None:
    saga = one_step(0.1)
    assert not can_crash(saga) and not can_crash(crashing(saga, 0.0, "forward"))
    plain, zero = check(saga), check(crashing(saga, 0.0, "forward"))
    assert plain.to_dict() == zero.to_dict()
    assert plain.consistent and "crashes" not in analyze(saga).to_dict()


def test_the_lint_names_a_map_body_step_once_and_skips_what_cannot_duplicate() -> None:
    body = (Step(name="box"), Step(name="label", idempotent=True), Step(name="look", effects=False))
    saga = crashing(
        Saga(name="bulk", steps=(Map(name="pack", items=2, concurrency=1, steps=body),)),
        0.1,
        "forward",
    )
    assert [w.message.split(" ", 1)[0] for w in crash_warnings(saga)] == ["box"]
    traces = {v.outcome: v.trace for v in check(saga).violations}
    trace = traces["duplicate_effect"]
    runs = {trace[i : i + 3] for i in range(len(trace) - 2)}
    assert runs & {(f"box_{k}.crash", f"box_{k}.landed", f"box_{k}.ok") for k in (1, 2)}


# --- backward -----------------------------------------------------------------------------


def _reserve_then_pivot(fa: float, r: float) -> Saga:
    return Saga(
        name="pay",
        steps=(
            Step(name="a", failure=fa, compensation=Compensation(name="undo_a")),
            Step(name="b", kind_declared="pivot", reject=r),
        ),
    )


@pytest.mark.parametrize(("fa", "r", "c"), [(0.1, 0.2, 0.05), (0.0, 0.5, 0.3), (0.4, 0.0, 0.9)])
def test_backward_compensates_the_step_in_doubt(fa: float, r: float, c: float) -> None:
    saga = crashing(_reserve_then_pivot(fa, r), c, "backward")
    effects = crash_effects(saga)
    sa = 1 - fa
    # a's start crash (c) compensates a itself; a ok, then a crash after its outcome record
    # (c) spends the budget, or else b's start crash (c) compensates a; b commits with 1 - r
    committed = (1 - c) * sa * (1 - r) * (c + (1 - c) ** 2)
    assert effects.outcomes is not None
    assert effects.outcomes["committed"] == pytest.approx(committed, abs=1e-12)
    assert effects.outcomes["compensated"] == pytest.approx(1 - committed, abs=1e-12)
    entered = c + (1 - c) * sa * (c * r + (1 - c) * (c + (1 - c) * r))
    assert effects.compensation_probability == pytest.approx(entered, abs=1e-12)
    # the pivot in doubt has no compensation: if it landed, its effect stays
    assert effects.late_leak == pytest.approx((1 - c) * sa * (1 - c) * c * (1 - r), abs=1e-12)
    assert effects.duplicate_effect == 0.0
    result = analyze(saga)
    assert result.compensation_probability == effects.compensation_probability
    assert result.outcomes == effects.outcomes
    plain = analyze(_reserve_then_pivot(fa, r))
    assert result.compensation_probability > plain.compensation_probability


def test_backward_check_traces_the_compensation_of_the_step_in_doubt() -> None:
    saga = crashing(_reserve_then_pivot(0.1, 0.2), 0.05, "backward")
    space = explore_crashes(saga)
    assert space.trace_to(space.first_end["empty_compensation"]) == [
        "a.crash",
        "a.lost",
        "undo_a.ok",
    ]
    assert space.trace_to(space.first_end["late_leak"]) == [
        "a.ok",
        "b.crash",
        "b.landed",
        "undo_a.ok",
    ]
    assert "duplicate_effect" not in space.first_end
    # backward recovery before the pivot re-runs nothing: no crash-duplicate warning
    assert not crash_warnings(saga)


def test_backward_after_the_pivot_reruns_forward() -> None:
    c, ra, fb = 0.1, 0.2, 0.3
    saga = crashing(
        Saga(
            name="ship",
            steps=(
                Step(name="a", kind_declared="pivot", reject=ra),
                Step(name="b", failure=fb, retry=Retry(attempts=None)),
            ),
        ),
        c,
        "backward",
    )
    report = check(saga)
    traces = {v.outcome: v.trace for v in report.violations}
    assert traces["duplicate_effect"] == ("a.ok", "b.crash", "b.landed", "b.ok")
    (warning,) = [w for w in report.warnings if w.code == "crash-duplicate"]
    assert "b is re-run" in warning.message and "does not help" in warning.message
    # a ok with no crash around it ((1 - c) (1 - ra) (1 - c)); then at each attempt of b, X:
    # a start crash with the call landed (c (1 - fb)) is a duplicate (b retries without
    # bound, so its re-run ends ok at last); else a failure (fb) with no crash after it loops,
    # X = c (1 - fb) + (1 - c) fb (1 - c) X.
    effects = crash_effects(saga)
    x = c * (1 - fb) / (1 - (1 - c) ** 2 * fb)
    expected = (1 - c) * (1 - ra) * (1 - c) * x
    assert effects.duplicate_effect == pytest.approx(expected, abs=1e-12)


# --- check and analyze agree ----------------------------------------------------------------


def _rows_sum_to_one(saga: Saga) -> None:
    """Out of every state that is not an end state, the chain's edge probabilities add to 1."""
    unrolled = core(saga)
    assert unrolled.coordinator is not None
    space = explore_crashes(unrolled, after_outcome=True)
    p = _probabilities(unrolled, space, unrolled.coordinator.crash)
    sums = np.zeros(len(space.nodes))
    np.add.at(sums, [e[0] for e in space.edges], p)
    inner = [i for i in range(len(space.nodes)) if i not in space.ends]
    assert np.allclose(sums[inner], 1.0, atol=1e-12)


def _supports(saga: Saga) -> tuple[set[str], set[str], set[str], set[str]]:
    _rows_sum_to_one(saga)
    effects = crash_effects(saga)
    assert effects.exact and effects.outcomes is not None
    outcomes = {k for k, p in effects.outcomes.items() if p > 0}
    anomalies = {k for k, p in effects.anomalies.items() if p}
    found_outcomes, found_anomalies = reachable(saga)
    return outcomes, anomalies, found_outcomes, found_anomalies - {"empty_compensation"}


@pytest.mark.parametrize("recovery", ["forward", "backward"])
@pytest.mark.parametrize(
    "saga",
    [
        one_step(0.2, attempts=2),
        _reserve_then_pivot(0.1, 0.3),
        Saga(
            name="three",
            steps=(
                Step(name="a", compensation=Compensation(name="undo_a", failure=0.2)),
                Step(name="b", failure=0.1, idempotent=True, compensation=Compensation(name="ub")),
                Step(name="c", kind_declared="pivot", reject=0.1),
                Step(name="d", failure=0.5, retry=Retry(attempts=None)),
            ),
        ),
    ],
    ids=["one", "pay", "three"],
)
def test_check_reaches_exactly_what_analyze_gives_a_probability(
    saga: Saga, recovery: Recovery
) -> None:
    outcomes, anomalies, found_outcomes, found_anomalies = _supports(
        crashing(saga, 0.1, recovery, 2)
    )
    assert outcomes == found_outcomes
    assert anomalies == found_anomalies


@st.composite
def crashing_sagas(draw: st.DrawFn) -> Saga:
    saga = draw(sequential_sagas(timeouts=False, max_entries=3))
    steps = tuple(
        replace(step, idempotent=draw(st.booleans())) if isinstance(step, Step) else step
        for step in saga.steps
    )
    return replace(
        saga,
        steps=steps,
        compensation_order="reverse",
        coordinator=Coordinator(
            crash=draw(st.sampled_from([0.05, 0.3])),
            recovery=draw(st.sampled_from(["forward", "backward"])),
            max_crashes=draw(st.integers(1, 2)),
        ),
    )


@SETTINGS
@given(crashing_sagas())
def test_random_straight_line_sagas_check_and_analyze_have_the_same_supports(saga: Saga) -> None:
    outcomes, anomalies, found_outcomes, found_anomalies = _supports(saga)
    assert anomalies == found_anomalies, saga
    assert outcomes == found_outcomes, saga
    effects = crash_effects(saga)
    assert effects.outcomes is not None
    assert sum(effects.outcomes.values()) == pytest.approx(1.0, abs=1e-9)


@SETTINGS
@given(crashing_sagas())
def test_forward_reruns_of_non_idempotent_calls_leave_the_outcomes_as_without_crashes(
    saga: Saga,
) -> None:
    def plain(step: object) -> object:
        if not isinstance(step, Step):
            return step
        undo = step.compensation and replace(step.compensation, idempotent=False)
        return replace(step, idempotent=False, compensation=undo)

    coordinator = saga.coordinator
    assert coordinator is not None
    saga = replace(
        saga,
        steps=tuple(map(plain, saga.steps)),  # type: ignore[arg-type]
        coordinator=replace(coordinator, recovery="forward"),
    )
    effects = crash_effects(saga)
    assert effects.outcomes is not None
    without = analyze(replace(saga, coordinator=None), sensitivity=False)
    for outcome in OUTCOMES:
        assert effects.outcomes[outcome] == pytest.approx(without.outcomes[outcome], abs=1e-12)


@pytest.mark.parametrize("recovery", ["forward", "backward"])
@pytest.mark.parametrize(
    "model",
    [
        "money_transfer",
        "travel_booking",
        "graph/hotel",
        "graph/order_with_stock_check",
        "graph/shipment_polling",
        "graph/trip_with_hotel",
    ],
)
def test_models_with_choices_gotos_and_sub_sagas_agree_too(model: str, recovery: Recovery) -> None:
    saga = crashing(load(MODELS / f"{model}.yaml"), 0.05, recovery, 2)
    outcomes, anomalies, found_outcomes, found_anomalies = _supports(saga)
    assert (outcomes, anomalies) == (found_outcomes, found_anomalies)


@SETTINGS
@given(sagas(max_entries=3), st.sampled_from(["forward", "backward"]))
def test_crashes_only_add_to_what_check_reaches(saga: Saga, recovery: Recovery) -> None:
    """Parallel groups and late landings included: every end state (outcome and anomalies)
    the saga reaches without crashes it reaches with them."""
    space = check(crashing(saga, 0.1, recovery)).space
    plain = check(saga).space
    assert space is not None and plain is not None
    assert set(plain.ends.values()) <= set(space.ends.values())


# --- what analyze reports -----------------------------------------------------------------


def test_analyze_reports_crashes_and_no_latency() -> None:
    saga = crashing(one_step(0.1), 0.01, "forward")
    result = analyze(saga)
    shape = result.to_dict()
    assert shape["crashes"] == {
        "recovery": "forward",
        "duplicate_effect": pytest.approx(0.01 * 0.81, abs=1e-12),
        "late_leak": pytest.approx(0.01 * 0.9 * 0.1, abs=1e-12),
        "crash": pytest.approx(0.0199, abs=1e-12),
    }
    assert set(shape["expected_latency_ms"].values()) == {None}
    assert any("see simulate" in note and "latency" in note for note in result.notes)
    assert shape["anomalies"]["duplicate_effect"] == shape["crashes"]["duplicate_effect"]
    assert result.sensitivity  # from the chain without crashes, and said so
    assert "the sensitivity ranking leaves coordinator crashes out" in result.notes
    assert not analyze(saga, sensitivity=False).sensitivity
    json.dumps(shape)  # plain JSON
    text = result.to_text()
    assert "crash, forward recovery" in text and "0.0199" in text


def test_racing_calls_give_no_crash_numbers() -> None:
    group = Parallel(branches=((Step(name="a", failure=0.1),), (Step(name="b", reject=0.2),)))
    saga = crashing(Saga(name="both", steps=(group,)), 0.1, "forward")
    effects = crash_effects(saga)
    assert not effects.exact and effects.crash is None and effects.duplicate_effect is None
    assert "parallel group" in effects.notes[0]
    result = analyze(saga)
    assert not result.exact
    assert result.to_dict()["crashes"]["duplicate_effect"] is None
    assert result.outcomes == analyze(replace(saga, coordinator=None)).outcomes
    assert any("leave coordinator crashes out" in note for note in result.notes)
    # check still explores it, crashes in either branch
    report = check(saga)
    assert "duplicate_effect" in {v.outcome for v in report.violations}


def test_late_landings_leave_the_crash_anomalies_to_simulate() -> None:
    step = Step(
        name="a", latency=Exponential(mean_ms=10.0), timeout_ms=15.0, retry=Retry(attempts=2)
    )
    saga = crashing(Saga(name="late", steps=(step,)), 0.1, "forward")
    effects = crash_effects(saga)
    assert effects.exact and effects.duplicate_effect is None
    assert effects.outcomes is not None and effects.crash is not None
    assert any("may land after a timeout" in note for note in effects.notes)


def test_resources_get_the_concurrency_note() -> None:
    note = "concurrency anomalies (lost updates, dirty reads, stale compensations)"
    shared = Saga(
        name="seats",
        resources=(Resource(name="seats", initial=1),),
        steps=(Step(name="count", effects=False, reads=("seats",)),),
    )
    assert any(n.startswith(note) for n in analyze(shared).notes)
    assert not any(
        n.startswith(note)
        for n in analyze(
            replace(shared, resources=(), steps=(Step(name="count", effects=False),))
        ).notes
    )


def test_crash_effects_refuses_a_coordinator_that_cannot_crash() -> None:
    with pytest.raises(SagaSimError, match="cannot crash"):
        crash_effects(one_step(0.1))
