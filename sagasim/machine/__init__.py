"""The compiled state machines, the single source of truth of what a saga does.

An orchestrated saga compiles to one python-statemachine class, a choreographed one to one
class per service; both come with the transition table taken from those classes, which every
later stage reads. :mod:`~sagasim.machine.participants` is the services' side (effects landing,
late landings, undos), written once for ``check`` and ``simulate``.
"""

from .choreography import Choreography, compile_choreography
from .orchestration import CONSISTENT, EVENT_KINDS, OUTCOMES, Machine, Transition, compile_saga
from .participants import ANOMALIES, Participants

__all__ = [
    "ANOMALIES",
    "CONSISTENT",
    "EVENT_KINDS",
    "OUTCOMES",
    "Choreography",
    "Machine",
    "Participants",
    "Transition",
    "compile_choreography",
    "compile_saga",
]
