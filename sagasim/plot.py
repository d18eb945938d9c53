"""Figures of simulations and sweeps, with matplotlib.

Every function draws into the ``ax`` it is given, or into a new :class:`matplotlib.figure.Figure`
(7 x 4 in, 150 dpi, constrained layout) made without :mod:`matplotlib.pyplot`, so nothing opens a
window and any backend works; each returns the Figure, for ``fig.savefig("out.png")`` or a
notebook cell's last expression (with ``%matplotlib inline``: Jupyter draws a figure pyplot did
not make only then). Rates are in percent with 95% Wilson intervals as shaded bands, times in
ms (or s), outcomes in fixed colours: committed green, compensated blue, leaked orange, stuck red.

Examples
--------
>>> from sagasim.model import Saga, Step
>>> from sagasim.sim import simulate
>>> results = simulate(Saga(name="s", steps=(Step(name="a", reject=0.1),)), runs=200)
>>> fig = outcome_bars(results)
>>> type(fig).__name__, fig.axes[0].get_ylabel()
('Figure', 'share of instances (%)')
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .exceptions import UsageError
from .machine import OUTCOMES
from .model import Saga
from .results import InstanceTrace, Results
from .sweep import DURATION_KEYS, INTEGER_KEYS, SweepResult

__all__ = [
    "OUTCOME_COLORS",
    "latency_distribution",
    "outcome_bars",
    "rate_over_time",
    "sweep_heatmap",
    "sweep_rates",
    "timeline",
    "wilson",
]

OUTCOME_COLORS = {
    "committed": "#3b9b3b",
    "compensated": "#2a7fb8",
    "leaked": "#f28e2b",
    "stuck": "#d62728",
}
#: Spans of the timeline: forward attempts, retries and compensations; failed ones hatched.
SPAN_COLORS = {"forward": "#9ab7d3", "retry": "#e8b53a", "compensation": "#8a63b3"}
OUTAGE_COLOR = "#d62728"
FIGSIZE = (7.0, 4.0)
DPI = 150
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def _figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def _root(ax: Axes) -> Figure:
    figure: Any = ax.figure
    while isinstance(figure, SubFigure):
        figure = figure.figure
    assert isinstance(figure, Figure)
    return figure


def _axes(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    if ax is not None:
        return _root(ax), ax
    figure = _figure(figsize)
    return figure, figure.add_subplot()


def _key(path: str) -> str:
    return re.split(r"[.\[\]]", path.rstrip("]"))[-1]


#: The unit of a swept parameter, by the last key of its path.
UNITS = {"failure": "probability", "reject": "probability", "capacity": "concurrent calls"}
UNITS |= {"attempts": "attempts", "rate": "instances/s"} | dict.fromkeys(DURATION_KEYS, "ms")


def _unit(path: str) -> str:
    """The axis label of a swept parameter: its path and its unit."""
    unit = UNITS.get(_key(path))
    return f"{path} ({unit})" if unit else path


def wilson(hits: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score intervals of ``hits`` out of ``n``, elementwise (NaN where n is 0).

    >>> low, high = wilson(np.array([0, 5]), np.array([10, 10]))
    >>> np.round(np.r_[low, high], 4).tolist()
    [0.0, 0.2366, 0.2775, 0.7634]
    """
    hits, n = np.asarray(hits, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, z2 = hits / n, Z95**2
        center = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    return np.clip(center - half, 0, 1), np.clip(center + half, 0, 1)


# --- sweeps ------------------------------------------------------------------------------------


def sweep_rates(
    result: SweepResult, ax: Axes | None = None, *, stuck: bool | None = None
) -> Figure:
    """Compensation rate against the swept parameter: simulated points with their 95% Wilson
    band, and the exact curve of :func:`sagasim.analysis.analyze` where there is one. The stuck
    rate goes on a right-hand axis (own scale, red) if ``stuck``; by default when any point has
    a stuck instance or a positive exact P(stuck).

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.sweep import sweep
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.1),))
    >>> fig = sweep_rates(sweep(saga, {"a.reject": [0.1, 0.3]}, runs=100))
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('a.reject (probability)', 'compensation rate (%)')
    """
    if len(result.parameters) != 1:
        raise UsageError(
            f"sweep_rates draws one-parameter sweeps, got {len(result.parameters)} parameters "
            "(see sweep_heatmap)"
        )
    figure, ax = _axes(ax)
    rows = result.rows()
    path = result.parameters[0]
    order = np.argsort([row[path] for row in rows], kind="stable")
    rows = [rows[i] for i in order]
    x = np.array([row[path] for row in rows], dtype=float)
    blue = OUTCOME_COLORS["compensated"]
    handles = _rate_series(ax, x, rows, ("compensation_rate", "ci_low", "ci_high"), blue, "")
    curve = result.exact_curve
    if curve is not None:
        (line,) = ax.plot(
            curve.x, curve.compensation_probability * 100, color="#173f5f", lw=1.6, zorder=3
        )
        line.set_label("exact (analyze)")
        handles.append(line)
    ax.set_xlabel(_unit(path))
    ax.set_ylabel("compensation rate (%)")
    ax.set_ylim(bottom=0)
    if _key(path) in INTEGER_KEYS:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    if stuck is None:
        stuck = any(row["stuck"] > 0 or (row["exact_stuck"] or 0) > 0 for row in rows)
    if stuck:
        right = ax.twinx()
        red = OUTCOME_COLORS["stuck"]
        cols = ("stuck_rate", "stuck_ci_low", "stuck_ci_high")
        handles += _rate_series(right, x, rows, cols, red, "stuck: ", marker="s")
        if curve is not None:
            (line,) = right.plot(curve.x, curve.stuck * 100, color="#7f1416", lw=1.4, ls="--")
            line.set_label("stuck: exact (analyze)")
            handles.append(line)
        right.set_ylabel("stuck rate (%)", color=red)
        right.tick_params(axis="y", colors=red)
        right.set_ylim(bottom=0)
    if stuck:  # two scales: the legend goes under the plot, a row per rate
        half = len(handles) // 2
        for handle in handles[:half]:
            handle.set_label(f"compensation: {handle.get_label()}")
        handles = [h for pair in zip(handles[:half], handles[half:]) for h in pair]
        where: dict[str, Any] = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.16)}
        ax.legend(handles=handles, ncols=half, fontsize="small", frameon=False, **where)
    else:
        ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.9)
    ax.set_title(f"{result.saga}: {result.runs:,} runs a point", fontsize="medium")
    return figure


def _rate_series(
    ax: Axes,
    x: np.ndarray,
    rows: list[dict[str, Any]],
    columns: tuple[str, str, str],
    color: str,
    prefix: str,
    marker: str = "o",
) -> list[Any]:
    """Simulated rates (%) as points joined by a thin line, over their Wilson band."""
    value, low, high = (np.array([row[c] for row in rows], dtype=float) * 100 for c in columns)
    band = ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
    band.set_label(f"{prefix}95% interval (Wilson)")
    (points,) = ax.plot(x, value, color=color, marker=marker, ms=4.5, lw=0.8, zorder=4)
    points.set_label(f"{prefix}simulated")
    return [points, band]


def sweep_heatmap(
    result: SweepResult, ax: Axes | None = None, *, column: str = "compensation_rate"
) -> Figure:
    """A two-parameter sweep as a heat map of ``column`` (a rate, shown in %, or another
    column of :meth:`SweepResult.rows`), each cell annotated; the first parameter runs up the
    y axis, the second along x. Rates also show the half-width of their 95% interval when the
    grid has at most 64 cells.

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.sweep import sweep
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.1),))
    >>> fig = sweep_heatmap(sweep(saga, [("a.reject", [0, 0.5]), ("a.failure", [0, 0.1])],
    ...                           runs=50))
    >>> [a.get_ylabel() for a in fig.axes]
    ['a.reject (probability)', 'compensation rate (%)']
    """
    if len(result.parameters) != 2:
        raise UsageError(
            f"sweep_heatmap draws two-parameter sweeps, got {len(result.parameters)} parameter"
            f"{'s' * (len(result.parameters) != 1)} (see sweep_rates)"
        )
    figure, ax = _axes(ax, (7.0, 5.0))
    percent = column.endswith(("_rate", "ci_low", "ci_high", "probability", "exact_stuck"))
    cells = result.grid(column) * (100 if percent else 1)
    image = ax.imshow(cells, origin="lower", aspect="auto", cmap="viridis")
    bar = figure.colorbar(image, ax=ax, pad=0.02)
    label = column.replace("_", " ")
    bar.set_label(f"{label} (%)" if percent else label)
    rows, cols = result.values
    ax.set_xticks(range(len(cols)), [f"{v:g}" for v in cols])
    ax.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
    ax.set_xlabel(_unit(result.parameters[1]))
    ax.set_ylabel(_unit(result.parameters[0]))
    half = None
    if column in ("compensation_rate", "stuck_rate") and cells.size <= 64:
        prefix = "" if column == "compensation_rate" else "stuck_"
        half = (result.grid(f"{prefix}ci_high") - result.grid(f"{prefix}ci_low")) * 50
    finite = cells[np.isfinite(cells)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    size = "small" if cells.size <= 36 else "x-small"
    for (i, j), value in np.ndenumerate(cells):
        digits = 1 if not percent or abs(value) >= 1 else 2
        text = "n/a" if not math.isfinite(value) else f"{value:.{digits}f}" + "%" * percent
        if half is not None and math.isfinite(half[i, j]):
            text += f"\n±{half[i, j]:.2g}"
        color = "white" if not math.isfinite(value) or value < middle else "black"
        ax.text(j, i, text, ha="center", va="center", color=color, fontsize=size)
    note = " (± half the 95% interval)" if half is not None else ""
    ax.set_title(f"{result.saga}: {result.runs:,} runs a cell{note}", fontsize="medium")
    return figure


# --- one simulation --------------------------------------------------------------------------


def outcome_bars(results: Results | Mapping[str, Results], ax: Axes | None = None) -> Figure:
    """How instances ended, as stacked bars in percent: one bar for one :class:`Results`, one
    per design for a mapping ``{label: results}``. Only outcomes that occur get a bar segment
    and a legend entry; segments are labelled with their share.

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.sim import simulate
    >>> one = simulate(Saga(name="s", steps=(Step(name="a", reject=0.1),)), runs=100)
    >>> fig = outcome_bars({"retry": one, "no retry": one})
    >>> len(fig.axes[0].patches)
    4
    """
    designs = {results.saga: results} if isinstance(results, Results) else dict(results)
    if not designs:
        raise UsageError("outcome_bars needs at least one Results, got none")
    figure, ax = _axes(ax, (min(3.0 + 1.3 * len(designs), 10.0), 4.0))
    positions = np.arange(len(designs))
    shares = {
        name: np.array([r.outcomes[name] / r.runs * 100 for r in designs.values()])
        for name in OUTCOMES
    }
    bottom = np.zeros(len(designs))
    for name, share in shares.items():
        if share.any():
            color = OUTCOME_COLORS[name]
            bars = ax.bar(positions, share, 0.6, bottom=bottom, color=color, label=name)
            texts = [f"{s:.1f}%" if s >= 5 else "" for s in share]
            ax.bar_label(bars, texts, label_type="center", color="white", fontsize="small")
            bottom += share
    thin = False
    for k in range(len(designs)):  # segments too thin to label inside: named above the bar
        rare = [f"{n} {shares[n][k]:.2g}%" for n in OUTCOMES if 0 < shares[n][k] < 5]
        if rare:
            ax.text(k, 101.5, "\n".join(rare), ha="center", va="bottom", fontsize="x-small")
            thin = True
    labels = [f"{label}\n{r.runs:,} runs" for label, r in designs.items()]
    ax.set_xticks(positions, labels, fontsize="small")
    ax.set_xlim(-0.7, len(designs) - 0.3)
    ax.set_ylim(0, 115 if thin else 100)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("share of instances (%)")
    ax.set_title("how instances ended", fontsize="medium")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    return figure


def latency_distribution(
    results: Results, ax: Axes | Sequence[Axes] | None = None, *, bins: int = 60
) -> Figure:
    """End-to-end latency by outcome: a histogram (left) and the ECDF (right), p50, p95 and p99
    of each outcome marked on the ECDF and given in its legend. The time axis is logarithmic
    when latencies span more than two decades. ``ax`` may be a pair of Axes, or one Axes for
    the ECDF alone.

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.latency import Exponential
    >>> from sagasim.sim import simulate
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.2, latency=Exponential(mean_ms=5)),))
    >>> fig = latency_distribution(simulate(saga, runs=300))
    >>> [a.get_xlabel() for a in fig.axes]
    ['end-to-end latency (ms)', 'end-to-end latency (ms)']
    """
    if ax is None:
        figure = _figure((9.0, 4.0))
        hist, ecdf = figure.subplots(1, 2)
    elif isinstance(ax, Axes):
        figure, hist, ecdf = _root(ax), None, ax
    else:
        hist, ecdf = ax
        figure = _root(ecdf)
    present = [name for name, n in results.outcomes.items() if n > 0]
    latency = results.latency_ms
    positive = latency[latency > 0]
    log = positive.size > 0 and positive.max() / positive.min() > 100
    low, high = (positive.min(), positive.max()) if log else (latency.min(), latency.max())
    edges = (np.geomspace if log else np.linspace)(low, max(high, low + 1e-3), bins + 1)
    for name in present:
        values = np.sort(latency[results.outcome == OUTCOMES.index(name)])
        color = OUTCOME_COLORS[name]
        p50, p95, p99 = np.percentile(values, (50, 95, 99))
        label = f"{name} (n={values.size:,}): p50 {_ms(p50)}, p95 {_ms(p95)}, p99 {_ms(p99)}"
        y = np.arange(1, values.size + 1) / values.size
        ecdf.step(values, y, where="post", color=color, lw=1.4, label=label)
        ecdf.plot([p50, p95, p99], [0.5, 0.95, 0.99], ls="", marker="o", ms=4, color=color)
        if hist is not None:
            hist.hist(values, edges, histtype="step", color=color, lw=1.4, label=name)
            hist.hist(values, edges, histtype="stepfilled", color=color, alpha=0.15)
    for level, text in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        ecdf.axhline(level, color="#999999", lw=0.6, ls=":", zorder=0)
        ecdf.text(
            1.01,
            level,
            text,
            transform=ecdf.get_yaxis_transform(),
            va="center",
            fontsize="x-small",
            color="#666666",
        )
    for axis in (a for a in (hist, ecdf) if a is not None):
        axis.set_xlabel("end-to-end latency (ms)")
        if log:
            axis.set_xscale("log")
        axis.grid(True, color="#e5e5e5", lw=0.6)
        axis.set_axisbelow(True)
    ecdf.set_ylabel("fraction of instances (ECDF)")
    ecdf.set_ylim(0, 1.01)
    ecdf.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize="x-small", frameon=False)
    if hist is not None:
        hist.set_ylabel("instances")
        hist.legend(fontsize="small")
        hist.set_title(f"{results.saga}: {results.runs:,} runs", fontsize="medium", loc="left")
    return figure


def _ms(value: float) -> str:
    """A duration for people: ``1,234 ms`` below 10 s (and for ms that are not whole tenths of
    a second), seconds above."""
    if value >= 10_000 or (value >= 1_000 and value % 100 == 0):
        return f"{value / 1000:,.3g} s"
    return f"{value:,.0f} ms"


# --- traces and time ---------------------------------------------------------------------------


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
    figure, ax = _axes(ax, (7.0, max(3.0, 0.22 * len(traces) + 1.8)))
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

    >>> from sagasim.model import Saga, Step, Arrivals
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
    figure, ax = _axes(ax)
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
        label=f"{what} rate per {_ms(window_ms)} window",
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
