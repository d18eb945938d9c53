"""Helpers for testing sagas and traces in your own test suite.

A trace is a list of events ``ACTION.KIND`` as ``check`` prints them. :func:`replay` runs one
through the real python-statemachine class of the saga (late landings are the participants'
business, not the orchestrator's, so they are skipped) and returns the state it ends in.

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="t", steps=(
...     Step(name="a", compensation=Compensation(name="undo_a")),
...     Step(name="b", reject=0.5),
... ))
>>> replay(saga, ["a.ok", "b.reject", "undo_a.ok"])
'compensated'
>>> ends_in(saga, ["a.ok", "b.ok"], "committed")
True
>>> events_of(["a.ok", "b.reject", "undo_a.ok"], "undo_a")
['ok']
"""

from __future__ import annotations

from collections.abc import Sequence

from .machine import compile_saga
from .model import Saga

#: Trace events that belong to the participants, not to the orchestrator's machine (a call
#: in doubt after a coordinator crash ``landed`` or was ``lost``: the participant's side).
PARTICIPANT_EVENTS = frozenset({"late_ok", "late_fail", "landed", "lost"})


def replay(saga: Saga, trace: Sequence[str]) -> str:
    """Send every orchestrator event of ``trace`` to a live machine; return its final state id."""
    machine = compile_saga(saga)
    live = machine.instantiate(saga)
    for event in trace:
        if event.rsplit(".", 1)[1] in PARTICIPANT_EVENTS:
            continue
        live.send(event)
    (state,) = live.configuration
    return str(state.id)


def ends_in(saga: Saga, trace: Sequence[str], outcome: str) -> bool:
    """Whether ``trace`` drives the saga's machine into the end state ``outcome``."""
    return compile_saga(saga).states[replay(saga, trace)].outcome == outcome


def events_of(trace: Sequence[str], action: str) -> list[str]:
    """The kinds of event ``action`` saw, in order (``["timeout", "ok"]``)."""
    return [e.rsplit(".", 1)[1] for e in trace if e.rsplit(".", 1)[0] == action]
