"""What can happen: every reachable state of the compiled machine with the participants' side,
each end state classified, the shortest trace to each bad one, and the design lints.

:mod:`~sagasim.verify.statespace` explores an orchestrated saga,
:mod:`~sagasim.verify.choreography` a choreographed one with the broker's messages in flight,
:mod:`~sagasim.verify.interleave` many instances over the resources they share;
:mod:`~sagasim.verify.verdicts` turns what they find into a :class:`CheckReport`.
"""

from .choreography import ChoreographySpace, explore_choreography
from .interleave import InterleavedSpace, explore_instances
from .statespace import DEFAULT_MAX_STATES, StateSpace, explore
from .verdicts import VIOLATION_KINDS, CheckReport, Violation, Warning, check, lint

__all__ = [
    "DEFAULT_MAX_STATES",
    "VIOLATION_KINDS",
    "CheckReport",
    "ChoreographySpace",
    "InterleavedSpace",
    "StateSpace",
    "Violation",
    "Warning",
    "check",
    "explore",
    "explore_choreography",
    "explore_instances",
    "lint",
]
