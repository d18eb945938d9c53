"""Exact probabilities and expected latencies of a saga: its state space as a Markov chain.

:func:`analyze` reads the orchestrator's explored state space (:func:`sagasim.explore.explore`)
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

import copy
import math
from collections.abc import Collection
from dataclasses import astuple, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order
from scipy.sparse.linalg import splu

from .exceptions import SagaSimError, StateSpaceLimitError
from .explore import StateSpace, explore
from .machine import EVENT_KINDS, OUTCOMES, compile_saga
from .model import Action, Parallel, Retry, Saga, Step, validate

__all__ = ["Analysis", "Sensitivity", "analyze"]

ANOMALIES = ("duplicate_effect", "hanging", "late_leak")
#: Step of the central finite differences of the sensitivity ranking.
STEP = 1e-6
#: Two race weightings whose results differ by less than this give the same answer.
AGREEMENT = 1e-12
SIGNIFICANT_DIGITS = 12
OK, FAIL, REJECT, TIMEOUT = range(len(EVENT_KINDS))
STUCK = OUTCOMES.index("stuck")
_SENSITIVITY_KEYS = ("parameter", "d_compensation_probability", "d_stuck")
FIELDS = ("failure", "reject")  # probabilities the sensitivity ranking varies


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

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of DESIGN.md, floats rounded to 12 significant digits."""
        return {
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
        }

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
        for key, value in self.anomalies.items():
            lines.append(f"  {key:<28} {'see notes' if value is None else f'{value:.6g}':>12}")
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
    >>> from sagasim.latency import Constant
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
    notes: list[str] = []
    races = _races(saga)  # of every machine state; those the saga can reach once explored
    # an unbounded action's growing backoff needs its attempt numbers (when latency is known)
    grows = any(a.retry.unbounded and a.retry.backoff == "exponential" for a in saga.actions())
    timed = grows and all(kind != "general" for kind, _ in races.values())
    space = explore(saga, participants=False, timed=timed)
    visited = {sid for sid, _, _ in space.nodes}
    races = {sid: race for sid, race in races.items() if sid in visited}
    timeless = list(dict.fromkeys(label for kind, label in races.values() if kind == "general"))
    chain = _Chain(saga, space, races)
    table = np.array([list(a.attempt_outcomes.values()) for a in saga.actions()])
    base = chain.solve(table, saga.name)
    exact, guessed = True, sorted({label for k, label in races.values() if k != "exponential"})
    if guessed and not _agrees(base, chain.solve(table, saga.name, guessed)):
        exact = False
        culprits = [g for g in guessed if not _agrees(base, chain.solve(table, saga.name, {g}))]
        notes.append(
            f"probabilities are approximate: in {' and '.join(culprits or guessed)} the order "
            "in which parallel actions finish changes the result and their latencies are not "
            "memoryless; see simulate"
        )
    latency: dict[str, float | None] = dict.fromkeys(("all", *OUTCOMES), None)
    if not timeless:
        tau, divergent = chain.durations(base.p)
        latency = _latencies(chain, base, tau, divergent)
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
    if saga.arrivals or any(service.capacity or service.outages for service in saga.services):
        notes.append("capacity limits, outages and arrivals are not modelled here; see simulate")
    ranking = _sensitivity(saga, chain, table, base, notes) if sensitivity else []
    return Analysis(
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
    )


# --- the chain -------------------------------------------------------------------------------


def _races(saga: Saga) -> dict[str, tuple[str, str]]:
    """For each machine state running several actions: the kind of race and where it is.

    ``exponential``: memoryless, exact; ``instant``: every action takes no time (a tie);
    ``general``: anything else.
    """
    entry_of = {
        action.name: index
        for index, entry in enumerate(saga.steps)
        for step in ([entry] if isinstance(entry, Step) else sum(entry.branches, ()))
        for action in (step, step.compensation)
        if action is not None
    }
    races: dict[str, tuple[str, str]] = {}
    for sid, info in compile_saga(saga).states.items():
        if len(info.running) < 2:
            continue
        actions = [saga.action(name) for name in info.running]
        delayed = any(  # a retry after a backoff delay restarts the clock at a fixed time
            a.retry.attempts != 1 and (a.failure or a.p_timeout) and a.retry.delay_ms
            for a in actions
        )
        memoryless = all(
            a.latency.exponential and a.latency.mean_ms > 0 and a.p_timeout == 0 for a in actions
        )
        instant = all(_mean_wait(a) == 0 for a in actions)
        kind = "exponential" if memoryless else "instant" if instant else "general"
        kind = "general" if delayed else kind
        entries = {entry_of[name] for name in info.running}
        entry = saga.steps[min(entries)]
        if len(entries) == 1 and isinstance(entry, Parallel):
            firsts = ", ".join(branch[0].name for branch in entry.branches)
            label = f"the parallel group steps[{min(entries)}] ({firsts})"
        else:
            label = "the parallel compensation"
        races[sid] = (kind, label)
    return races


def _mean_wait(action: Action) -> float:
    """E[min(L, timeout)]: how long the orchestrator waits for one attempt."""
    t = action.timeout_ms
    return action.latency.mean_ms if t is None else action.latency.mean_until(t)


class _Chain:
    """An explored state space as arrays: edges ``src -> dst`` by action index and event kind."""

    def __init__(self, saga: Saga, space: StateSpace, races: dict[str, tuple[str, str]]) -> None:
        self.actions = list(saga.actions())
        self.names = [a.name for a in self.actions]
        index = {name: i for i, name in enumerate(self.names)}
        kinds = {kind: i for i, kind in enumerate(EVENT_KINDS)}
        columns = zip(*[(s, d, index[a], kinds[k]) for s, d, a, k in space.edges])
        self.src, self.dst, self.act, self.kind = (np.array(c, dtype=np.int64) for c in columns)
        infos = [space.machine.states[sid] for sid, _, _ in space.nodes]
        self.sids = [info.id for info in infos]
        codes = {sid: i for i, sid in enumerate(space.machine.states)}
        self.states = len(codes)
        self.code = np.array([codes[sid] for sid in self.sids])  # machine state of each node
        self.race_rows = {  # race kind, label, machine state and running actions
            codes[sid]: (kind, label, [index[a] for a in space.machine.states[sid].running])
            for sid, (kind, label) in races.items()
        }
        self.attempts = [attempts for _, attempts, _ in space.nodes]
        self.running = [tuple(index[a] for a in info.running) for info in infos]
        self.compensating = np.array([info.phase == "compensating" for info in infos])
        self.end = np.array([OUTCOMES.index(i.outcome) if i.outcome else -1 for i in infos])
        self.unbounded = np.array([a.retry.unbounded for a in self.actions])
        self.rows: np.ndarray | None = None  # weights() by machine state and action
        self.factor: tuple[np.ndarray, Any] | None = None  # (transient states, LU of I - Q)

    def solve(self, table: np.ndarray, name: str, alternative: Collection[str] = ()) -> _Absorbed:
        """Solve with ``table`` (ok, fail, reject, timeout per action) times the race weights."""
        return _absorb(self, self.weights(alternative) * table[self.act, self.kind], table, name)

    def weights(self, alternative: Collection[str] = ()) -> np.ndarray:
        """P(an edge's action is the one that finishes first): 1 without a race; in a race
        ``1 / E[min(L, timeout)]`` normalised (uniform on ties), or seeded random weights in the
        non-memoryless races labelled in ``alternative``."""
        rows = self.rows
        if rows is None or alternative:
            rows = np.ones((self.states, len(self.actions)))
            rng = np.random.default_rng(20240607)
            for code, (kind, label, running) in sorted(self.race_rows.items()):
                means = np.array([_mean_wait(self.actions[a]) for a in running])
                raw = 1 / means if means.min() > 0 else np.ones(len(running))
                if label in alternative and kind != "exponential":
                    raw = rng.uniform(0.05, 1.0, len(running))
                rows[code, running] = raw / raw.sum()
            self.rows = self.rows if alternative else rows
        return rows[self.code[self.src], self.act]

    def durations(self, p: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Expected duration of each edge, and the nodes whose expected backoff is infinite."""
        base = []  # E[L | L <= timeout] for ok, fail and reject; the timeout for a timeout
        for a in self.actions:
            t, below = a.timeout_ms, a.latency.cdf(a.timeout_ms or 0.0)
            mean = a.latency.mean_ms if t is None else a.latency.partial_mean(t) / (below or 1)
            base.append([mean, mean, mean, t or 0.0])
        tau = np.array(base)[self.act, self.kind]
        loops = np.bincount(self.src[self.src == self.dst], p[self.src == self.dst], len(self.sids))
        divergent: list[int] = []
        for e in range(len(self.src)):
            s, d = int(self.src[e]), int(self.dst[e])
            running = self.running[s]
            if len(running) > 1:
                kind = self.race_rows[int(self.code[s])][0]
                means = [self.actions[a].latency.mean_ms for a in running]
                tau[e] = 0.0 if kind == "instant" else 1 / sum(1 / m for m in means)
            elif self.kind[e] in (FAIL, TIMEOUT) and self.sids[s] == self.sids[d]:
                retry, attempt = self.actions[running[0]].retry, self.attempts[s][0]
                if s != d:
                    tau[e] += retry.mean_delay_ms(attempt)
                    continue
                tail = _tail_backoff(retry, attempt, loops[s])
                if math.isinf(tail):
                    divergent.append(s)
                else:
                    tau[e] += tail * (1 - loops[s]) / loops[s]
        return tau, sorted(set(divergent))

    def with_extra_attempt(self, action: int, limit: int) -> _Chain:
        """This chain with one more attempt for ``action`` (bounded at ``limit``).

        Each state where it runs on its last attempt gets a twin on attempt ``limit + 1``: the
        last attempt's transient failures now retry into the twin, and the twin moves like the
        original (an action runs once per saga, so a target that still runs it on attempt
        ``limit`` is the same run, and becomes its twin too).
        """
        last = [
            n
            for n, running in enumerate(self.running)
            if action in running and self.attempts[n][running.index(action)] == limit
        ]
        n = len(self.sids)
        twin = np.full(n, -1)
        twin[last] = np.arange(n, n + len(last))
        copied = np.flatnonzero(twin[self.src] >= 0)
        retried = (twin[self.src] >= 0) & (self.act == action) & np.isin(self.kind, (FAIL, TIMEOUT))
        new = copy.copy(self)
        new.dst = self.dst.copy()
        new.dst[retried] = twin[self.src[retried]]
        onward = np.where(twin[self.dst[copied]] >= 0, twin[self.dst[copied]], self.dst[copied])
        new.src, new.dst = np.r_[self.src, twin[self.src[copied]]], np.r_[new.dst, onward]
        new.act, new.kind = np.r_[self.act, self.act[copied]], np.r_[self.kind, self.kind[copied]]
        new.sids = self.sids + [self.sids[n] for n in last]
        new.attempts = self.attempts + [
            tuple(k + (a == action) for a, k in zip(self.running[n], self.attempts[n]))
            for n in last
        ]
        new.running = self.running + [self.running[n] for n in last]
        new.compensating = np.r_[self.compensating, self.compensating[last]]
        new.end, new.code = np.r_[self.end, self.end[last]], np.r_[self.code, self.code[last]]
        new.factor = None
        return new


# --- solving ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Absorbed:
    """One solve: P(outcome), P(compensation), and what latencies reuse."""

    outcomes: np.ndarray
    compensation: float
    lu: Any
    visits: np.ndarray  # expected visits of each transient state, from the start
    position: np.ndarray  # node -> row of I - Q, -1 for end states and unreached nodes
    live: np.ndarray  # edges with p > 0 out of reached transient states
    to_end: np.ndarray  # (transient, outcome): P(the next step ends in that outcome)
    p: np.ndarray  # edge probabilities


def _absorb(chain: _Chain, p: np.ndarray, table: np.ndarray, name: str) -> _Absorbed:
    """Solve the chain with edge probabilities ``p`` (edges with p = 0 do not exist), reusing
    the chain's first LU factorisation while it converges. Only an unbounded action that can
    neither succeed nor be rejected can trap the chain (every other event moves the machine on),
    so only then does a graph search look for states that cannot end."""
    n, positive = len(chain.sids), p > 0
    reached = np.ones(n, dtype=bool)
    hopeless = (table[:, OK] == 0) & (table[:, REJECT] == 0) & chain.unbounded
    if hopeless.any():
        s, d = chain.src[positive], chain.dst[positive]
        reached = _reach(s, d, [0], n)
        trapped = np.flatnonzero(reached & ~_reach(d, s, np.flatnonzero(chain.end >= 0), n))
        if len(trapped):
            raise SagaSimError(_forever(chain, int(trapped[0]), table, name))
    transient = reached & (chain.end < 0)
    m = int(transient.sum())
    position = np.full(n, -1)
    position[transient] = np.arange(m)
    live = positive & transient[chain.src]
    inner = live & transient[chain.dst]
    rows, cols = position[chain.src[inner]], position[chain.dst[inner]]
    diagonal = np.arange(m)
    i_minus_q = sparse.csc_matrix(
        (np.r_[-p[inner], np.ones(m)], (np.r_[rows, diagonal], np.r_[cols, diagonal])),
        shape=(m, m),
    )
    cached = chain.factor
    if cached is None or not np.array_equal(cached[0], transient):
        chain.factor = cached = (transient, splu(i_minus_q))
    lu = cached[1]
    ending = live & (chain.end[chain.dst] >= 0)
    to_end = np.zeros((m, len(OUTCOMES)))
    np.add.at(to_end, (position[chain.src[ending]], chain.end[chain.dst[ending]]), p[ending])
    start = np.zeros(m)
    start[position[0]] = 1.0
    visits = _refined(lu, i_minus_q, start)
    if visits is None:  # too far from the matrix ``lu`` factorised
        visits = (lu := splu(i_minus_q)).solve(start, trans="T")
    entering = live & ~chain.compensating[chain.src] & chain.compensating[chain.dst]
    compensation = float(visits[position[chain.src[entering]]] @ p[entering])
    return _Absorbed(visits @ to_end, compensation, lu, visits, position, live, to_end, p)


def _refined(lu: Any, matrix: Any, b: np.ndarray) -> np.ndarray | None:
    """x with ``x matrix = b`` by iterative refinement on ``lu``, the factors of a matrix close
    to it (a finite difference away), or None if that does not converge to round-off."""
    x = lu.solve(b, trans="T")
    for _ in range(8):
        step = lu.solve(b - matrix.T @ x, trans="T")
        x += step
        if np.abs(step).max() <= 1e-15 * np.abs(x).max():
            return x
    return None


def _reach(src: np.ndarray, dst: np.ndarray, starts: Any, n: int) -> np.ndarray:
    """Which of ``n`` nodes the edges ``src -> dst`` lead to from any of ``starts``."""
    src, dst = np.r_[src, np.full(len(starts), n)], np.r_[dst, starts]
    indptr = np.r_[0, np.cumsum(np.bincount(src, minlength=n + 1))]
    order = np.argsort(src, kind="stable")
    graph = sparse.csr_matrix((np.ones(len(src)), dst[order], indptr), shape=(n + 1, n + 1))
    found = np.zeros(n + 1, dtype=bool)
    found[breadth_first_order(graph, n, return_predecessors=False)] = True
    return found[:n]


def _forever(chain: _Chain, node: int, table: np.ndarray, name: str) -> str:
    hopeless = [a for a in chain.running[node] if table[a, OK] == 0 == table[a, REJECT]]
    who = " and ".join(chain.names[a] for a in hopeless or chain.running[node])
    return f"{name}: {who} retries forever: no end state is reachable from {chain.sids[node]!r}"


def _agrees(one: _Absorbed, two: _Absorbed) -> bool:
    gaps = np.r_[one.outcomes - two.outcomes, one.compensation - two.compensation]
    return bool(np.abs(gaps).max() < AGREEMENT)


def _latencies(
    chain: _Chain, solved: _Absorbed, tau: np.ndarray, divergent: list[int]
) -> dict[str, float | None]:
    """E[T] and E[T | outcome] of the semi-Markov chain, ``tau`` the expected edge durations."""
    absorbed = solved.lu.solve(solved.to_end)  # h_k of every transient state
    live = solved.live
    dst = chain.dst[live]
    after = np.zeros((len(dst), len(OUTCOMES)))
    inner = solved.position[dst] >= 0
    after[inner] = absorbed[solved.position[dst[inner]]]
    after[np.flatnonzero(~inner), chain.end[dst[~inner]]] = 1.0
    mass = solved.visits[solved.position[chain.src[live]]] * solved.p[live]
    with np.errstate(invalid="ignore"):  # 0 * inf: an edge never taken whose mean is infinite
        weight = np.where(mass > 0, mass * tau[live], 0.0)
    finite = np.isfinite(weight)  # not: an edge whose expected duration is infinite
    joint = weight[finite] @ after[finite]
    endless = np.asarray((after[~finite] > 0).any(axis=0))
    reached = [n for n in divergent if solved.position[n] >= 0]
    total = math.inf if reached or not finite.all() else float(weight.sum())
    latency: dict[str, float | None] = {"all": total}
    for k, outcome in enumerate(OUTCOMES):
        infinite = bool(endless[k]) or any(absorbed[solved.position[n], k] > 0 for n in reached)
        mean = math.inf if infinite else float(joint[k] / max(solved.outcomes[k], 1e-300))
        latency[outcome] = mean if solved.outcomes[k] > 0 else None
    return latency


def _tail_backoff(retry: Retry, attempt: int, loop: float) -> float:
    """Expected backoff over attempts ``attempt``, ``attempt + 1``, ... of an unbounded action
    each retried with probability ``loop``: sum over n >= 1 of loop**n * delay(attempt + n - 1)."""
    total, weight, k = 0.0, 1.0, attempt
    growth = retry.multiplier if retry.backoff == "exponential" else 1.0
    for _ in range(100_000):
        delay, following = retry.mean_delay_ms(k), retry.mean_delay_ms(k + 1)
        weight *= loop
        if delay == following:
            return total + weight * delay / (1 - loop)
        if retry.max_delay_ms is None:  # geometric from here on
            return math.inf if loop * growth >= 1 else total + weight * delay / (1 - loop * growth)
        total += weight * delay
        k += 1
        if weight * max(retry.max_delay_ms, delay) < 1e-16 * total:
            break
    return total


# --- sensitivity -----------------------------------------------------------------------------


def _sensitivity(
    saga: Saga, chain: _Chain, table: np.ndarray, base: _Absorbed, notes: list[str]
) -> list[Sensitivity]:
    """Central finite differences of (compensation probability, P(stuck)) in each failure,
    reject and bounded attempts parameter, ranked by effect on compensation, then on stuck."""
    center, actions = (base.compensation, float(base.outcomes[STUCK])), list(saga.actions())
    wider: list[_Chain | None] = []  # with every edge a perturbation can add
    skipped: list[str] = []

    def superset() -> _Chain | None:
        if not wider:
            ends = {a.name: {f: 0.5 for f in FIELDS if getattr(a, f) in (0, 1)} for a in actions}
            wide = _with_actions(saga, ends)
            try:
                wider.append(_Chain(wide, explore(wide, participants=False), _races(wide)))
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
    if skipped:
        notes.append(
            f"sensitivity one-sided or left out for {', '.join(dict.fromkeys(skipped))}: the "
            "changed saga retries forever or has too many states"
        )
    return sorted(
        rows, key=lambda r: (-abs(r.d_compensation_probability), -abs(r.d_stuck), r.parameter)
    )


def _with_actions(saga: Saga, changes: dict[str, dict[str, Any]]) -> Saga:
    """A copy of ``saga`` with ``dataclasses.replace(action, **changes[name])`` applied."""

    def change(step: Step) -> Step:
        comp = step.compensation
        if comp is not None and changes.get(comp.name):
            step = replace(step, compensation=replace(comp, **changes[comp.name]))
        return replace(step, **changes[step.name]) if changes.get(step.name) else step

    entries = tuple(
        change(e)
        if isinstance(e, Step)
        else Parallel(branches=tuple(tuple(map(change, b)) for b in e.branches))
        for e in saga.steps
    )
    return replace(saga, steps=entries)


def _round(value: float | None) -> float | None:
    finite = value is not None and math.isfinite(value)
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if finite else None


def _show_ms(value: float | None) -> str:
    return "n/a" if value is None else "infinite" if math.isinf(value) else f"{value:,.3f} ms"
