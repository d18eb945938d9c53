"""What every figure shares: a Figure made without pyplot, the outcome colours, axis labels of
swept parameters and 95% Wilson bands."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from ..experiments.grid import DURATION_KEYS

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


def new_figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def root_figure(ax: Axes) -> Figure:
    figure: Any = ax.figure
    while isinstance(figure, SubFigure):
        figure = figure.figure
    assert isinstance(figure, Figure)
    return figure


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    if ax is not None:
        return root_figure(ax), ax
    figure = new_figure(figsize)
    return figure, figure.add_subplot()


def last_key(path: str) -> str:
    return re.split(r"[.\[\]]", path.rstrip("]"))[-1]


#: The unit of a swept parameter, by the last key of its path.
UNITS = {"failure": "probability", "reject": "probability", "capacity": "concurrent calls"}
UNITS |= {"attempts": "attempts", "rate": "instances/s"} | dict.fromkeys(DURATION_KEYS, "ms")


def axis_label(path: str) -> str:
    """The axis label of a swept parameter: its path and its unit."""
    unit = UNITS.get(last_key(path))
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


def readable_ms(value: float) -> str:
    """A duration for people: ``1,234 ms`` below 10 s (and for ms that are not whole tenths of
    a second), seconds above."""
    if value >= 10_000 or (value >= 1_000 and value % 100 == 0):
        return f"{value / 1000:,.3g} s"
    return f"{value:,.0f} ms"
