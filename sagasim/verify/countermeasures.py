"""The lint of interleaved instances: for each isolation anomaly ``check`` reached on a resource,
the cheapest countermeasure that removes it (docs/concurrency.md's table, tried in the order
``add`` writes, ``reread``, ``version``, ``semantic_lock``), each re-checked by exploring the
interleavings again with it applied; for a deadlock, whether ``on_locked: fail`` ends it.

Examples
--------
>>> from sagasim.model import Compensation, Resource, Saga, Step, Write
>>> saga = Saga(name="s", resources=(Resource(name="seats"),), instances=2, steps=(
...     Step(name="count", effects=False, reads=("seats",)),
...     Step(name="book", writes=(Write(resource="seats", by=-1),)),
... ))
>>> space = explore_instances(saga)
>>> for warning in interleaving_lint(saga, space):  # doctest: +NORMALIZE_WHITESPACE
...     print(warning.message)
lost_update on seats: add writes (mode: add on every write of seats) remove it
(re-checked with 2 instances)
"""

from __future__ import annotations

from dataclasses import replace

from ..exceptions import StateSpaceLimitError
from ..model import ISOLATIONS, Entry, Resource, Saga, Step, SubSaga, Write, rebuild
from ..model.data import Isolation
from .interleave import InterleavedSpace, explore_instances
from .lint import Warning
from .statespace import DEFAULT_MAX_STATES

__all__ = ["MEASURES", "applied", "interleaving_lint"]

#: The countermeasures, cheapest first (``add`` is a write mode, the others isolations).
MEASURES = ("add", "reread", "version", "semantic_lock")
ISOLATION_OF: dict[str, Isolation] = {name: name for name in ISOLATIONS}
#: The anomalies switching to ``add`` writes can remove (a read can still be dirty).
ADD_REMOVES = frozenset({"lost_update", "stale_compensation"})


def interleaving_lint(
    saga: Saga, space: InterleavedSpace, *, max_states: int = DEFAULT_MAX_STATES
) -> list[Warning]:
    """The warnings of the interleaving: how it explored a choreography, and a
    ``countermeasure`` warning for each anomaly (and deadlock) found on a resource."""
    warnings = []
    if saga.coordination == "choreography":
        warnings.append(
            Warning(
                "interleaved-orchestration",
                f"the {space.instances} instances were interleaved on the orchestrated form of "
                "this choreography: over a perfect broker each instance runs its steps in the "
                "same order, so the same anomalies are reachable.",
            )
        )
    checked: dict[tuple[str, str], InterleavedSpace | None] = {}

    def recheck(name: str, measure: str) -> InterleavedSpace | None:
        if (name, measure) not in checked:
            try:
                checked[name, measure] = explore_instances(
                    applied(saga, name, measure), max_states=max_states
                )
            except StateSpaceLimitError:
                checked[name, measure] = None
        return checked[name, measure]

    resources = {r.name: r for r in saga.all_resources()}
    again = f"re-checked with {space.instances} instances"
    for kind, names in space.reachable().items():
        for name in names:
            if kind == "deadlock":
                if name:
                    warnings.append(_deadlock(name, recheck(name, "on_locked_fail"), again))
                continue
            tried, unknown = [], []
            for measure in _candidates(saga, kind, resources[name]):
                tried.append(measure)
                result = recheck(name, measure)
                if result is None:
                    unknown.append(measure)
                elif (kind, name) not in result.first:
                    warnings.append(
                        Warning("countermeasure", _removes(kind, name, measure, result, again))
                    )
                    break
            else:
                limit = (
                    f"; {', '.join(unknown)} went past --max-states, so could not be re-checked"
                    if unknown
                    else ""
                )
                message = (
                    f"{kind} on {name}: none of {', '.join(tried)} removes it ({again}){limit}"
                )
                warnings.append(Warning("countermeasure", message))
    return warnings


def _candidates(saga: Saga, kind: str, resource: Resource) -> list[str]:
    """The countermeasures to try, cheapest first: those not already in place, and ``add`` only
    where it can help."""
    modes = {w.mode for a in saga.actions() for w in a.writes if w.resource == resource.name}
    found = []
    for measure in MEASURES:
        if measure == "add":
            if kind in ADD_REMOVES and "set" in modes:
                found.append(measure)
        elif measure != resource.isolation:
            found.append(measure)
    return found


def _removes(kind: str, name: str, measure: str, result: InterleavedSpace, again: str) -> str:
    if measure == "add":
        return (
            f"{kind} on {name}: add writes (mode: add on every write of {name}) remove it ({again})"
        )
    message = f"{kind} on {name}: isolation {measure} removes it ({again})"
    if result.ends["deadlock"]:
        message += ", but instances waiting on its lock can then deadlock: set on_locked: fail"
    if kind == "dirty_read":  # not re-checked: it reorders the saga, which only its author can
        message += (
            "; without waits: write after the pivot, so that no write is ever undone "
            "(Richardson's pessimistic view)"
        )
    return message


def _deadlock(name: str, result: InterleavedSpace | None, again: str) -> Warning:
    if result is None:
        outcome = "could not be re-checked within --max-states"
    elif ("deadlock", name) in result.first or result.ends["deadlock"]:
        outcome = f"does not remove it ({again})"
    else:
        outcome = f"removes it ({again}): a refused attempt fails transiently and is retried"
    message = (
        f"deadlock on {name}: instances wait on each other's semantic lock; on_locked: fail "
        + outcome
    )
    return Warning("countermeasure", message)


def applied(saga: Saga, name: str, measure: str) -> Saga:
    """``saga`` with a countermeasure applied to resource ``name``: ``add`` (every write of it
    in mode add), an isolation, or ``on_locked_fail``.

    >>> from sagasim.model import Resource, Saga, Step, Write
    >>> saga = Saga(name="s", resources=(Resource(name="r"),),
    ...             steps=(Step(name="a", writes=(Write(resource="r"),)),))
    >>> applied(saga, "r", "version").resources[0].isolation
    'version'
    >>> applied(saga, "r", "add").steps[0].writes[0].mode
    'add'
    """
    if measure == "add":

        def switch(writes: tuple[Write, ...]) -> tuple[Write, ...]:
            return tuple(replace(w, mode="add") if w.resource == name else w for w in writes)

        def change(entry: Entry) -> Entry:
            if isinstance(entry, (Step, SubSaga)) and entry.compensation is not None:
                entry = replace(
                    entry,
                    compensation=replace(
                        entry.compensation, writes=switch(entry.compensation.writes)
                    ),
                )
            if isinstance(entry, Step):
                entry = replace(entry, writes=switch(entry.writes))
            return entry

        return replace(saga, steps=rebuild(saga.steps, change))
    resource = next(r for r in saga.all_resources() if r.name == name)
    if measure == "on_locked_fail":
        changed = replace(resource, on_locked="fail")
    else:
        changed = replace(resource, isolation=ISOLATION_OF[measure])
    # an outer declaration of a name wins over a sub-saga's (Saga.all_resources)
    outer = tuple(changed if r.name == name else r for r in saga.resources)
    if changed not in outer:
        outer = (*outer, changed)
    return replace(saga, resources=outer)
