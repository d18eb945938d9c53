"""Exact probabilities and expected latencies of a saga: its state space as a Markov chain.

:func:`analyze` reads the orchestrator's explored state space (:func:`sagasim.verify.explore`)
as an absorbing Markov chain. One action running moves by its ``attempt_outcomes``; several
(parallel branches or compensations) race. Exponential latencies without timeout or backoff race
exactly (``rate / sum of rates``); other races are weighted by ``1 / E[min(L, timeout)]`` and
solved again with random weights: if the answers agree to 1e-12 the order does not matter and
they are exact, otherwise ``exact`` is False and a note names the group. One sparse LU of
``I - Q`` gives the expected visits, the absorption probabilities and, as a semi-Markov chain
with an expected duration on each transition, ``E[T 1{outcome}]``.

Examples
--------
>>> from sagasim.model import Compensation, Retry, Saga, Step
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", failure=0.1, retry=Retry(attempts=2),
...          compensation=Compensation(name="release", failure=0.5)),
...     Step(name="charge", kind_declared="pivot", reject=0.2),
... ))
>>> result = analyze(saga)
>>> {k: round(v, 6) for k, v in result.outcomes.items()}    # 0.99 * 0.8 and 0.99 * 0.2 / 2
{'committed': 0.792, 'compensated': 0.109, 'leaked': 0.0, 'stuck': 0.099}
>>> round(result.compensation_probability, 6), result.exact
(0.198, True)
>>> result.sensitivity[0].parameter
'charge.reject'
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, field, replace
from typing import Any

import numpy as np

from ..exceptions import SagaSimError, StateSpaceLimitError
from ..machine import EVENT_KINDS, OUTCOMES, branch_labels, core, ends
from ..model import Action, Entry, Saga, Step, SubSaga, rebuild, validate
from ..verify.crashes import can_crash
from ..verify.statespace import explore
from .chain import Absorbed, Chain, agrees, latencies, races_of, table_of
from .crashes import CrashEffects, effects_of

__all__ = ["Analysis", "Sensitivity", "analyze"]

ANOMALIES = ("duplicate_effect", "hanging", "late_leak")
#: Step of the central finite differences of the sensitivity ranking.
STEP = 1e-6
SIGNIFICANT_DIGITS = 12
OK, FAIL, REJECT, TIMEOUT = range(len(EVENT_KINDS))
STUCK = OUTCOMES.index("stuck")
_SENSITIVITY_KEYS = ("parameter", "d_compensation_probability", "d_stuck")
FIELDS = ("failure", "reject")  # probabilities the sensitivity ranking varies
CONCURRENCY_NOTE = (
    "concurrency anomalies (lost updates, dirty reads, stale compensations) depend on timing "
    "and arrivals: see simulate; check explores them with `instances`"
)


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """d(compensation probability) and d P(stuck) per unit of ``parameter``, a ``--set`` path
    (``process_payment.reject``), or per extra attempt for ``retry.attempts``."""

    parameter: str
    d_compensation_probability: float
    d_stuck: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """What :func:`analyze` found. Latencies are in ms: None where not available or the outcome
    is impossible, ``math.inf`` where infinite; anomaly probabilities None where they depend on
    timing (``notes`` say why)."""

    saga: str
    outcomes: dict[str, float]
    compensation_probability: float
    expected_latency_ms: dict[str, float | None]
    exact: bool
    anomalies: dict[str, float | None]
    states: int
    transitions: int
    notes: tuple[str, ...] = ()
    sensitivity: tuple[Sensitivity, ...] = field(default=())
    #: P(end state) by the fail name that led there (sagas with fail entries only).
    fails: dict[str, dict[str, float]] = field(default_factory=dict)
    #: What coordinator crashes do (sagas whose coordinator can crash only).
    crashes: CrashEffects | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of DESIGN.md, floats rounded to 12 significant digits."""
        shape = {
            "saga": self.saga,
            "outcomes": {k: _round(v) for k, v in self.outcomes.items()},
            "compensation_probability": _round(self.compensation_probability),
            "expected_latency_ms": {k: _round(v) for k, v in self.expected_latency_ms.items()},
            "exact": self.exact,
            "notes": list(self.notes),
            "anomalies": {k: _round(v) for k, v in self.anomalies.items()},
            "sensitivity": [
                {k: _round(v) if k[0] == "d" else v for k, v in zip(_SENSITIVITY_KEYS, row)}
                for row in map(astuple, self.sensitivity)
            ],
            "states": self.states,
            "transitions": self.transitions,
        } | ({"fails": self.fails} if self.fails else {})
        if self.crashes is not None:  # only where the coordinator can crash
            crashes = self.crashes.to_dict()
            shape["crashes"] = {k: v if k == "recovery" else _round(v) for k, v in crashes.items()}
        return shape

    def to_text(self, top: int = 5) -> str:
        """A short table for people: outcomes, latencies, the ``top`` sensitivities, notes."""
        lines = [
            f"{self.saga}: {'exact' if self.exact else 'approximate'} analysis of "
            f"{self.states:,} states, {self.transitions:,} transitions",
            f"  {'outcome':<28} {'probability':>12} {'mean latency':>16}",
        ]
        for key, p in (*self.outcomes.items(), ("all", 1.0)):
            lines.append(f"  {key:<28} {p:>12.6g} {_show_ms(self.expected_latency_ms[key]):>16}")
        lines.append(f"  {'compensation probability':<28} {self.compensation_probability:>12.6g}")
        for name, by_outcome in self.fails.items():
            lines.append(f"  {'fail ' + name:<28} {sum(by_outcome.values()):>12.6g}")
        for key, value in self.anomalies.items():
            lines.append(f"  {key:<28} {'see notes' if value is None else f'{value:.6g}':>12}")
        if self.crashes is not None:
            crash = self.crashes.crash
            shown = "see notes" if crash is None else f"{crash:.6g}"
            lines.append(f"  {'crash, ' + self.crashes.recovery + ' recovery':<28} {shown:>12}")
        ranked = [s for s in self.sensitivity if s.d_compensation_probability or s.d_stuck][:top]
        if ranked:
            lines.append(f"  {'what drives compensation':<28} {'d comp':>12} {'d stuck':>16}")
        for s in ranked:
            lines.append(
                f"  {s.parameter:<28} {s.d_compensation_probability:>+12.4g} {s.d_stuck:>+16.4g}"
            )
        return "\n".join([*lines, *(f"  note: {note}" for note in self.notes)])


def analyze(saga: Saga, *, sensitivity: bool = True) -> Analysis:
    """Exact outcome probabilities, compensation probability and expected latencies of ``saga``.

    Raises :class:`SagaSimError` when an action can retry forever (no end state reachable).
    ``sensitivity`` adds the derivatives of the compensation probability and of P(stuck) with
    respect to every failure, reject and bounded attempts parameter, largest first.

    Examples
    --------
    >>> from sagasim.model import Constant
    >>> from sagasim.model import Retry, Saga, Step
    >>> saga = Saga(name="one", steps=(Step(name="call", failure=0.5, latency=Constant(
    ...     value_ms=10.0), retry=Retry(attempts=2, delay_ms=4.0)),))
    >>> result = analyze(saga, sensitivity=False)
    >>> result.outcomes["committed"], result.outcomes["compensated"]
    (0.75, 0.25)
    >>> result.expected_latency_ms["all"]       # 10 ms, then half the time 4 + 10 ms more
    17.0
    >>> result.expected_latency_ms["committed"]  # (0.5 * 10 + 0.25 * 24) / 0.75
    14.666666666666666
    """
    validate(saga)
    saga = core(saga)  # maps unrolled: the actions the machine runs
    notes: list[str] = []
    races = races_of(saga)  # of every machine state; those the saga can reach once explored
    # an unbounded action's growing backoff needs its attempt numbers (when latency is known)
    grows = any(a.retry.unbounded and a.retry.backoff == "exponential" for a in saga.actions())
    timed = grows and all(kind != "general" for kind, _ in races.values())
    space = explore(saga, participants=False, timed=timed)
    visited = {sid for sid, _, _ in space.nodes}
    races = {sid: race for sid, race in races.items() if sid in visited}
    timeless = list(dict.fromkeys(label for kind, label in races.values() if kind == "general"))
    chain = Chain(saga, space, races)
    table = table_of(saga)
    base = chain.solve(table, saga.name)
    exact, guessed = True, sorted({label for k, label in races.values() if k != "exponential"})
    if guessed and not agrees(base, chain.solve(table, saga.name, guessed)):
        exact = False
        culprits = [g for g in guessed if not agrees(base, chain.solve(table, saga.name, {g}))]
        notes.append(
            f"probabilities are approximate: in {' and '.join(culprits or guessed)} the order "
            "in which parallel actions finish changes the result and their latencies are not "
            "memoryless; see simulate"
        )
    latency: dict[str, float | None] = dict.fromkeys(("all", *OUTCOMES), None)
    if not timeless:
        tau, divergent = chain.durations(base.p)
        latency = latencies(chain, base, tau, divergent)
        if math.isinf(latency["all"] or 0.0):
            names = sorted({chain.names[chain.running[n][0]] for n in divergent})
            heavy = sorted(a.name for a in chain.actions if math.isinf(a.latency.mean_ms))
            notes.append(
                f"expected latency is infinite: the exponential backoff of {', '.join(names)} "
                "grows faster than its failures shrink"
                if names
                else f"expected latency is infinite: the latency of {', '.join(heavy)} has no "
                "finite mean"
            )
    else:
        notes.append(
            f"expected latency not available: {' and '.join(timeless)} "
            "races actions whose latencies are not all exponential without timeout or "
            "backoff delay (a phase-type maximum would be needed); see simulate"
        )
    late = [a.name for a in saga.actions() if saga.may_land_late(a)]
    anomalies: dict[str, float | None] = dict.fromkeys(ANOMALIES, None if late else 0.0)
    if late:
        notes.append(
            f"anomaly probabilities depend on timing ({', '.join(late)} may land after a "
            "timeout); see simulate"
        )
    if saga.coordination == "choreography" and not saga.broker.ideal:
        notes.append(
            "these are the orchestrated form's numbers: a choreography's broker latency, loss, "
            "duplicates and reordering are not modelled here; see simulate or compare"
        )
    c = saga.coordinator
    if saga.coordination == "choreography" and c is not None and c.crash > 0:
        notes.append(
            "the services' outbox crashes (a crash after publishing sends an event twice) are "
            "not among these numbers; see check and simulate"
        )
    if saga.arrivals or any(service.capacity or service.outages for service in saga.services):
        notes.append("capacity limits, outages and arrivals are not modelled here; see simulate")
    if saga.all_resources():
        notes.append(CONCURRENCY_NOTE)
    ranking = _sensitivity(saga, chain, table, base, notes) if sensitivity else []
    result = Analysis(
        saga=saga.name,
        outcomes=dict(zip(OUTCOMES, map(float, base.outcomes))),
        compensation_probability=base.compensation,
        expected_latency_ms=latency,
        exact=exact,
        anomalies=anomalies,
        states=len(space.nodes),
        transitions=len(space.edges),
        notes=tuple(notes),
        sensitivity=tuple(ranking),
        fails=_fails(saga, chain, base),
    )
    return _with_crashes(result, saga) if can_crash(saga) else result


def _with_crashes(result: Analysis, saga: Saga) -> Analysis:
    """``result`` with the numbers of the crash chain (:mod:`sagasim.analysis.crashes`) in
    place of those of the chain without crashes; where it has none (calls racing), the
    outcomes are those without crashes, and not exact."""
    effects = effects_of(saga)  # saga: the core analyze works on
    # the latencies are not computed here: what the chain without crashes said of them goes
    notes = [n for n in result.notes if not n.startswith("expected latency")]
    notes += effects.notes
    notes.append(
        "expected latency with coordinator crashes not computed (restarts and re-runs take "
        "time); see simulate"
    )
    if result.sensitivity:
        notes.append("the sensitivity ranking leaves coordinator crashes out")
    latency = dict.fromkeys(result.expected_latency_ms, None)
    if effects.outcomes is None or effects.compensation_probability is None:
        notes.append("the outcomes above leave coordinator crashes out")
        unknown = dict.fromkeys(result.anomalies, None)
        changes: dict[str, Any] = {"exact": False, "anomalies": unknown}
    else:
        changes = {
            "outcomes": effects.outcomes,
            "compensation_probability": effects.compensation_probability,
            "anomalies": {k: effects.anomalies[k] for k in result.anomalies},
            "states": effects.states,
            "transitions": effects.transitions,
            "fails": {
                name: {k: _round(v) or 0.0 for k, v in by.items()}
                for name, by in effects.fails.items()
            },
        }
    return replace(
        result, expected_latency_ms=latency, notes=tuple(notes), crashes=effects, **changes
    )


# --- sensitivity -----------------------------------------------------------------------------


def _sensitivity(
    saga: Saga, chain: Chain, table: np.ndarray, base: Absorbed, notes: list[str]
) -> list[Sensitivity]:
    """Central finite differences of (compensation probability, P(stuck)) in each failure,
    reject and bounded attempts parameter, ranked by effect on compensation, then on stuck."""
    center, actions = (base.compensation, float(base.outcomes[STUCK])), list(saga.actions())
    wider: list[Chain | None] = []  # with every edge a perturbation can add
    skipped: list[str] = []

    def superset() -> Chain | None:
        if not wider:
            ends = {a.name: {f: 0.5 for f in FIELDS if getattr(a, f) in (0, 1)} for a in actions}
            wide = _with_actions(saga, ends)
            try:
                wider.append(Chain(wide, explore(wide, participants=False), races_of(wide)))
            except StateSpaceLimitError:
                wider.append(None)
        return wider[0]

    def evaluate(index: int, action: Action, attr: str, value: float) -> tuple[float, float]:
        """(compensation, stuck) with ``attr`` of ``action`` at ``value``; raises when the
        variant retries forever or its superset is too large."""
        if value == getattr(action, attr):
            return center
        changed: dict[str, Any] = {attr: value}
        row = np.array(list(replace(action, **changed).attempt_outcomes.values()))
        solver = superset() if ((row > 0) & (table[index] == 0)).any() else chain
        varied = table.copy()
        varied[index] = row
        if solver is None:
            raise StateSpaceLimitError(action.name)
        solved = solver.solve(varied, saga.name)
        return solved.compensation, float(solved.outcomes[STUCK])

    rows: list[Sensitivity] = []
    for index, action in enumerate(actions):
        for attr in FIELDS:
            theta = getattr(action, attr)
            sides = []
            for value in (max(0.0, theta - STEP), min(1.0, theta + STEP)):
                try:
                    sides.append((value, evaluate(index, action, attr, value)))
                except SagaSimError:  # the variant retries forever: the other side only
                    skipped.append(f"{action.name}.{attr}")
                    sides.append((theta, center))
            (lo, low), (hi, high) = sides
            if hi > lo:
                dc, ds = ((b - a) / (hi - lo) for a, b in zip(low, high))
                rows.append(Sensitivity(f"{action.name}.{attr}", dc, ds))
        if (limit := action.retry.attempts) is not None:  # one attempt more
            more = chain.with_extra_attempt(index, limit).solve(table, saga.name)
            dc, ds = more.compensation - center[0], more.outcomes[STUCK] - center[1]
            rows.append(Sensitivity(f"{action.name}.retry.attempts", dc, float(ds)))
    rows += _branch_sensitivity(saga, chain, table)
    if skipped:
        notes.append(
            f"sensitivity one-sided or left out for {', '.join(dict.fromkeys(skipped))}: the "
            "changed saga retries forever or has too many states"
        )
    return sorted(
        rows, key=lambda r: (-abs(r.d_compensation_probability), -abs(r.d_stuck), r.parameter)
    )


def _branch_sensitivity(saga: Saga, chain: Chain, table: np.ndarray) -> list[Sensitivity]:
    """d(compensation probability) and d P(stuck) in each branch's probability, named
    ``CHOICE.LABEL`` as ``--set`` reads it. The default branch takes up the change; without
    one, the other branches give it up in proportion to their probabilities. Branches of
    probability 0 (no edge in the machine) are left out."""
    rows: list[Sensitivity] = []
    first = len(chain.actions)
    for c, choice in enumerate(chain.choices):
        row, labels = table[first + c], branch_labels(choice)
        default = next((b for b, way in enumerate(choice.branches) if way.default), None)
        for b, way in enumerate(choice.branches):
            p = row[b]
            if way.default or p <= 0 or (default is None and p >= 1):
                continue
            sides = []
            for value in (max(0.0, p - STEP), min(1.0, p + STEP)):
                varied = table.copy()
                new = row.copy()
                new[b] = value
                if default is not None:  # (a default of probability 0 has no edge to take it)
                    new[default] = max(0.0, row[default] - (value - p))
                else:
                    rest = [k for k in range(len(choice.branches)) if k != b]
                    scale = (1 - value) / max(row[rest].sum(), 1e-300)
                    new[rest] = row[rest] * scale
                varied[first + c] = new
                solved = chain.solve(varied, saga.name)
                sides.append((value, (solved.compensation, float(solved.outcomes[STUCK]))))
            (lo, low), (hi, high) = sides
            if hi > lo:
                dc, ds = ((y - x) / (hi - lo) for x, y in zip(low, high))
                rows.append(Sensitivity(f"{choice.name}.{labels[b]}", dc, ds))
    return rows


def _with_actions(saga: Saga, changes: dict[str, dict[str, Any]]) -> Saga:
    """A copy of ``saga`` with ``dataclasses.replace(action, **changes[name])`` applied to
    every step and compensation, wherever it is."""

    def action(a: Any) -> Any:
        return replace(a, **changes[a.name]) if a is not None and changes.get(a.name) else a

    def entry(e: Entry) -> Entry:
        if isinstance(e, Step):
            return replace(action(e), compensation=action(e.compensation))
        if isinstance(e, SubSaga):
            return replace(e, compensation=action(e.compensation))
        return e

    return replace(saga, steps=rebuild(saga.steps, entry))


def _fails(saga: Saga, chain: Chain, solved: Absorbed) -> dict[str, dict[str, float]]:
    """P(end state, fail name) for each fail name of ``saga`` (none: an empty dict)."""
    names = ends(saga)
    result = {name: dict.fromkeys(OUTCOMES, 0.0) for name in names}
    ending = np.flatnonzero(solved.live & (chain.end[chain.dst] >= 0))
    for e in ending:
        fail = chain.fail[int(chain.dst[e])]
        if fail is not None:
            mass = solved.visits[solved.position[chain.src[e]]] * solved.p[e]
            result[fail][OUTCOMES[int(chain.end[chain.dst[e]])]] += float(mass)
    return {name: {k: _round(v) or 0.0 for k, v in by.items()} for name, by in result.items()}


def _round(value: float | None) -> float | None:
    finite = value is not None and math.isfinite(value)
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if finite else None


def _show_ms(value: float | None) -> str:
    return "n/a" if value is None else "infinite" if math.isinf(value) else f"{value:,.3f} ms"
