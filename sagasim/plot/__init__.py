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

from .outcomes import latency_distribution, outcome_bars
from .style import OUTCOME_COLORS, wilson
from .sweeps import sweep_heatmap, sweep_rates
from .timeline import rate_over_time, timeline

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
