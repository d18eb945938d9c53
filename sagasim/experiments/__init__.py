"""Exploring designs: a grid of parameter values simulated (and analysed) point by point, and a
saga's orchestrated and choreographed forms compared on the same workload.
"""

from .comparison import Comparison, compare
from .grid import SweepResult, parse_vary, sweep

__all__ = ["Comparison", "SweepResult", "compare", "parse_vary", "sweep"]
