"""check: consistent designs are proven consistent; each broken guarantee is caught with a
shortest trace that replays on the real python-statemachine class."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from sagasim.model import Compensation, Exponential, Retry, Saga, Step
from sagasim.testing import events_of, replay
from sagasim.verify import check, lint

from .strategies import make_safe, sagas

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_replays(saga: Saga, report_outcome: str, trace: tuple[str, ...]) -> None:
    """The trace ends, on the library's own machine, in an end state of the reported kind."""
    from sagasim.machine import compile_saga

    state = replay(saga, trace)
    outcome = compile_saga(saga).states[state].outcome
    if report_outcome in ("leaked", "stuck", "committed", "compensated"):
        assert outcome == report_outcome
    else:
        assert outcome is not None  # an anomaly is reported on an end state


@SETTINGS
@given(sagas())
def test_a_saga_with_every_guarantee_is_consistent(saga: Saga) -> None:
    safe = make_safe(saga)
    report = check(safe)
    assert report.consistent, report.to_text()
    assert report.end_states["leaked"] == report.end_states["stuck"] == 0
    assert report.end_states["committed"] == 1


def _prepend(saga: Saga, *new: Step) -> Saga:
    return replace(saga, steps=(*new, *saga.steps))


@SETTINGS
@given(sagas())
def test_an_uncompensated_effect_before_a_failure_leaks(saga: Saga) -> None:
    broken = _prepend(
        make_safe(saga), Step(name="notify"), Step(name="gate", effects=False, reject=0.2)
    )
    report = check(broken)
    kinds = {v.outcome: v.trace for v in report.violations}
    assert "leaked" in kinds
    assert kinds["leaked"] == ("notify.ok", "gate.reject")
    _assert_replays(broken, "leaked", kinds["leaked"])
    assert "uncompensated-effect" in {w.code for w in report.warnings}


@SETTINGS
@given(sagas())
def test_a_fallible_compensation_with_bounded_attempts_gets_stuck(saga: Saga) -> None:
    fragile = Compensation(name="undo_hold", failure=0.3, retry=Retry(attempts=2))
    broken = _prepend(
        make_safe(saga),
        Step(name="hold", compensation=fragile),
        Step(name="gate", effects=False, reject=0.2),
    )
    report = check(broken)
    kinds = {v.outcome: v.trace for v in report.violations}
    assert kinds["stuck"] == ("hold.ok", "gate.reject", "undo_hold.fail", "undo_hold.fail")
    _assert_replays(broken, "stuck", kinds["stuck"])


@SETTINGS
@given(sagas(parallel=False))
def test_a_bounded_step_after_the_pivot_gets_stuck(saga: Saga) -> None:
    safe = make_safe(replace(saga, steps=tuple(s for s in saga.steps)))
    pivot = Step(name="commit", kind_declared="pivot")
    after = Step(name="ship", failure=0.2, retry=Retry(attempts=3))
    plain = tuple(
        replace(s, kind_declared=None) if isinstance(s, Step) and s.kind == "pivot" else s
        for s in safe.steps
    )
    broken = replace(make_safe(replace(safe, steps=plain)), steps=(*plain, pivot, after))
    broken = make_safe(broken)
    broken = replace(broken, steps=(*broken.steps[:-1], after))
    report = check(broken)
    kinds = {v.outcome: v.trace for v in report.violations}
    assert kinds["stuck"][-3:] == ("ship.fail", "ship.fail", "ship.fail")
    _assert_replays(broken, "stuck", kinds["stuck"])
    assert "fragile-forward-step" in {w.code for w in report.warnings}


@SETTINGS
@given(sagas(parallel=False))
def test_an_ambiguous_timeout_duplicates_and_hangs(saga: Saga) -> None:
    step = Step(
        name="charge",
        latency=Exponential(mean_ms=10.0),
        timeout_ms=15.0,
        retry=Retry(attempts=2),
        compensation=Compensation(name="refund"),
    )
    broken = _prepend(make_safe(saga), step, Step(name="gate", effects=False, reject=0.2))
    report = check(broken)
    kinds = {v.outcome: v.trace for v in report.violations}
    # a duplicate needs a timed-out attempt and a second landing of the same step
    seen = events_of(kinds["duplicate_effect"], "charge")
    assert seen[0] == "timeout" and seen.count("ok") + seen.count("late_ok") == 2
    assert "hanging" in kinds and "late_leak" in kinds
    for outcome, trace in kinds.items():
        _assert_replays(broken, outcome, trace)
    fixed = _prepend(
        make_safe(saga),
        replace(step, idempotent=True, rejects_late=True),
        Step(name="gate", effects=False, reject=0.2),
    )
    assert check(fixed).consistent


def test_idempotent_but_late_work_accepted_still_hangs() -> None:
    step = Step(
        name="charge",
        latency=Exponential(mean_ms=10.0),
        timeout_ms=15.0,
        idempotent=True,
        compensation=Compensation(name="refund"),
    )
    saga = Saga(name="t", steps=(step, Step(name="gate", effects=False, reject=0.5)))
    report = check(saga)
    found = {v.outcome for v in report.violations}
    assert "duplicate_effect" not in found
    assert found == {"late_leak"}  # the only attempt timed out, so the step failed; it lands later


def test_fail_on_selects_the_violations() -> None:
    saga = Saga(name="t", steps=(Step(name="a"), Step(name="b", reject=0.5)))
    assert not check(saga).consistent
    assert check(saga, fail_on={"stuck"}).consistent
    with pytest.raises(ValueError, match="unknown outcome 'lost'"):
        check(saga, fail_on={"lost"})


def test_lint_codes_on_one_saga() -> None:
    saga = Saga(
        name="t",
        steps=(
            Step(name="look", effects=False, compensation=Compensation(name="unlook")),
            Step(name="pay", kind_declared="pivot"),
            Step(name="late", compensation=Compensation(name="unlate"), reject=0.1),
            Step(name="loop", failure=1.0, retry=Retry(attempts=None)),
        ),
    )
    codes = [w.code for w in lint(saga)]
    assert codes == [
        "read-only-compensation",
        "compensation-after-pivot",
        "fragile-forward-step",
        "retries-forever",
    ]
