"""Reading and writing models: YAML text with line numbers, checked plain data, the Python DSL,
``--set`` overrides and the JSON Schema.

Every problem is one :class:`~sagasim.exceptions.SagaDefinitionError` naming the file, the line
and the path (``steps[2].retry.attempts``), what was expected and what was found.

>>> from sagasim.io import loads
>>> loads("saga: s\\nsteps: [{name: a, failure: 0.1}]").steps[0].failure
0.1
"""

from .format import dumps, from_dict, json_schema, load, loads, parse_yaml, to_dict
from .overrides import apply_overrides
from .values import parse_duration

__all__ = [
    "apply_overrides",
    "dumps",
    "from_dict",
    "json_schema",
    "load",
    "loads",
    "parse_duration",
    "parse_yaml",
    "to_dict",
]
