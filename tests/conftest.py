"""Invariants checked on every simulation the test suite runs.

An autouse fixture wraps the places a simulation's results come from: ``merge`` as
:func:`sagasim.sim.simulate` calls it (every ``simulate``, ``sweep``, ``compare`` and ``report``
run in this process, whatever the executor), and the ``run`` of both simulators' chunks (every
chunk run here, and :func:`sagasim.sim.simulate_instance`). On each result it asserts that
outcome counts sum to the runs, that every instance ended exactly once in one end state, that no
duration is negative, and, on traced instances, that the latency is where the last attempt
ended, after every attempt (so at least the attempts' service time when they do not overlap).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from sagasim.machine import ANOMALIES, OUTCOMES
from sagasim.sim import Results, choreography, orchestration, run
from sagasim.sim.traces import InstanceTrace

#: Float32 windows and float64 latencies: how far they may disagree.
SLACK_MS = 1e-3


def check_invariants(results: Results) -> None:
    """Assert what holds for any :class:`Results`, whatever the saga."""
    n = results.runs
    columns = ("outcome", "latency_ms", "anomaly_flags", "retries", "compensations", "window_ms")
    columns += ("messages",)
    for name in (*columns, "start_ms"):
        assert len(getattr(results, name)) == n, name
    assert sum(results.outcomes.values()) == n
    assert np.all((results.outcome >= 0) & (results.outcome < len(OUTCOMES)))
    assert not np.any(results.anomaly_flags >> len(ANOMALIES)), "unknown anomaly bits"
    latency = results.latency_ms
    assert not np.any(np.isnan(latency)) and np.all(latency >= 0), "negative or NaN latency"
    assert np.all(results.start_ms >= 0) and np.all(results.retries >= 0)
    assert np.all(results.compensations >= 0) and np.all(results.messages >= 0)
    has_window = ~np.isnan(results.window_ms)
    window = results.window_ms[has_window].astype(np.float64)
    within = latency[has_window] * (1 + 1e-6) + SLACK_MS  # window_ms is float32
    assert np.all(window >= 0) and np.all(window <= within), "window outside the instance"
    committed = results.outcome == OUTCOMES.index("committed")
    assert not np.any(results.compensations[committed]), "a committed instance compensated"
    for trace in results.traces:
        check_trace(trace)


def check_trace(trace: InstanceTrace) -> None:
    """A traced instance: its attempts lie inside it, and it ends in one end state, last."""
    assert trace.outcome in OUTCOMES and set(trace.anomalies) <= set(ANOMALIES)
    start = trace.start_ms  # spans and events use a clock on which the instance starts here
    end = start + trace.latency_ms
    slack = SLACK_MS * (1 + abs(end))
    for span in trace.spans:
        assert start - slack <= span.start_ms <= span.end_ms <= end + slack, (span, start, end)
    choreographed = any(" → " in e.event for e in trace.events)  # ends with a message, maybe
    if trace.spans and choreographed:
        assert max(span.end_ms for span in trace.spans) <= end + slack
    elif trace.spans:
        assert abs(max(span.end_ms for span in trace.spans) - end) <= slack
        if not overlapping(trace):
            service = sum(span.end_ms - span.start_ms for span in trace.spans)
            assert trace.latency_ms + slack >= service, (service, trace.latency_ms)
    # participants' events (late landings; a call in doubt landing or lost) may follow the end
    participants = (".late_ok", ".late_fail", ".landed", ".lost")
    machine = [e for e in trace.events if not e.event.endswith(participants)]
    times = [e.t_ms for e in machine]
    assert times == sorted(times), "events out of order"
    # a crash after the last outcome record: the saga ends once the coordinator is back
    while len(machine) > 1 and machine[-1].event.endswith((".crash_after", ".restart")):
        if machine[-1].state != machine[-2].state:
            break
        machine.pop()
    if machine:
        # the end state's id: its outcome, and after a fail entry its fail name
        end = machine[-1].state.split("__")[0]
        assert end == trace.outcome, (machine[-1], trace.outcome)
        assert all(e.state not in OUTCOMES for e in machine[:-1]), "ended twice"


def overlapping(trace: InstanceTrace) -> bool:
    spans = sorted(trace.spans, key=lambda s: (s.start_ms, s.end_ms))
    return any(b.start_ms < a.end_ms for a, b in pairwise(spans))


def _checked(function: Callable[..., Results]) -> Callable[..., Results]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Results:
        results = function(*args, **kwargs)
        check_invariants(results)
        return results

    return wrapper


@pytest.fixture(autouse=True)
def simulation_invariants(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every simulation run by a test is checked against :func:`check_invariants`."""
    chunk_run = orchestration.Chunk.run
    finish = orchestration.Chunk._finish

    def run_checked(self: Any, seed: int) -> Results:
        self.finished = []
        results = chunk_run(self, seed)
        slots = sorted(self.finished)
        assert slots == list(range(self.n)), "an instance ended more than once or never"
        check_invariants(results)
        return results

    def finished(self: Any, inst: Any, outcome: int, now: float) -> None:
        self.finished.append(inst.slot)
        finish(self, inst, outcome, now)

    monkeypatch.setattr(orchestration.Chunk, "run", run_checked)
    monkeypatch.setattr(orchestration.Chunk, "_finish", finished)
    monkeypatch.setattr(run, "merge", _checked(run.merge))
    monkeypatch.setattr(choreography.Chunk, "run", _checked(choreography.Chunk.run))
    yield
