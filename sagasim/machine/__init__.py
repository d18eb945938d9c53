"""The compiled state machines, the single source of truth of what a saga does.

An orchestrated saga compiles to one python-statemachine class, a choreographed one to one
class per service; both come with the transition table taken from those classes, which every
later stage reads. :mod:`~sagasim.machine.program` gives the saga they run (:func:`core`: maps
unrolled) and its decisions, :mod:`~sagasim.machine.control` the control flow the compiler
walks. :mod:`~sagasim.machine.participants` is the services' side (effects landing, late
landings, undos), written once for ``check`` and ``simulate``.
"""

from .choreography import Choreography, compile_choreography
from .orchestration import (
    CONSISTENT,
    EVENT_KINDS,
    OUTCOMES,
    Machine,
    StateInfo,
    Transition,
    compile_saga,
)
from .participants import ANOMALIES, Participants
from .program import branch_labels, core, decision_events, ends

__all__ = [
    "ANOMALIES",
    "CONSISTENT",
    "EVENT_KINDS",
    "OUTCOMES",
    "Choreography",
    "Machine",
    "Participants",
    "StateInfo",
    "Transition",
    "branch_labels",
    "compile_choreography",
    "compile_saga",
    "core",
    "decision_events",
    "ends",
]
