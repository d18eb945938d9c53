"""A choreography's services publish through outboxes: a service that crashes after publishing
an event publishes it again (docs/concurrency.md, "Choreography: each service's outbox")."""

from __future__ import annotations

import pytest

from sagasim import io
from sagasim.analysis import analyze
from sagasim.machine import compile_saga
from sagasim.model import Saga
from sagasim.verify import check, explore_choreography

PAY = """\
saga: pay
coordination: choreography
coordinator: {{crash: 0.01, restart: 5s, max_crashes: {budget}}}
steps:
  - {{name: reserve, compensation: release}}
  - {{name: charge, kind: pivot, reject: 0.1{charge}}}
  - {{name: ship{ship}}}
"""


def pay(budget: int = 1, charge: str = "", ship: str = "") -> Saga:
    return io.loads(PAY.format(budget=budget, charge=charge, ship=ship))


def test_a_crash_after_publishing_duplicates_a_trigger_the_service_does_not_dedupe() -> None:
    report = check(pay())
    assert not report.consistent
    (violation,) = report.violations
    assert violation.outcome == "duplicate_effect"
    crashed = [e for e in violation.trace if "crashes after publishing" in e]
    assert len(crashed) == 1 and crashed[0].endswith("crashes after publishing charge.done")
    # the copy reaches ship after the first: ship's service applies it twice
    assert [e for e in violation.trace if e.startswith("charge.done → ship")] == [
        "charge.done → ship",
        "charge.done → ship",
    ]


def test_idempotent_services_make_the_outbox_duplicates_harmless() -> None:
    saga = pay(charge=", idempotent: true", ship=", idempotent: true")
    # reserve.done's copy reaches charge, charge.done's reaches ship: both deduplicate
    report = check(saga)
    assert report.consistent, report.to_text()
    assert report.anomalies["duplicate_effect"] == 0


def test_the_budget_bounds_the_crashes_on_every_path() -> None:
    one, two = explore_choreography(pay(1)), explore_choreography(pay(2))
    assert len(two.nodes) > len(one.nodes)
    for space, budget in ((one, 1), (two, 2)):
        assert max(node[2] for node in space.nodes) == budget  # type: ignore[misc]
        crash_edges = [e for e in space.edges if e[3] == "outbox_crash"]
        counts = [(space.nodes[s][2], space.nodes[t][2]) for s, t, *_ in crash_edges]  # type: ignore[misc]
        assert counts and all(after == before + 1 for before, after in counts)


def test_without_a_crash_rate_the_space_is_as_before() -> None:
    text = PAY.format(budget=1, charge="", ship="")
    zero = io.loads(text.replace("crash: 0.01", "crash: 0"))
    none = io.loads("".join(line for line in text.splitlines(True) if "coordinator" not in line))
    a, b = explore_choreography(zero), explore_choreography(none)
    assert a.nodes == b.nodes and a.edges == b.edges and len(a.nodes[0]) == 2


def test_the_orchestrated_form_of_a_choreography_has_no_crash_edges() -> None:
    machine = compile_saga(pay())
    assert not any(t.event.endswith(".crash") for t in machine.transitions)


@pytest.mark.parametrize("budget", [1, 2])
def test_analyze_says_outbox_crashes_are_not_in_its_numbers(budget: int) -> None:
    result = analyze(pay(budget), sensitivity=False)
    assert any("outbox crashes" in note for note in result.notes)
    assert "crashes" not in result.to_dict()
