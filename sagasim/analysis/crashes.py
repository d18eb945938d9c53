"""What coordinator crashes do, exactly: the crash state space as an absorbing Markov chain.

:func:`~sagasim.verify.crashes.explore_crashes` (with the crashes after outcome records) gives
the states; docs/concurrency.md, "The coordinator crashes", the probabilities. Each attempt of
an action, while fewer than ``max_crashes`` crashes have happened, is followed by a crash after
its start record with probability ``c`` (``coordinator.crash``); the call in doubt then landed
with the probability that its attempt ends ``ok`` (1 for the re-run of an idempotent call that
landed), and recovery resumes. Otherwise the attempt ends by its ``attempt_outcomes``, and a
crash after the outcome record follows with probability ``c``, changing nothing but the budget.
Choices take no log writes.

One sparse LU of ``I - Q`` gives the expected visits from the start, and so P(each end state):
the outcomes, the anomalies their ledgers hold, whether a crash happened on the way, and the
probability of entering a compensation (under ``backward``, crashes start compensations too).

Where several calls are in flight at once (parallel groups, parallel compensation), which of
them a crash falls after depends on timing: no numbers then (:attr:`CrashEffects.exact` is
False and a note says where). Where a timed-out call may land late, the anomalies depend on
timing too; the outcomes do not.

Examples
--------
>>> from sagasim.model import Coordinator, Saga, Step
>>> saga = Saga(name="s", steps=(Step(name="a", failure=0.1),),
...             coordinator=Coordinator(crash=0.01, recovery="forward"))
>>> effects = crash_effects(saga)
>>> round(effects.duplicate_effect, 12)      # c (1 - f)**2: it landed, and the re-run is ok
0.0081
>>> round(effects.late_leak, 12)             # c (1 - f) f: it landed, and the re-run fails
0.0009
>>> round(effects.crash, 12)                 # at the start record, or after the outcome's
0.0199
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from ..exceptions import SagaSimError
from ..machine import OUTCOMES, branch_labels, core, ends
from ..machine.orchestration import CRASH
from ..model import Choice, Saga, validate, walk
from ..verify.crashes import LANDED, LOST, CrashSpace, can_crash, explore_crashes
from .chain import _reach, races_of

__all__ = ["CrashEffects", "crash_effects"]

#: The anomalies whose probability the chain gives (an empty compensation is harmless).
ANOMALIES = ("duplicate_effect", "hanging", "late_leak")


@dataclass(frozen=True, slots=True)
class CrashEffects:
    """P(outcome), P(compensation) and P(anomaly) of one saga with its coordinator's crashes,
    and P(``crash``: at least one crash). ``exact`` is False where no numbers could be given
    (every probability None, ``notes`` say why); anomalies alone are None where they depend on
    timing. ``fails`` gives P(end state) by fail name, for sagas with fail entries."""

    recovery: str
    exact: bool
    crash: float | None
    outcomes: dict[str, float] | None
    compensation_probability: float | None
    anomalies: dict[str, float | None]
    states: int
    transitions: int
    notes: tuple[str, ...] = ()
    fails: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def duplicate_effect(self) -> float | None:
        return self.anomalies["duplicate_effect"]

    @property
    def late_leak(self) -> float | None:
        return self.anomalies["late_leak"]

    def to_dict(self) -> dict[str, Any]:
        """The ``crashes`` entry of ``analyze --json``."""
        return {
            "recovery": self.recovery,
            "duplicate_effect": self.duplicate_effect,
            "late_leak": self.late_leak,
            "crash": self.crash,
        }


def crash_effects(saga: Saga) -> CrashEffects:
    """The exact effects of coordinator crashes on ``saga`` (see the module docstring).

    Raises :class:`SagaSimError` when the coordinator cannot crash, or when an action can retry
    forever (no end state reachable).
    """
    validate(saga)
    if not can_crash(saga):
        raise SagaSimError(f"{saga.name}: its coordinator cannot crash (no coordinator.crash > 0)")
    return effects_of(core(saga))


def effects_of(saga: Saga) -> CrashEffects:
    """:func:`crash_effects` of a valid core saga (:func:`sagasim.machine.core`) whose
    coordinator can crash."""
    coordinator = saga.coordinator
    assert coordinator is not None
    recovery = coordinator.recovery
    late = [a.name for a in saga.actions() if saga.may_land_late(a)]
    space = explore_crashes(saga, participants=not late, after_outcome=True)
    size = (len(space.nodes), len(space.edges))
    racing = _racing(saga, space)
    if racing:
        note = (
            f"crash effects not computed: in {' and '.join(racing)} several calls are in "
            "flight at once, and which of them a crash falls after depends on timing; see "
            "simulate"
        )
        unknown = dict.fromkeys(ANOMALIES, None)
        return CrashEffects(recovery, False, None, None, None, unknown, *size, (note,))
    p = _probabilities(saga, space, coordinator.crash)
    visits, into_end = _solve(saga, space, p)
    end_mass: dict[int, float] = {}
    for e in into_end:
        target = space.edges[e][1]
        end_mass[target] = end_mass.get(target, 0.0) + float(visits[space.edges[e][0]] * p[e])
    outcomes = dict.fromkeys(OUTCOMES, 0.0)
    anomalies: dict[str, float | None] = dict.fromkeys(ANOMALIES, 0.0)
    crashed = 0.0
    names = ends(saga)
    fails = {name: dict.fromkeys(OUTCOMES, 0.0) for name in names}
    for node, mass in end_mass.items():
        outcome, found = space.ends[node]
        outcomes[outcome] += mass
        for anomaly in found:
            if anomaly in anomalies:
                anomalies[anomaly] = (anomalies[anomaly] or 0.0) + mass
        if space.crashes[node]:
            crashed += mass
        fail = space.machine.states[space.nodes[node][0]].fail
        if fail is not None:
            fails[fail][outcome] += mass
    notes: list[str] = []
    if late:
        anomalies = dict.fromkeys(ANOMALIES, None)
        notes.append(
            f"crash anomalies depend on timing ({', '.join(late)} may land after a timeout); "
            "see simulate"
        )
    return CrashEffects(
        recovery=recovery,
        exact=True,
        crash=crashed,
        outcomes=outcomes,
        compensation_probability=_compensation(space, visits, p),
        anomalies=anomalies,
        states=size[0],
        transitions=size[1],
        notes=tuple(notes),
        fails=fails,
    )


def _racing(saga: Saga, space: CrashSpace) -> list[str]:
    """The parallel groups (or the parallel compensation) in which several calls are in flight
    in some reachable state."""
    races = races_of(saga)
    found = {sid for sid, _, _ in space.nodes if sid in races}
    return list(dict.fromkeys(races[sid][1] for sid in sorted(found)))


def _probabilities(saga: Saga, space: CrashSpace, c: float) -> np.ndarray:
    """The probability of each edge of ``space`` (one call in flight at a time)."""
    outcomes = {a.name: a.attempt_outcomes for a in saga.actions()}
    branches = {
        choice.name: dict(zip(branch_labels(choice), choice.probabilities))
        for choice in walk(saga.steps)
        if isinstance(choice, Choice)
    }
    states, most = space.machine.states, space.max_crashes
    p = np.empty(len(space.edges))
    for e, (source, _, action, kind) in enumerate(space.edges):
        forced = space.forced[source] == action
        if action in branches:  # (a branch may be labelled landed or lost)
            p[e] = branches[action][kind]
        elif kind == CRASH:
            p[e] = c
        elif kind in (LANDED, LOST):
            ok = 1.0 if forced else outcomes[action]["ok"]
            p[e] = ok if kind == LANDED else 1.0 - ok
        else:
            chance = 1.0 if forced else outcomes[action][kind]
            sid = space.nodes[source][0]
            if space.crashes[source] < most and states[sid].decision is None:
                chance *= (1.0 - c) * (c if space.after[e] else 1.0 - c)
            p[e] = chance
    return p


def _solve(saga: Saga, space: CrashSpace, p: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Expected visits of every state from the start (0 for end states), and the edges into
    end states; raise when an action retries forever."""
    n = len(space.nodes)
    src = np.array([s for s, _, _, _ in space.edges], dtype=np.int64)
    dst = np.array([d for _, d, _, _ in space.edges], dtype=np.int64)
    live = p > 0
    end = np.zeros(n, dtype=bool)
    end[list(space.ends)] = True
    reached = _reach(src[live], dst[live], [0], n)
    ending = _reach(dst[live], src[live], np.flatnonzero(end), n)
    trapped = np.flatnonzero(reached & ~ending)
    if len(trapped):
        running = space.machine.states[space.nodes[int(trapped[0])][0]].running
        raise SagaSimError(
            f"{saga.name}: {' and '.join(running)} retries forever: no end state is reachable"
        )
    transient = reached & ~end
    position = np.full(n, -1)
    position[transient] = np.arange(int(transient.sum()))
    inner = live & transient[src] & transient[dst]
    m = int(transient.sum())
    rows, cols = position[src[inner]], position[dst[inner]]
    diagonal = np.arange(m)
    i_minus_q = sparse.csc_matrix(
        (np.r_[-p[inner], np.ones(m)], (np.r_[rows, diagonal], np.r_[cols, diagonal])),
        shape=(m, m),
    )
    start = np.zeros(m)
    start[position[0]] = 1.0
    solved = splu(i_minus_q).solve(start, trans="T")
    visits = np.zeros(n)
    visits[transient] = solved
    into_end = np.flatnonzero(live & transient[src] & end[dst])
    return visits, [int(e) for e in into_end]


def _compensation(space: CrashSpace, visits: np.ndarray, p: np.ndarray) -> float:
    """P(the saga enters a compensation): the mass of edges from a state not compensating
    into one compensating, as :mod:`~sagasim.analysis.chain` counts it."""
    states = space.machine.states
    compensating = [states[sid].phase == "compensating" for sid, _, _ in space.nodes]
    return float(
        sum(
            visits[s] * p[e]
            for e, (s, d, _, _) in enumerate(space.edges)
            if compensating[d] and not compensating[s]
        )
    )
