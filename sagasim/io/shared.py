"""Reading and writing the keys of many instances at once: ``resources``, ``isolation``,
``reads`` and ``writes`` (DESIGN.md, "Many instances at once").

In a file, isolation may be given per resource (``resources: {seats: {isolation: version}}``)
or in the top-level ``isolation`` mapping, as DESIGN.md shows; :func:`with_isolation` merges the
second into the first, and a model is always written the first way.

>>> read_writes({"seats": "set", "stock": {"mode": "add", "by": -2}}, "steps[0].writes")
(Write(resource='seats', mode='set', by=1.0), Write(resource='stock', mode='add', by=-2.0))
>>> write_writes(_)
{'seats': 'set', 'stock': {'mode': 'add', 'by': -2}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model.data import ISOLATIONS, Isolation, Resource, Write
from .values import (
    Field,
    each,
    expected,
    named,
    one_of,
    read_fields,
    read_identifier,
    read_label,
    read_number,
    write_fields,
)

__all__ = [
    "read_isolation",
    "read_reads",
    "read_resources",
    "read_writes",
    "with_isolation",
    "write_resources",
    "write_writes",
]

read_mode = one_of("set", "add")
read_isolation_mode = one_of(*ISOLATIONS)
read_reads = each(read_identifier, "a list of resource names")


def _number(value: float) -> int | float:
    """A number as YAML shows it: whole ones without ``.0`` (an int from Python too)."""
    return int(value) if float(value).is_integer() else float(value)


_WRITE: list[Field] = [
    ("mode", "mode", read_mode, str),
    ("by", "by", read_number, _number),
]
_WRITE_WHAT = "'set', 'add' or a mapping such as {mode: add, by: -1}"


def read_writes(value: object, path: str) -> tuple[Write, ...]:
    """``{RESOURCE: set | add | {mode, by}}`` as writes, in the order written."""
    if not isinstance(value, dict):
        raise expected("a mapping from resource name to 'set' or 'add'", value, path)
    writes = []
    for name, spec in value.items():
        at = f"{path}.{name}"
        resource = read_label(name, at)
        if isinstance(spec, str):
            writes.append(Write(resource=resource, mode=read_mode(spec, at)))
        elif isinstance(spec, dict):
            writes.append(Write(resource=resource, **read_fields(spec, at, _WRITE, _WRITE_WHAT)))
        else:
            raise expected(_WRITE_WHAT, spec, at)
    return tuple(writes)


def write_writes(writes: tuple[Write, ...]) -> dict[str, Any]:
    return {
        w.resource: w.mode if w.by == 1 else {"mode": w.mode, "by": _number(w.by)} for w in writes
    }


_RESOURCE: list[Field] = [
    ("initial", "initial", read_number, _number),
    ("isolation", "isolation", read_isolation_mode, str),
    ("on_locked", "on_locked", one_of("wait", "fail"), str),
]


read_resources = named(
    Resource, _RESOURCE, "resource", "a mapping such as {initial: 10}", bare=True
)


def write_resources(resources: tuple[Resource, ...]) -> dict[str, Any]:
    return {r.name: write_fields(r, _RESOURCE) for r in resources}


def read_isolation(value: object, path: str) -> dict[str, Isolation]:
    """The top-level ``isolation`` mapping: resource name -> countermeasure."""
    if not isinstance(value, dict):
        raise expected("a mapping from resource name to " + "|".join(ISOLATIONS), value, path)
    return {
        read_label(k, f"{path}.{k}"): read_isolation_mode(v, f"{path}.{k}")
        for k, v in value.items()
    }


def with_isolation(
    resources: tuple[Resource, ...], isolation: Mapping[str, Isolation]
) -> tuple[Resource, ...]:
    """``resources`` with the top-level ``isolation`` mapping applied; a name it gives that is
    no resource is refused at ``isolation.NAME``."""
    known = {r.name for r in resources}
    for name in isolation:
        if name not in known:
            shown = ", ".join(sorted(known)) or "none are declared"
            raise SagaDefinitionError(
                f"expected a resource declared under resources ({shown}), got {name!r}",
                path=f"isolation.{name}",
            )
    return tuple(
        replace(r, isolation=isolation[r.name]) if r.name in isolation else r for r in resources
    )
