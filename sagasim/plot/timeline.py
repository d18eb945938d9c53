"""Figures in simulated time: a Gantt timeline of traced instances, and rates over time."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..exceptions import UsageError
from ..model.saga import Saga
from ..sim.results import InstanceTrace, Results
from .style import (
    OUTAGE_COLOR,
    OUTCOME_COLORS,
    SPAN_COLORS,
    figure_and_axes,
    readable_ms,
    wilson,
)


def timeline(
    results: Results,
    instances: int = 20,
    saga: Saga | None = None,
    *,
    start_ms: float | None = None,
    outcomes: Collection[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A Gantt chart of traced instances (``simulate(..., trace_limit=K)``): a row per
    instance, a bar per attempt, named when there is room; forward attempts, retries and
    compensations in their own colours, failed attempts (fail, reject, timeout) hatched,
    parallel attempts on sub-lanes, each instance's end marked in its outcome's colour.
    ``start_ms`` picks the first instances starting then or later, ``outcomes`` keeps only
    instances that ended so. With ``saga``, its services' outage windows are shaded.

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.sim import simulate
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.3),))
    >>> fig = timeline(simulate(saga, runs=50, trace_limit=10), instances=5)
    >>> len(fig.axes[0].get_yticks())
    5
    """
    traces = [t for t in results.traces if outcomes is None or t.outcome in outcomes]
    if start_ms is not None:
        traces = sorted((t for t in traces if t.start_ms >= start_ms), key=lambda t: t.start_ms)
    traces = traces[:instances]
    if not traces:
        raise UsageError(
            "timeline needs traced instances: simulate(..., trace_limit=K)"
            + (" with some that match start_ms and outcomes" if results.traces else "")
        )
    first = min(t.start_ms for t in traces)
    last = max(t.start_ms + t.latency_ms for t in traces)
    scale = 1000.0 if last > 10_000 else 1.0
    figure, ax = figure_and_axes(ax, (7.0, max(3.0, 0.22 * len(traces) + 1.8)))
    span = max(last - first, 1.0)
    ax.set_xlim((first - 0.02 * span) / scale, (last + 0.03 * span) / scale)
    for row, trace in enumerate(traces):
        _draw_trace(ax, row, trace, scale, span / scale)
    windows = [] if saga is None else [(s.name, o) for s in saga.services for o in s.outages]
    for _, outage in windows:
        ax.axvspan(
            outage.start_ms / scale,
            outage.end_ms / scale,
            color=OUTAGE_COLOR,
            alpha=0.1,
            lw=0,
            zorder=0,
        )
    ax.set_yticks(range(len(traces)), [f"#{t.instance} {t.outcome}" for t in traces])
    for label, trace in zip(ax.get_yticklabels(), traces):
        label.set_color(OUTCOME_COLORS.get(trace.outcome, "black"))
    ax.set_ylim(len(traces) - 0.5, -0.5)
    unit = "s" if scale > 1 else "ms"
    clock = "simulation time" if results.shared else "time since the instance started"
    ax.set_xlabel(f"{clock} ({unit})")
    handles: list[Any] = [
        Patch(color=SPAN_COLORS["forward"], label="forward attempt"),
        Patch(color=SPAN_COLORS["retry"], label="retry"),
        Patch(color=SPAN_COLORS["compensation"], label="compensation"),
        Patch(facecolor="white", edgecolor="#444444", hatch="////", label="failed attempt"),
        Line2D([], [], ls="", marker="D", color="#444444", ms=4, label="end (outcome colour)"),
    ]
    handles += [Patch(color=OUTAGE_COLOR, alpha=0.15, label=f"{n} outage") for n, _ in windows]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.09 - 1 / len(traces) / 4),
        ncols=3,
        fontsize="small",
        frameon=False,
    )
    ax.grid(True, axis="x", color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)
    ax.set_title(f"{results.saga}: {len(traces)} traced instances", fontsize="medium")
    return figure


def _lanes(trace: InstanceTrace) -> list[int]:
    """A sub-lane per span so that attempts running at once do not overlap."""
    ends: list[float] = []
    lanes = [0] * len(trace.spans)
    for i in sorted(range(len(trace.spans)), key=lambda i: trace.spans[i].start_ms):
        span = trace.spans[i]
        lane = next((k for k, end in enumerate(ends) if end <= span.start_ms + 1e-9), len(ends))
        if lane == len(ends):
            ends.append(span.end_ms)
        ends[lane] = span.end_ms
        lanes[i] = lane
    return lanes


def _draw_trace(ax: Axes, row: int, trace: InstanceTrace, scale: float, width: float) -> None:
    """One instance's attempts; a bar wider than an eighth of the axis gets its action's name."""
    lanes = _lanes(trace)
    height = 0.8 / (max(lanes, default=0) + 1)
    for span, lane in zip(trace.spans, lanes):
        kind = "compensation" if span.compensation else "retry" if span.attempt > 1 else "forward"
        failed = span.result != "ok"
        start, length = span.start_ms / scale, max(span.end_ms - span.start_ms, 0.0) / scale
        bottom = row - 0.4 + lane * height
        ax.broken_barh(
            [(start, length)],
            (bottom, height),
            facecolors=SPAN_COLORS[kind],
            edgecolors="#444444" if failed else "white",
            hatch="////" if failed else None,
            linewidth=0.5,
        )
        if length > width / 8 and height > 0.3:
            text = span.action + (f" ({span.result})" if failed else "")
            ax.text(
                start + length / 2,
                bottom + height / 2,
                text,
                ha="center",
                va="center",
                fontsize=6,
                color="#1a1a1a",
                clip_on=True,
                bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.6},
            )
    end = (trace.start_ms + trace.latency_ms) / scale
    color = OUTCOME_COLORS.get(trace.outcome, "black")
    ax.plot([end], [row], ls="", marker="D", ms=4, color=color, zorder=5)


def rate_over_time(
    results: Results,
    window_ms: float,
    ax: Axes | None = None,
    *,
    saga: Saga | None = None,
    outcome: str = "compensation",
    baseline: float | None = None,
    baseline_label: str = "baseline",
    min_instances: int = 10,
) -> Figure:
    """The rate of ``outcome`` (default: a compensation ran) among instances arriving in each
    window of ``window_ms``, with its 95% Wilson band: how an outage or a queue shows over
    time. Windows with fewer than ``min_instances`` arrivals are left blank. Needs a saga with
    arrivals (instances on one clock). With ``saga``, outage windows are shaded; ``baseline``
    (a probability, such as the exact one) is drawn as a dashed line.

    >>> from sagasim.model import Arrivals, Saga, Step
    >>> from sagasim.sim import simulate
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.3),), arrivals=Arrivals(rate_per_s=20))
    >>> fig = rate_over_time(simulate(saga, runs=400), 5_000)
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('arrival time (s)', 'compensation rate (%)')
    """
    if not results.shared:
        raise UsageError(
            "rate_over_time needs a saga with arrivals (instances on one clock), got "
            "independent instances"
        )
    windows = results.windows(window_ms, outcome)
    starts = np.array([w.start_ms for w in windows])
    counts = np.array([w.runs for w in windows])
    hits = np.array([w.hits for w in windows])
    rates = np.array([w.rate for w in windows])
    low, high = wilson(hits, counts)
    sparse = counts < min_instances
    rates, low, high = (np.where(sparse, np.nan, v) for v in (rates, low, high))
    figure, ax = figure_and_axes(ax)
    x = np.append(starts, starts[-1] + window_ms) / 1000

    def steps(values: np.ndarray) -> np.ndarray:  # a step plot needs the last value twice
        return np.append(values, values[-1]) * 100

    what = "compensation" if outcome == "compensation" else outcome
    color = OUTCOME_COLORS["compensated"]
    ax.fill_between(
        x,
        steps(low),
        steps(high),
        step="post",
        color=color,
        alpha=0.2,
        lw=0,
        label="95% interval (Wilson)",
    )
    ax.step(
        x,
        steps(rates),
        where="post",
        color=color,
        lw=1.5,
        label=f"{what} rate per {readable_ms(window_ms)} window",
    )
    if baseline is not None:
        ax.axhline(baseline * 100, color="#173f5f", ls="--", lw=1.2, label=baseline_label)
    for service in saga.services if saga is not None else ():
        for outage in service.outages:
            ax.axvspan(
                outage.start_ms / 1000,
                outage.end_ms / 1000,
                color=OUTAGE_COLOR,
                alpha=0.1,
                lw=0,
                label=f"{service.name} outage",
            )
    ax.set_xlim(x[0], x[-1])
    top = float(np.nanmax(steps(high))) if np.isfinite(high).any() else 5.0
    ax.set_ylim(0, min(100.0, max(5.0, top * 1.08)))
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel(f"{what} rate (%)")
    ax.grid(True, color="#e5e5e5", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    rate_per_s = results.runs / max(results.horizon_ms, 1e-9) * 1000
    ax.set_title(
        f"{results.saga}: {results.runs:,} instances, about {rate_per_s:.0f}/s", fontsize="medium"
    )
    return figure
