"""Figures of sweeps: rates against one parameter, or a heatmap over two."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..exceptions import UsageError
from ..experiments.grid import INTEGER_KEYS, SweepResult
from .style import (
    OUTCOME_COLORS,
    axis_label,
    figure_and_axes,
    last_key,
)


def sweep_rates(
    result: SweepResult, ax: Axes | None = None, *, stuck: bool | None = None
) -> Figure:
    """Compensation rate against the swept parameter: simulated points with their 95% Wilson
    band, and the exact curve of :func:`sagasim.analysis.analyze` where there is one. The stuck
    rate goes on a right-hand axis (own scale, red) if ``stuck``; by default when any point has
    a stuck instance or a positive exact P(stuck).

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.experiments import sweep
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
    figure, ax = figure_and_axes(ax)
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
    ax.set_xlabel(axis_label(path))
    ax.set_ylabel("compensation rate (%)")
    ax.set_ylim(bottom=0)
    if last_key(path) in INTEGER_KEYS:
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
    >>> from sagasim.experiments import sweep
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
    figure, ax = figure_and_axes(ax, (7.0, 5.0))
    percent = column.endswith(("_rate", "ci_low", "ci_high", "probability", "exact_stuck"))
    cells = result.grid(column) * (100 if percent else 1)
    image = ax.imshow(cells, origin="lower", aspect="auto", cmap="viridis")
    bar = figure.colorbar(image, ax=ax, pad=0.02)
    label = column.replace("_", " ")
    bar.set_label(f"{label} (%)" if percent else label)
    rows, cols = result.values
    ax.set_xticks(range(len(cols)), [f"{v:g}" for v in cols])
    ax.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
    ax.set_xlabel(axis_label(result.parameters[1]))
    ax.set_ylabel(axis_label(result.parameters[0]))
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
