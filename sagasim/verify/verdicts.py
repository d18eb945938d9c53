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

from ..machine import OUTCOMES, compile_saga, ends
from ..model import Saga
from .choreography import ChoreographySpace, explore_choreography
from .countermeasures import interleaving_lint
from .crashes import can_crash, crash_warnings, explore_crashes
from .interleave import KINDS, InterleavedSpace, explore_instances, interleaves
from .lint import Warning, lint
from .statespace import DEFAULT_MAX_STATES, StateSpace, explore

#: What ``--fail-on`` may name, and what it names by default (the interleaving's last).
VIOLATION_KINDS = ("leaked", "stuck", "duplicate_effect", "hanging", "late_leak", *KINDS)
DEFAULT_FAIL_ON = frozenset(VIOLATION_KINDS)


@dataclass(frozen=True, slots=True)
class Violation:
    """An inconsistent end state that can be reached, and the shortest way there."""

    outcome: str
    trace: tuple[str, ...]


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
    #: End states by the name of the ``fail`` entry that led there (sagas with fail entries).
    fails: dict[str, int] = field(default_factory=dict)
    #: The interleaved instances, when ``check`` explored them (:func:`interleaves`).
    interleaving: InterleavedSpace | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of DESIGN.md (``anomalies`` counts end states with each anomaly)."""
        data = {
            "saga": self.saga,
            "consistent": self.consistent,
            "states": self.states,
            "transitions": self.transitions,
            "end_states": dict(self.end_states),
            "anomalies": dict(self.anomalies),
            "violations": [{"outcome": v.outcome, "trace": list(v.trace)} for v in self.violations],
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
        } | ({"fails": dict(self.fails)} if self.fails else {})
        if self.interleaving is not None:
            data["interleaving"] = self.interleaving.to_dict()
        return data

    def to_text(self) -> str:
        """The human report."""
        verdict = "consistent" if self.consistent else "NOT consistent"
        lines = [
            f"{self.saga}: {verdict}",
            f"  {self.states:,} states, {self.transitions:,} transitions",
            "  end states: "
            + ", ".join(f"{name} {count:,}" for name, count in self.end_states.items()),
        ]
        if self.fails:
            lines.append(
                "  by fail: " + ", ".join(f"{name} {count:,}" for name, count in self.fails.items())
            )
        found = {k: n for k, n in self.anomalies.items() if n}
        if found:
            lines.append(
                "  anomalies: " + ", ".join(f"{k} in {n:,} end states" for k, n in found.items())
            )
        if self.interleaving is not None:
            space = self.interleaving
            lines.append(
                f"  {space.instances} instances interleaved: {space.states:,} states, "
                f"{space.transitions:,} transitions"
            )
            found = {k: n for k, n in space.ends.items() if n}
            if found:
                lines.append(
                    "  interleaving anomalies: "
                    + ", ".join(f"{k} in {n:,} end states" for k, n in found.items())
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
    elif can_crash(saga):  # a crash at every log point (docs/concurrency.md)
        space = explore_crashes(saga, max_states=max_states)
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
    warnings = lint(saga) + crash_warnings(saga)
    interleaving = None
    if interleaves(saga):  # many instances over shared resources
        interleaving = explore_instances(saga, max_states=max_states)
        violations += [
            Violation(kind, interleaving.trace(kind))
            for kind in KINDS
            if kind in fail_on and kind in interleaving.reachable()
        ]
        warnings += interleaving_lint(saga, interleaving, max_states=max_states)
    return CheckReport(
        interleaving=interleaving,
        fails=_fails(saga, space),
        saga=saga.name,
        consistent=not violations,
        states=space.states,
        transitions=space.transitions,
        end_states=end_states,
        violations=violations,
        warnings=warnings,
        anomalies=anomalies,
        space=space,
    )


def _fails(saga: Saga, space: StateSpace | ChoreographySpace) -> dict[str, int]:
    """End states by fail name (each fail entry of the model, and ``max_visits``), or nothing
    when the saga has no fail entries."""
    names = ends(saga)
    if not names:
        return {}
    counts = dict.fromkeys(names, 0)
    if isinstance(space, ChoreographySpace):  # the roles say which fail was reached
        for i in space.ends:
            found = space.choreography.fail_of(space.nodes[i][0])
            if found is not None:
                counts[found] += 1
        return counts
    states = compile_saga(saga).states
    for i in space.ends:
        sid = space.nodes[i][0]
        assert isinstance(sid, str)  # an orchestrated state space: machine state ids
        fail = states[sid].fail
        if fail is not None:
            counts[fail] += 1
    return counts
