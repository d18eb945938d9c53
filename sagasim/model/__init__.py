"""The saga as data: frozen value objects and the whole-model rules they obey.

Nothing here reads files, compiles or runs anything, and nothing here imports the rest of
sagasim: :mod:`sagasim.io` builds these objects from YAML or Python, and every later stage
reads them.

>>> from sagasim.model import Saga, Step, validate
>>> validate(Saga(name="s", steps=(Step(name="a"),)))
"""

from .latency import Constant, Empirical, Exponential, Latency, LogNormal, Normal, Uniform
from .saga import (
    RESERVED_NAMES,
    Action,
    Arrivals,
    Broker,
    Compensation,
    Entry,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
    replace,
    validate,
)

__all__ = [
    "RESERVED_NAMES",
    "Action",
    "Arrivals",
    "Broker",
    "Compensation",
    "Constant",
    "Empirical",
    "Entry",
    "Exponential",
    "Latency",
    "LogNormal",
    "Normal",
    "Outage",
    "Parallel",
    "Retry",
    "Saga",
    "Service",
    "Step",
    "Uniform",
    "replace",
    "validate",
]
