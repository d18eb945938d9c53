"""sagasim: model, check and simulate sagas.

The public API, imported on first use so that ``import sagasim`` and ``sagasim --help`` start
fast (no SimPy, numpy, scipy or matplotlib until a name needs them):

>>> import sagasim
>>> saga = sagasim.load("models/order_fulfillment.yaml")
>>> sagasim.check(saga).consistent
True
>>> round(sagasim.analyze(saga, sensitivity=False).outcomes["committed"], 6)
0.921331
>>> sagasim.simulate(saga, runs=1_000, seed=1).runs
1000

The package is the pipeline, one stage a subpackage, each importing only the stages before it:
``model`` → ``io`` → ``interop`` → ``machine`` → ``verify`` → ``analysis`` → ``sim`` →
``experiments`` → ``plot`` → ``viz`` → ``cli``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from .exceptions import SagaDefinitionError, SagaSimError
from .model import Saga

if TYPE_CHECKING:
    from .analysis import analyze
    from .experiments import compare
    from .interop import load_any as load
    from .machine import compile_saga
    from .sim import simulate
    from .verify import check
    from .viz import draw

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

#: Where each lazily loaded public name lives. No subpackage shares a public function's name,
#: so importing one never shadows a name here.
_LAZY = {
    "analyze": ("analysis", "analyze"),
    "check": ("verify", "check"),
    "compare": ("experiments", "compare"),
    "compile_saga": ("machine", "compile_saga"),
    "draw": ("viz", "draw"),
    "load": ("interop", "load_any"),
    "simulate": ("sim", "simulate"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sagasim' has no attribute {name!r}")


def _saga_svg(saga: Saga) -> str:
    from .viz import repr_svg

    return repr_svg(saga)


def _register_notebook_display() -> None:
    """Show a :class:`Saga` as its diagram in Jupyter. The model knows nothing of drawing:
    IPython's SVG formatter is told about the class by name, and draws through :mod:`sagasim.viz`
    only when a saga is displayed."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        formatter = shell.display_formatter.formatters["image/svg+xml"]
        formatter.for_type_by_name("sagasim.model.saga", "Saga", _saga_svg)


_register_notebook_display()
