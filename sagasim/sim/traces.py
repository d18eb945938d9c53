"""Traced instances: what happened to each, event by event and attempt by attempt, and the two
files they are written to: JSON Lines (one event a line) and the Chrome trace-event format for
Perfetto or chrome://tracing (one track per instance, attempts as slices, compensations in
another colour, late landings and the end as instants).
:meth:`sagasim.sim.Results.write_trace` writes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..model import Entry, Parallel, Step, SubSaga, blocks_of

#: Participants' events of a trace (a timed-out attempt landing, or lost), not the machine's.
LATE_EVENTS = (".late_ok", ".late_fail")
#: The coordinator's events (docs/concurrency.md): a crash with a call in doubt or after an
#: outcome record, the restart, and whether the call in doubt landed.
COORDINATOR_EVENTS = (".crash", ".crash_after", ".restart", ".landed", ".lost")
#: Spans that are no attempt: ``result`` names them (a wait for a semantic lock, the
#: coordinator down after a crash); their category and colour in the trace-event file.
WAITS = {"lock_wait": ("lock", "grey"), "restart": ("coordinator", "black")}
MS_DIGITS = 3


class TraceEvent(NamedTuple):
    """One event of a traced instance: when, what, and the machine state after it."""

    t_ms: float
    event: str
    state: str


class Span(NamedTuple):
    """One attempt of an action, from its start to when the orchestrator saw it end."""

    action: str
    attempt: int
    start_ms: float
    end_ms: float
    result: str
    compensation: bool


@dataclass(frozen=True, slots=True)
class InstanceTrace:
    """Everything that happened to one instance.

    Times are the instance's simulation clock: absolute with arrivals (instances share the
    services), from the instance's own start otherwise.
    """

    instance: int
    start_ms: float
    events: tuple[TraceEvent, ...]
    spans: tuple[Span, ...]
    outcome: str
    anomalies: tuple[str, ...]
    latency_ms: float

    @property
    def timeline(self) -> list[tuple[float, str]]:
        """The events as ``(t_ms, event)`` pairs."""
        return [(e.t_ms, e.event) for e in self.events]


#: For each action inside sub-sagas or maps, their labels, outermost first (``saga book_hotel``,
#: ``map pack_items``): the Chrome trace draws each as a span around its actions.
Containers = Mapping[str, tuple[str, ...]]


def containers_of(
    entries: tuple[Entry, ...], outer: tuple[str, ...] = ()
) -> dict[str, tuple[str, ...]]:
    """Each action inside sub-sagas or maps (unrolled by ``core``) and their labels."""
    found: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        if isinstance(entry, Step):
            for action in (entry, entry.compensation):
                if action is not None and outer:
                    found[action.name] = outer
        elif isinstance(entry, SubSaga):
            inner = (*outer, f"saga {entry.name}")
            found |= containers_of(entry.saga.steps, inner)
            if entry.compensation is not None and outer:
                found[entry.compensation.name] = outer
        else:
            label = (f"map {entry.origin}",) if isinstance(entry, Parallel) and entry.origin else ()
            for block in blocks_of(entry):
                found |= containers_of(block, (*outer, *label))
    return found


def write_traces(
    saga: str,
    traces: Sequence[InstanceTrace],
    path: str | os.PathLike[str],
    containers: Containers | None = None,
    decisions: Collection[str] = (),
) -> None:
    """Write ``traces`` of ``saga``: ``.jsonl`` one event a line, ``.json`` as trace events
    (``containers`` and ``decisions``, the choices' names: see :func:`chrome_trace`)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as out:
            for trace in traces:
                for e in trace.events:
                    record = {
                        "instance": trace.instance,
                        "t_ms": round(e.t_ms, MS_DIGITS),
                        "event": e.event,
                        "state": e.state,
                    }
                    out.write(json.dumps(record) + "\n")
    elif path.suffix == ".json":
        document = chrome_trace(saga, traces, containers or {}, decisions)
        path.write_text(json.dumps(document), encoding="utf-8")
    else:
        raise ValueError(f"{path}: expected a .jsonl or .json trace file, got {path.suffix!r}")


def chrome_trace(
    saga: str,
    traces: Sequence[InstanceTrace],
    containers: Containers | None = None,
    decisions: Collection[str] = (),
) -> dict[str, Any]:
    """The trace-event document of the traced instances of ``saga``: each attempt a slice,
    each sub-saga and map a slice around its actions' (category ``saga`` or ``map``), each
    decision of a choice named in ``decisions``, each late landing and each end an instant."""
    containers = containers or {}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": saga}}
    ]
    for trace in traces:
        tid = trace.instance
        events.append(
            {
                "ph": "M",
                "name": "thread_name",
                "pid": 1,
                "tid": tid,
                "args": {"name": f"instance {tid} ({trace.outcome})"},
            }
        )
        for s in trace.spans:
            if s.result in WAITS:
                category, colour = WAITS[s.result]
                events.append(
                    {
                        "name": f"{s.action} {s.result.replace('_', ' ')}",
                        "cat": category,
                        "ph": "X",
                        "pid": 1,
                        "tid": tid,
                        "ts": round(s.start_ms * 1000, 3),
                        "dur": round((s.end_ms - s.start_ms) * 1000, 3),
                        "cname": colour,
                        "args": {"attempt": s.attempt},
                    }
                )
                continue
            events.append(
                {
                    "name": s.action,
                    "cat": "compensation" if s.compensation else "step",
                    "ph": "X",
                    "pid": 1,
                    "tid": tid,
                    "ts": round(s.start_ms * 1000, 3),
                    "dur": round((s.end_ms - s.start_ms) * 1000, 3),
                    "cname": "terrible" if s.compensation else "good",
                    "args": {"attempt": s.attempt, "result": s.result},
                }
            )
        events.extend(_container_slices(trace, containers, tid))
        instants = [
            (e.t_ms, e.event)
            for e in trace.events
            if e.event.endswith(LATE_EVENTS + COORDINATOR_EVENTS)
            or e.event.rsplit(".", 1)[0] in decisions
        ]
        instants.append((trace.start_ms + trace.latency_ms, trace.outcome))
        events.extend(
            {"name": name, "ph": "i", "s": "t", "pid": 1, "tid": tid, "ts": round(t * 1000, 3)}
            for t, name in instants
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _container_slices(
    trace: InstanceTrace, containers: Containers, tid: int
) -> list[dict[str, Any]]:
    """One slice per sub-saga or map an instance ran, from its first attempt to its last."""
    bounds: dict[str, tuple[float, float]] = {}
    for span in trace.spans:
        for label in containers.get(span.action, ()):
            start, end = bounds.get(label, (span.start_ms, span.end_ms))
            bounds[label] = (min(start, span.start_ms), max(end, span.end_ms))
    return [
        {
            "name": label,
            "cat": label.split(" ", 1)[0],
            "ph": "X",
            "pid": 1,
            "tid": tid,
            "ts": round(start * 1000, 3),
            "dur": round((end - start) * 1000, 3),
        }
        for label, (start, end) in bounds.items()
    ]
