"""The orchestrator's explored state space as an absorbing (semi-)Markov chain, and its
solution: which states race several actions and how, the chain's edges as arrays, one sparse LU
of ``I - Q`` for absorption probabilities and expected durations. :mod:`sagasim.analysis` reads
the answers off it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order
from scipy.sparse.linalg import splu

from ..exceptions import SagaSimError
from ..machine.orchestration import EVENT_KINDS, OUTCOMES, compile_saga
from ..machine.program import branch_labels
from ..model import Action, Choice, Entry, Parallel, Retry, Saga, Step, SubSaga, walk
from ..verify.statespace import StateSpace

#: Two race weightings whose results differ by less than this give the same answer.
AGREEMENT = 1e-12
OK, FAIL, REJECT, TIMEOUT = range(len(EVENT_KINDS))
STUCK = OUTCOMES.index("stuck")


# --- the chain -------------------------------------------------------------------------------


def races_of(saga: Saga) -> dict[str, tuple[str, str]]:
    """For each machine state running several actions: the kind of race and where it is.

    ``exponential``: memoryless, exact; ``instant``: every action takes no time (a tie);
    ``general``: anything else. States deciding a choice take no time: they race nothing.
    ``saga`` is a core saga (:func:`sagasim.machine.core`).
    """
    group_of = _groups(saga.steps, "steps")
    races: dict[str, tuple[str, str]] = {}
    for sid, info in compile_saga(saga).states.items():
        if len(info.running) < 2 or info.decision is not None:
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
        groups = {group_of.get(name) for name in info.running}
        label = groups.pop() if len(groups) == 1 else None
        races[sid] = (kind, label or "the parallel compensation")
    return races


def _groups(entries: tuple[Entry, ...], prefix: str) -> dict[str, str]:
    """The label of the parallel group each action runs in (``the parallel group steps[3]
    (a, b)``), for the actions inside groups."""
    found: dict[str, str] = {}
    for i, entry in enumerate(entries):
        path = f"{prefix}[{i}]"
        if isinstance(entry, Parallel):
            firsts = ", ".join(_first_name(branch) for branch in entry.branches)
            label = (
                f"the map {entry.origin}"
                if entry.origin
                else f"the parallel group {path} ({firsts})"
            )
            for e in walk(tuple(e for branch in entry.branches for e in branch)):
                for action in (e, getattr(e, "compensation", None)):
                    if isinstance(action, Action):
                        found[action.name] = label
        elif isinstance(entry, Choice):
            for b, branch in enumerate(entry.branches):
                found |= _groups(branch.steps, f"{path}.choice.branches[{b}].steps")
        elif isinstance(entry, SubSaga):
            found |= _groups(entry.saga.steps, f"{path}.saga")
    return found


def _first_name(branch: tuple[Entry, ...]) -> str:
    return next((e.name for e in walk(branch) if isinstance(e, Step)), "")


def _mean_wait(action: Action) -> float:
    """E[min(L, timeout)]: how long the orchestrator waits for one attempt."""
    t = action.timeout_ms
    return action.latency.mean_ms if t is None else action.latency.mean_until(t)


class Chain:
    """An explored state space as arrays: edges ``src -> dst`` by action index and event kind."""

    def __init__(self, saga: Saga, space: StateSpace, races: dict[str, tuple[str, str]]) -> None:
        self.actions = list(saga.actions())
        #: The choices, after the actions: an edge of a decision has the choice as its action
        #: and the branch's index as its kind (see :func:`table_of`).
        self.choices = [e for e in walk(saga.steps) if isinstance(e, Choice)]
        self.names = [a.name for a in self.actions] + [c.name for c in self.choices]
        index = {name: i for i, name in enumerate(self.names)}
        kinds = {kind: i for i, kind in enumerate(EVENT_KINDS)}
        for choice in self.choices:
            kinds |= {label: b for b, label in enumerate(branch_labels(choice))}
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
        self.deciding = np.array([info.decision is not None for info in infos])
        self.fail = [info.fail for info in infos]
        self.end = np.array([OUTCOMES.index(i.outcome) if i.outcome else -1 for i in infos])
        self.unbounded = np.array(
            [a.retry.unbounded for a in self.actions] + [False] * len(self.choices)
        )
        self.rows: np.ndarray | None = None  # weights() by machine state and action
        self.factor: tuple[np.ndarray, Any] | None = None  # (transient states, LU of I - Q)

    def solve(self, table: np.ndarray, name: str, alternative: Collection[str] = ()) -> Absorbed:
        """Solve with ``table`` (ok, fail, reject, timeout per action) times the race weights."""
        return _absorb(self, self.weights(alternative) * table[self.act, self.kind], table, name)

    def weights(self, alternative: Collection[str] = ()) -> np.ndarray:
        """P(an edge's action is the one that finishes first): 1 without a race; in a race
        ``1 / E[min(L, timeout)]`` normalised (uniform on ties), or seeded random weights in the
        non-memoryless races labelled in ``alternative``."""
        rows = self.rows
        if rows is None or alternative:
            rows = np.ones((self.states, len(self.names)))
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
        width = max([len(EVENT_KINDS), *(len(c.branches) for c in self.choices)])
        rows = [row + [0.0] * (width - len(row)) for row in base]
        rows += [[0.0] * width for _ in self.choices]  # a decision takes no time
        tau = np.array(rows)[self.act, self.kind]
        loops = np.bincount(self.src[self.src == self.dst], p[self.src == self.dst], len(self.sids))
        divergent: list[int] = []
        for e in range(len(self.src)):
            s, d = int(self.src[e]), int(self.dst[e])
            running = self.running[s]
            if self.deciding[s]:
                continue
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

    def with_extra_attempt(self, action: int, limit: int) -> Chain:
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
        new.deciding = np.r_[self.deciding, self.deciding[last]]
        new.fail = self.fail + [self.fail[n] for n in last]
        new.end, new.code = np.r_[self.end, self.end[last]], np.r_[self.code, self.code[last]]
        new.factor = None
        return new


# --- solving ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Absorbed:
    """One solve: P(outcome), P(compensation), and what latencies reuse."""

    outcomes: np.ndarray
    compensation: float
    lu: Any
    visits: np.ndarray  # expected visits of each transient state, from the start
    position: np.ndarray  # node -> row of I - Q, -1 for end states and unreached nodes
    live: np.ndarray  # edges with p > 0 out of reached transient states
    to_end: np.ndarray  # (transient, outcome): P(the next step ends in that outcome)
    p: np.ndarray  # edge probabilities


def _absorb(chain: Chain, p: np.ndarray, table: np.ndarray, name: str) -> Absorbed:
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
    return Absorbed(visits @ to_end, compensation, lu, visits, position, live, to_end, p)


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


def _forever(chain: Chain, node: int, table: np.ndarray, name: str) -> str:
    hopeless = [a for a in chain.running[node] if table[a, OK] == 0 == table[a, REJECT]]
    who = " and ".join(chain.names[a] for a in hopeless or chain.running[node])
    return f"{name}: {who} retries forever: no end state is reachable from {chain.sids[node]!r}"


def agrees(one: Absorbed, two: Absorbed) -> bool:
    gaps = np.r_[one.outcomes - two.outcomes, one.compensation - two.compensation]
    return bool(np.abs(gaps).max() < AGREEMENT)


def latencies(
    chain: Chain, solved: Absorbed, tau: np.ndarray, divergent: list[int]
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


def table_of(saga: Saga) -> np.ndarray:
    """The probabilities a :class:`Chain` of ``saga`` solves with: each action's ``ok``,
    ``fail``, ``reject`` and ``timeout``, then each choice's branch probabilities (a row per
    choice, a column per branch, zeros past its last)."""
    choices = [e for e in walk(saga.steps) if isinstance(e, Choice)]
    width = max([len(EVENT_KINDS), *(len(c.branches) for c in choices)])
    rows = [list(a.attempt_outcomes.values()) for a in saga.actions()]
    rows += [list(c.probabilities) for c in choices]
    return np.array([row + [0.0] * (width - len(row)) for row in rows])
