"""Traced instances in the Chrome trace-event format, for Perfetto or chrome://tracing:
one track per instance, attempts as slices (compensations in another colour), late landings
and the end as instants. :meth:`sagasim.results.Results.write_trace` writes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .results import LATE_EVENTS

if TYPE_CHECKING:
    from .results import Results


def chrome_trace(results: Results) -> dict[str, Any]:
    """The trace-event document of ``results``' traced instances."""
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": results.saga}}
    ]
    for trace in results.traces:
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
        instants = [(e.t_ms, e.event) for e in trace.events if e.event.endswith(LATE_EVENTS)]
        instants.append((trace.start_ms + trace.latency_ms, trace.outcome))
        events.extend(
            {"name": name, "ph": "i", "s": "t", "pid": 1, "tid": tid, "ts": round(t * 1000, 3)}
            for t, name in instants
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
