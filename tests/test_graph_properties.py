"""Properties of random sagas of the graph model: the python-statemachine class builds, every
explored state can still end, and each shortest trace to a bad end replays on the live class
to an end of that outcome."""

from __future__ import annotations

import networkx as nx
from hypothesis import HealthCheck, given, settings

from sagasim.machine import compile_saga
from sagasim.model import Saga, validate
from sagasim.testing import replay
from sagasim.verify import check, explore
from tests.graph_strategies import graph_sagas

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(graph_sagas())
def test_every_state_of_a_graph_saga_can_still_end(saga: Saga) -> None:
    validate(saga)  # what the strategy makes, the model rules accept
    space = explore(saga)
    graph = space.to_networkx()
    ends = set(space.ends)
    reach_an_end = set(ends)
    for end in ends:
        reach_an_end |= nx.ancestors(graph, end)
    assert reach_an_end == set(graph), saga


@SETTINGS
@given(graph_sagas())
def test_each_violation_trace_replays_to_its_outcome(saga: Saga) -> None:
    report = check(saga)
    states = compile_saga(saga).states
    for violation in report.violations:
        end = replay(saga, violation.trace)
        outcome = states[end].outcome
        if violation.outcome in ("leaked", "stuck"):
            assert outcome == violation.outcome, (violation, saga)
        else:  # an anomaly: the orchestrator ended somewhere; the participants disagree
            assert outcome is not None, (violation, saga)


@SETTINGS
@given(graph_sagas())
def test_decisions_are_urgent_and_carry_the_work_in_flight(saga: Saga) -> None:
    machine = compile_saga(saga)
    for sid, info in machine.states.items():
        out = machine.transitions_from(sid)
        if info.decision is not None:
            assert out and {t.action for t in out} == {info.decision}
            for t in out:  # a decision takes no time: nothing in flight ends with it
                assert set(info.running) <= set(machine.states[t.target].running)
        else:
            assert {t.action for t in out} <= set(info.running)
