"""``sagasim check``: prove that only consistent end states are reachable, or show the shortest
trace to each that is not, and point out design defects.

Examples
--------
>>> from sagasim.model import Compensation, Retry, Saga, Step
>>> saga = Saga(name="s", steps=(
...     Step(name="a", compensation=Compensation(name="undo_a", failure=0.1,
...                                              retry=Retry(attempts=2))),
...     Step(name="b", kind_declared="pivot", reject=0.5),
... ))
>>> report = check(saga)
>>> report.consistent
False
>>> report.violations[0]
Violation(outcome='stuck', trace=('a.ok', 'b.reject', 'undo_a.fail', 'undo_a.fail'))
>>> [w.code for w in report.warnings]
['fragile-compensation']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..machine.orchestration import OUTCOMES
from ..model.saga import Saga, Step
from .choreography import ChoreographySpace, explore_choreography
from .statespace import DEFAULT_MAX_STATES, StateSpace, explore

#: What ``--fail-on`` may name, and what it names by default.
VIOLATION_KINDS = ("leaked", "stuck", "duplicate_effect", "hanging", "late_leak")
DEFAULT_FAIL_ON = frozenset(VIOLATION_KINDS)


@dataclass(frozen=True, slots=True)
class Violation:
    """An inconsistent end state that can be reached, and the shortest way there."""

    outcome: str
    trace: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Warning:
    """A design defect found without exploring: a code, and one sentence with the fix."""

    code: str
    message: str


@dataclass(slots=True)
class CheckReport:
    """What ``check`` found: counts, violations with shortest traces, and warnings."""

    saga: str
    consistent: bool
    states: int
    transitions: int
    end_states: dict[str, int]
    violations: list[Violation]
    warnings: list[Warning]
    anomalies: dict[str, int] = field(default_factory=dict)
    space: StateSpace | ChoreographySpace | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN.md (``anomalies`` counts end states with each anomaly)."""
        return {
            "saga": self.saga,
            "consistent": self.consistent,
            "states": self.states,
            "transitions": self.transitions,
            "end_states": dict(self.end_states),
            "anomalies": dict(self.anomalies),
            "violations": [{"outcome": v.outcome, "trace": list(v.trace)} for v in self.violations],
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
        }

    def to_text(self) -> str:
        """The human report."""
        verdict = "consistent" if self.consistent else "NOT consistent"
        lines = [
            f"{self.saga}: {verdict}",
            f"  {self.states:,} states, {self.transitions:,} transitions",
            "  end states: "
            + ", ".join(f"{name} {count:,}" for name, count in self.end_states.items()),
        ]
        found = {k: n for k, n in self.anomalies.items() if n}
        if found:
            lines.append(
                "  anomalies: " + ", ".join(f"{k} in {n:,} end states" for k, n in found.items())
            )
        if self.violations:
            lines.append("  violations (shortest trace to each):")
            for v in self.violations:
                lines.append(f"    {v.outcome} after {len(v.trace)} events:")
                lines.append("      " + " → ".join(v.trace))
        if self.warnings:
            lines.append("  warnings:")
            lines.extend(f"    [{w.code}] {w.message}" for w in self.warnings)
        return "\n".join(lines)


def check(
    saga: Saga,
    *,
    fail_on: Iterable[str] = DEFAULT_FAIL_ON,
    max_states: int = DEFAULT_MAX_STATES,
) -> CheckReport:
    """Explore every reachable state of ``saga`` and report which end states it can reach."""
    fail_on = frozenset(fail_on)
    unknown = fail_on - set(VIOLATION_KINDS)
    if unknown:
        raise ValueError(
            f"unknown outcome {sorted(unknown)[0]!r} for fail_on "
            f"(expected some of {', '.join(VIOLATION_KINDS)})"
        )
    space: StateSpace | ChoreographySpace
    if saga.coordination == "choreography":
        space = explore_choreography(saga, max_states=max_states)
    else:
        space = explore(saga, max_states=max_states)
    end_states = dict.fromkeys(OUTCOMES, 0)
    anomalies = dict.fromkeys(("duplicate_effect", "hanging", "late_leak", "empty_compensation"), 0)
    for outcome, found in space.ends.values():
        end_states[outcome] += 1
        for anomaly in found:
            anomalies[anomaly] += 1
    violations = [
        Violation(kind, tuple(space.trace_to(space.first_end[kind])))
        for kind in VIOLATION_KINDS
        if kind in fail_on and kind in space.first_end
    ]
    return CheckReport(
        saga=saga.name,
        consistent=not violations,
        states=len(space.nodes),
        transitions=len(space.edges),
        end_states=end_states,
        violations=violations,
        warnings=lint(saga),
        anomalies=anomalies,
        space=space,
    )


def lint(saga: Saga) -> list[Warning]:
    """Design defects visible in the model itself, each with its fix."""
    warnings: list[Warning] = []
    steps = list(saga.all_steps())
    pivot_index = saga.pivot_index
    pivot_name = None
    after_pivot: set[str] = set()
    if pivot_index is not None:
        pivot = saga.steps[pivot_index]
        assert isinstance(pivot, Step)
        pivot_name = pivot.name
        after_pivot = {s.name for s in steps[steps.index(pivot) + 1 :]}

    def can_fail(step: Step) -> bool:
        return step.failure > 0 or step.reject > 0 or step.p_timeout > 0

    for i, step in enumerate(steps):
        comp = step.compensation
        if comp is not None and step.name in after_pivot:
            warnings.append(
                Warning(
                    "compensation-after-pivot",
                    f"{step.name} has a compensation but runs after the pivot {pivot_name}, where "
                    "the saga only moves forward, so it never runs: move the step before the pivot "
                    "or make it retriable without a compensation.",
                )
            )
        if comp is not None and not step.effects:
            warnings.append(
                Warning(
                    "read-only-compensation",
                    f"{step.name} is read-only (effects: false) yet has a compensation {comp.name} "
                    "with nothing to undo: remove the compensation or declare the effects.",
                )
            )
        if step.effects and comp is None and step.name not in after_pivot:
            later = [s.name for s in steps[i + 1 :] if can_fail(s) and s.name not in after_pivot]
            if step.kind != "pivot" and later:
                warnings.append(
                    Warning(
                        "uncompensated-effect",
                        f"{step.name} has effects and no compensation, and {later[0]} can fail "
                        "after it: that failure leaves its effect in place (leaked); add a "
                        "compensation, move it after the pivot, or declare effects: false.",
                    )
                )
        for action in (step, comp):
            if action is None:
                continue
            if action.timeout_ms is not None and not (action.idempotent or action.rejects_late):
                warnings.append(
                    Warning(
                        "ambiguous-timeout",
                        f"{action.name} has a timeout but is neither idempotent nor rejects_late: "
                        "a timed-out attempt may still land after a retry (duplicate) or after its "
                        "compensation (hanging); make it idempotent and have the participant "
                        "reject late work.",
                    )
                )
            if action.retry.unbounded and action.failure >= 1:
                warnings.append(
                    Warning(
                        "retries-forever",
                        f"{action.name} retries without bound but every attempt fails "
                        "(failure 1): the saga never ends; lower the failure or bound the "
                        "attempts.",
                    )
                )
        if comp is not None and step.name not in after_pivot:
            fragile = comp.failure > 0 or comp.p_timeout > 0
            if comp.reject > 0 or (fragile and not comp.retry.unbounded):
                warnings.append(
                    Warning(
                        "fragile-compensation",
                        f"compensation {comp.name} can fail and has "
                        f"{_attempts(comp.retry.attempts)}: when they run out the saga is stuck "
                        "and needs manual repair; retry compensations without bound and make "
                        "sure they cannot be rejected.",
                    )
                )
        if step.name in after_pivot and (
            step.reject > 0 or (can_fail(step) and not step.retry.unbounded)
        ):
            why = (
                "can be rejected"
                if step.reject > 0
                else (f"can fail and has {_attempts(step.retry.attempts)}")
            )
            warnings.append(
                Warning(
                    "fragile-forward-step",
                    f"{step.name} runs after the pivot {pivot_name} and {why}: the saga cannot "
                    "go back, so it ends stuck; make it retriable with unbounded retries and no "
                    "rejection.",
                )
            )
    return warnings + _broker_lint(saga)


def _broker_lint(saga: Saga) -> list[Warning]:
    """Defects of a choreography's broker, or a broker an orchestration ignores."""
    broker = saga.broker
    if saga.coordination == "orchestration":
        if broker == type(broker)():
            return []
        message = (
            "the model sets a broker but coordination is orchestration, which calls services "
            "directly: set coordination: choreography or remove the broker."
        )
        return [Warning("broker-ignored", message)]
    warnings = []
    if broker.loss > 0 and broker.redelivery.attempts is not None:
        warnings.append(
            Warning(
                "lossy-broker",
                f"the broker loses messages (loss {broker.loss:g}) and sends each at most "
                f"{_times(broker.redelivery.attempts)}: a message lost for good stalls the saga "
                "(stuck); redeliver without bound (redelivery: {attempts: unbounded}).",
            )
        )
    if broker.duplicate > 0:
        naive = [s.name for s in saga.all_steps() if s.effects and not s.idempotent]
        if naive:
            warnings.append(
                Warning(
                    "duplicate-delivery",
                    f"the broker can deliver a message twice, and {', '.join(naive)} "
                    f"{'is' if len(naive) == 1 else 'are'} not idempotent: a duplicated event "
                    "applies the effect again; deduplicate by saga id (idempotent: true).",
                )
            )
    return warnings


def _attempts(attempts: int | None) -> str:
    if attempts is None:
        return "unbounded attempts"
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"


def _times(attempts: int) -> str:
    return {1: "once", 2: "twice"}.get(attempts, f"{attempts} times")
