"""Figures of one simulation: outcome shares and latency distributions, side by side for several."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..exceptions import UsageError
from ..machine.orchestration import OUTCOMES
from ..sim.results import Results
from .style import (
    OUTCOME_COLORS,
    figure_and_axes,
    new_figure,
    readable_ms,
    root_figure,
)


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
    figure, ax = figure_and_axes(ax, (min(3.0 + 1.3 * len(designs), 10.0), 4.0))
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
    >>> from sagasim.model import Exponential
    >>> from sagasim.sim import simulate
    >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.2, latency=Exponential(mean_ms=5)),))
    >>> fig = latency_distribution(simulate(saga, runs=300))
    >>> [a.get_xlabel() for a in fig.axes]
    ['end-to-end latency (ms)', 'end-to-end latency (ms)']
    """
    if ax is None:
        figure = new_figure((9.0, 4.0))
        hist, ecdf = figure.subplots(1, 2)
    elif isinstance(ax, Axes):
        figure, hist, ecdf = root_figure(ax), None, ax
    else:
        hist, ecdf = ax
        figure = root_figure(ecdf)
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
        shown = ", ".join(f"p{q} {readable_ms(v)}" for q, v in zip((50, 95, 99), (p50, p95, p99)))
        label = f"{name} (n={values.size:,}): {shown}"
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
