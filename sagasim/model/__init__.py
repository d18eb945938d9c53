"""The saga as data: frozen value objects and the whole-model rules they obey.

Nothing here reads files, compiles or runs anything, and nothing here imports the rest of
sagasim: :mod:`sagasim.io` builds these objects from YAML or Python, and every later stage
reads them.

>>> from sagasim.model import Saga, Step, validate
>>> validate(Saga(name="s", steps=(Step(name="a"),)))
"""

from .data import ISOLATIONS, Coordinator, Resource, Write
from .latency import Constant, Empirical, Exponential, Latency, LogNormal, Normal, Uniform
from .rules import validate
from .saga import (
    NESTING,
    RESERVED_NAMES,
    Action,
    Arrivals,
    Branch,
    Broker,
    Choice,
    Compensation,
    Entry,
    Fail,
    Goto,
    Map,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
    SubSaga,
    Succeed,
    blocks_of,
    rebuild,
    replace,
    walk,
)

__all__ = [
    "ISOLATIONS",
    "NESTING",
    "RESERVED_NAMES",
    "Action",
    "Arrivals",
    "Branch",
    "Broker",
    "Choice",
    "Compensation",
    "Constant",
    "Coordinator",
    "Empirical",
    "Entry",
    "Exponential",
    "Fail",
    "Goto",
    "Latency",
    "LogNormal",
    "Map",
    "Normal",
    "Outage",
    "Parallel",
    "Resource",
    "Retry",
    "Saga",
    "Service",
    "Step",
    "SubSaga",
    "Succeed",
    "Uniform",
    "Write",
    "blocks_of",
    "rebuild",
    "replace",
    "validate",
    "walk",
]
