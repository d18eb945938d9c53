"""sagasim: model, check and simulate sagas.

The public API, imported on first use so that ``sagasim --help`` starts fast:

>>> import sagasim
>>> saga = sagasim.load("models/order_fulfillment.yaml")
>>> sagasim.check(saga).consistent
True
>>> round(sagasim.analyze(saga, sensitivity=False).outcomes["committed"], 6)
0.921331
>>> sagasim.simulate(saga, runs=1_000, seed=1).runs
1000
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .check import check  # eager: the submodule of the same name would shadow a lazy one
from .exceptions import SagaDefinitionError, SagaSimError
from .model import Saga

if TYPE_CHECKING:
    from .analysis import analyze
    from .comparison import compare
    from .importers import load_any as load
    from .machine import compile_saga
    from .render import draw
    from .sim import simulate

__version__ = "0.1.0"
__all__ = [
    "Saga",
    "SagaDefinitionError",
    "SagaSimError",
    "__version__",
    "analyze",
    "check",
    "compare",
    "compile_saga",
    "draw",
    "load",
    "simulate",
]

_LAZY = {
    "analyze": ("analysis", "analyze"),
    "compare": ("comparison", "compare"),
    "compile_saga": ("machine", "compile_saga"),
    "draw": ("render", "draw"),
    "load": ("importers", "load_any"),
    "simulate": ("sim", "simulate"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sagasim' has no attribute {name!r}")
