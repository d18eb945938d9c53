"""Independent orchestrated instances in numpy batches: the fast path of :func:`simulate`.

SimPy stays the reference engine; this one walks the same compiled transition table (the
:class:`~sagasim.sim.orchestration.Plan` SimPy runs, so choices, parallel groups, maps,
sub-sagas, gotos with ``max_visits``, ``compensate_on_failure``, retries and timeouts are all
the machine's), for a whole batch of instances at once. Each instance has its own clock; one
round of the loop takes every live instance's next event (the attempt in flight that the
orchestrator sees end first, ties to the first running action, as SimPy does), looks its edge up
in arrays, updates the participants' ledgers through memo tables, and draws the next attempts
(latency and outcome, by action, in one numpy call each). A timed-out attempt that may land late
is kept with its landing time and applied before the first event of its instance at or after
it, as SimPy orders them; landings after the end still count for the anomalies.

It covers orchestration without ``arrivals`` (where instances never share a service, so
capacities never queue; outage windows count from each instance's start). Choreography and
arrivals run on SimPy: :func:`fast_supported` says why. Random numbers come from the same
per-chunk seeds, so a seed gives the same results whatever the number of workers, but the
stream is the engine's own: the fast path agrees with SimPy in distribution, not draw for draw.

Examples
--------
>>> from sagasim.model import Compensation, Constant, Retry, Saga, Step
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", latency=Constant(value_ms=20),
...          compensation=Compensation(name="release", latency=Constant(value_ms=5))),
...     Step(name="charge", kind_declared="pivot", latency=Constant(value_ms=50), failure=0.3,
...          retry=Retry(attempts=2, delay_ms=100)),
... ))
>>> fast_supported(saga) is None
True
>>> results = run_chunk(saga, 7, np.random.SeedSequence(7), first=0, n=10_000)
>>> results.engine, results.runs, sorted(set(results.latency_ms.tolist()))
('fast', 10000, [70.0, 220.0, 225.0])
>>> round(results.rate("compensated").value, 2)  # exactly 0.3 ** 2 = 0.09
0.09
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..exceptions import EndlessRetryError, SagaSimError
from ..machine import orchestration as machine
from ..model.saga import Saga
from . import orchestration
from .orchestration import DECIDING, FAIL, OK, REJECT, TIMEOUT, Effects, Plan
from .results import COLUMNS, Results, ServiceStats, assemble

__all__ = ["fast_supported", "run_chunk", "tables"]

INT16_MAX, UINT16_MAX = 32767, 65535
NEVER = np.iinfo(np.int64).max  # the attempt limit of an action retried without limit
EMPTY = -2  # a carry entry for a column past the state's running actions


def fast_supported(saga: Saga) -> str | None:
    """None when the fast path simulates ``saga`` exactly; else why only SimPy does.

    >>> from sagasim.model import Arrivals, Saga, Step
    >>> fast_supported(Saga(name="s", steps=(Step(name="a"),))) is None
    True
    >>> fast_supported(Saga(name="s", steps=(Step(name="a"),), arrivals=Arrivals(rate_per_s=5)))
    'instances arrive and share the services (arrivals): only SimPy queues them'
    """
    if saga.coordination == "choreography":
        return "a choreography runs on SimPy only (services reacting to broker events)"
    if saga.coordinator is not None and saga.coordinator.crash > 0:
        return "the coordinator crashes (coordinator.crash): only SimPy simulates its recovery"
    touched = any(a.writes or getattr(a, "reads", ()) for a in saga.actions())
    if touched or saga.coordinator is not None:
        return "steps share resources or a coordinator is modelled: only SimPy reports them"
    if saga.arrivals is not None:
        return "instances arrive and share the services (arrivals): only SimPy queues them"
    return None


class Tables:
    """The plan's lists as numpy arrays, and the memo tables of the participants' ledgers.

    Moves are indexed by ``((state * W + position) * 4 + kind) * 2 + exhausted`` where ``W`` is
    the widest state's number of running actions.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        states, k = len(plan.state_ids), len(plan.names)
        self.width = w = max([1, *(len(r) for r in plan.running)])
        self.running = np.full((states, w), -1, np.int64)
        for s, run in enumerate(plan.running):
            self.running[s, : len(run)] = run
        self.outcome = np.array(plan.outcome, np.int64)
        self.fail = np.array(plan.fail, np.uint8)
        self.initial = plan.initial
        moves = states * w * 8
        self.target = np.full(moves, -1, np.int64)
        self.retried = np.zeros(moves, bool)
        self.effect_id = np.full(moves, -1, np.int64)
        self.carry = np.full((moves, w), EMPTY, np.int64)
        self.effects: list[Effects] = []
        ids: dict[tuple[tuple[str, str], ...], int] = {}
        for s, per_position in enumerate(plan.moves):
            for pos, per_kind in enumerate(per_position):
                for kind, pair in enumerate(per_kind):
                    for exhausted, move in enumerate(pair or ()):
                        target, carry, retried, _, effects = move
                        m = ((s * w + pos) * 4 + kind) * 2 + exhausted
                        self.target[m], self.retried[m] = target, retried
                        self.carry[m, : len(carry)] = carry
                        if effects is not None:
                            if effects[0] not in ids:
                                ids[effects[0]] = len(self.effects)
                                self.effects.append(effects)
                            self.effect_id[m] = ids[effects[0]]
        self.decisions = any(d is not None for d in plan.decide)
        b = max([1, *(len(d[0]) for d in plan.decide if d is not None)])
        self.bounds = np.full((states, b), np.inf)
        self.branch_target = np.full((states, b), -1, np.int64)
        self.branch_carry = np.full((states, b, w), EMPTY, np.int64)
        for s, decision in enumerate(plan.decide):
            if decision is None:
                continue
            for i, (bound, (target, carry, *_)) in enumerate(zip(*decision, strict=True)):
                self.bounds[s, i], self.branch_target[s, i] = bound, target
                self.branch_carry[s, i, : len(carry)] = carry
        actions = plan.actions
        self.limit = np.array([NEVER if n is None else n for n in plan.limit], np.int64)
        self.timeout = np.array(plan.timeout, np.float64)
        self.is_compensation = np.array(plan.compensation, bool)
        self.late_tracked = np.array(plan.late_tracked, bool)
        self.lands_late = bool(self.late_tracked.any())
        self.effect = np.array(plan.effect, bool)
        self.reject = np.array([a.reject for a in actions], np.float64)
        self.fail_or_reject = self.reject + (1 - self.reject) * [a.failure for a in actions]
        self.outages = [np.array(o, np.float64).reshape(-1, 2) for o in plan.outages]
        self.jitter = [a.retry.jitter for a in actions]
        self.delays: list[list[float]] = [[] for _ in range(k)]
        # the participants' ledgers, interned: ids, their anomaly bits, and what edges and
        # late landings turn them into (next_ledger[effects id, ledger id]; -1: not yet known)
        self.ledger_ids: dict[tuple[int, ...], int] = {plan.people.initial: 0}
        self.ledgers = [plan.people.initial]
        self.flags = [plan.people.initial[-1]]
        self.next_ledger = np.full((max(1, len(self.effects)), 64), -1, np.int64)
        self.landed: dict[int, int] = {}

    # --- ledgers
    def intern(self, ledger: tuple[int, ...]) -> int:
        i = self.ledger_ids.get(ledger)
        if i is None:
            i = self.ledger_ids[ledger] = len(self.ledgers)
            self.ledgers.append(ledger)
            self.flags.append(ledger[-1])
        return i

    def after_edges(self, effect: np.ndarray, ledger: np.ndarray) -> np.ndarray:
        """The ledgers after each edge's participants' calls (``effect``: its effects id)."""
        table = self.ledger_table()
        found = table[effect, ledger]
        missing = found < 0
        if missing.any():
            for e, i in set(zip(effect[missing].tolist(), ledger[missing].tolist(), strict=True)):
                after = self.intern(self.plan.ledger_after(self.effects[e], self.ledgers[i]))
                table = self.ledger_table()
                table[e, i] = after
            found = table[effect, ledger]
        return found

    def ledger_table(self) -> np.ndarray:
        """``next_ledger``, grown to a column per ledger interned so far (late landings intern
        ledgers too, so it may lag behind them)."""
        table = self.next_ledger
        if len(self.ledgers) > table.shape[1]:
            grown = np.full((table.shape[0], 2 * len(self.ledgers)), -1, np.int64)
            grown[:, : table.shape[1]] = table
            self.next_ledger = table = grown
        return table

    def after_landings(
        self, ok: np.ndarray, action: np.ndarray, state: np.ndarray, ledger: np.ndarray
    ) -> np.ndarray:
        """The ledgers after a timed-out attempt of ``action`` lands late (``ok``) or is lost,
        in ``state``."""
        plan, k, states = self.plan, len(self.plan.names), len(self.plan.state_ids)
        keys = ((ok.astype(np.int64) * k + action) * states + state) * (1 << 32) + ledger
        unique, inverse = np.unique(keys, return_inverse=True)
        after = np.empty(len(unique), np.int64)
        for j, key in enumerate(unique.tolist()):
            known = self.landed.get(key)
            if known is None:
                code, i = divmod(key, 1 << 32)
                code, s = divmod(code, states)
                landed, a = divmod(code, k)
                name, before = plan.names[a], self.ledgers[i]
                if landed:
                    new = plan.people.land_late(before, name, plan.running_names[s])
                else:
                    new = plan.people.lost(before, name)
                known = self.landed[key] = self.intern(new)
            after[j] = known
        return after[inverse.reshape(-1)]

    # --- backoff
    def backoff(self, rng: np.random.Generator, action: np.ndarray, failed: np.ndarray) -> Any:
        """The waits after the ``failed``-th failed attempt of each ``action``, jittered."""
        wait = np.empty(len(action))
        for a in np.unique(action).tolist():
            sel = action == a
            delays, retry = self.delays[a], self.plan.actions[a].retry
            most = int(failed[sel].max())
            while len(delays) < most:
                try:
                    delays.append(retry.nominal_delay_ms(len(delays) + 1))
                except OverflowError:
                    delays.append(math.inf)
            d = np.asarray(delays)[failed[sel] - 1]
            if self.jitter[a]:
                d = np.where(d > 0, d * rng.random(len(d)), d)
            wait[sel] = d
        return wait


@functools.lru_cache(maxsize=8)
def tables(saga: Saga) -> Tables:
    """The tables of ``saga``, once per process: later chunks reuse them and their memos."""
    return Tables(orchestration.plan(saga))


class _Batch:
    """``n`` independent instances, one row each while they run (rows of ended instances are
    dropped); per row the attempts in flight, one column per running action."""

    #: A flight's fields, one array of rows by columns each: the action, its attempt number,
    #: when the orchestrator sees it end and how; when a timed-out one lands and how (kept only
    #: where something may land late).
    FLIGHT = ("act", "att", "due", "kind", "finish", "code")

    def __init__(self, tb: Tables, rng: np.random.Generator, n: int, first: int) -> None:
        self.tb, self.rng, self.first, w = tb, rng, first, tb.width
        self.slot = np.arange(n)
        self.sid = np.full(n, tb.initial, np.int64)
        self.now = np.zeros(n)
        self.act = np.full((n, w), -1, np.int64)
        self.att = np.zeros((n, w), np.int64)
        self.due = np.full((n, w), np.inf)
        self.kind = np.zeros((n, w), np.int64)
        self.finish = np.zeros((n, w) if tb.lands_late else (0, w))
        self.code = np.zeros((n, w) if tb.lands_late else (0, w), np.int64)
        self.flight = self.FLIGHT if tb.lands_late else self.FLIGHT[:4]
        self.columns_of = np.arange(w)
        self.ledger = np.zeros(n, np.int64)
        self.first_effect = np.full(n, np.nan)
        self.retries = np.zeros(n, np.int64)
        self.compensations = np.zeros(n, np.int64)
        self.calls = np.zeros(n, np.int64)
        # timed-out attempts still to land: when, which action, whether it succeeded, and the
        # order they were scheduled in (ties land in that order, as SimPy's events do)
        self.land_t = np.full((n, 1), np.inf)
        self.land_a = np.zeros((n, 1), np.int64)
        self.land_ok = np.zeros((n, 1), bool)
        self.land_seq = np.zeros((n, 1), np.int64)
        self.pending, self.seq = 0, 0
        k = len(tb.plan.names)
        self.attempts, self.busy = np.zeros(k, np.int64), np.zeros(k)
        self.columns: dict[str, np.ndarray] = {
            name: np.zeros(n, np.dtype(code)) for name, code in COLUMNS.items()
        }
        self.per_row = ["slot", "sid", "now", "ledger", "first_effect", "retries"]
        self.per_row += ["compensations", "calls", *self.flight]
        if tb.lands_late:
            self.per_row += ["land_t", "land_a", "land_ok", "land_seq"]

    # --- attempts
    def begin(
        self, rows: np.ndarray, cols: np.ndarray, act: np.ndarray, att: np.ndarray, at: np.ndarray
    ) -> None:
        """Start attempt number ``att`` of action ``act`` at time ``at`` in each (row, col)."""
        m = len(rows)
        if m == 0:
            return
        tb, rng = self.tb, self.rng
        if int(att.max()) > machine.MAX_ATTEMPTS:
            j = int(np.flatnonzero(att > machine.MAX_ATTEMPTS)[0])
            name, instance = tb.plan.names[act[j]], self.first + int(self.slot[rows[j]])
            raise EndlessRetryError.of(tb.plan.saga.name, name, machine.MAX_ATTEMPTS, instance)
        counts = np.bincount(act, minlength=len(tb.limit))
        used = np.flatnonzero(counts)
        if len(used) == 1:
            a = int(used[0])
            latency = np.asarray(tb.plan.actions[a].latency.sample(rng, m), np.float64)
        else:
            latency = np.empty(m)
            order, at_ = np.argsort(act, kind="stable"), 0
            for a in used.tolist():
                c = int(counts[a])
                sample = tb.plan.actions[a].latency.sample(rng, c)
                latency[order[at_ : at_ + c]] = sample
                at_ += c
        u = rng.random(m)
        code = np.where(u < tb.reject[act], REJECT, np.where(u < tb.fail_or_reject[act], FAIL, OK))
        for a in used.tolist():
            windows = tb.outages[a]
            if len(windows):
                sel = act == a
                t = at[sel]
                down = ((windows[:, 0] <= t[:, None]) & (t[:, None] < windows[:, 1])).any(1)
                code[np.flatnonzero(sel)[down]] = FAIL
        timeout = tb.timeout[act]
        timed = latency > timeout
        flat = rows * tb.width + cols
        self.act.reshape(-1)[flat], self.att.reshape(-1)[flat] = act, att
        self.due.reshape(-1)[flat] = at + np.where(timed, timeout, latency)
        self.kind.reshape(-1)[flat] = np.where(timed, TIMEOUT, code)
        if tb.lands_late:
            self.finish.reshape(-1)[flat], self.code.reshape(-1)[flat] = at + latency, code
        self.attempts += counts
        self.busy += np.bincount(act, weights=latency, minlength=len(counts))
        n = len(self.sid)
        self.calls += np.bincount(rows, minlength=n)
        comp = tb.is_compensation[act]
        if comp.any():
            self.compensations += np.bincount(rows[comp], minlength=n)

    def carry_over(self, carry: np.ndarray, target: np.ndarray, rows: np.ndarray | None) -> None:
        """Rearrange the flights of ``rows`` (all rows: None) for their new states ``target``:
        column ``j`` takes the flight of column ``carry[:, j]``, or starts the target's ``j``-th
        running action now (-1), or is empty (-2). Retries are started by the caller."""
        if rows is None:
            rows = np.arange(len(carry))
        # only a flight that changes column moves; the others stay where they are
        moved = ((carry >= 0) & (carry != self.columns_of)).any(axis=1)
        if moved.any():
            r, keep = rows[moved], carry[moved]
            source = r[:, None] * self.tb.width + np.maximum(keep, 0)
            for name in self.flight:
                values = getattr(self, name)
                values[r] = values.reshape(-1)[source]
        r, c = np.nonzero(carry == EMPTY)
        if len(r):
            self.act[rows[r], c], self.due[rows[r], c] = -1, np.inf

    # --- late landings
    def schedule(self, rows: np.ndarray, at: np.ndarray, act: np.ndarray, ok: np.ndarray) -> None:
        free = self.land_t[rows] == np.inf
        if not free.any(axis=1).all():  # some row has every column taken: one more column
            n = len(self.sid)
            self.land_t = np.hstack([self.land_t, np.full((n, 1), np.inf)])
            self.land_a = np.hstack([self.land_a, np.zeros((n, 1), np.int64)])
            self.land_ok = np.hstack([self.land_ok, np.zeros((n, 1), bool)])
            self.land_seq = np.hstack([self.land_seq, np.zeros((n, 1), np.int64)])
            free = self.land_t[rows] == np.inf
        col = free.argmax(axis=1)
        self.land_t[rows, col], self.land_a[rows, col], self.land_ok[rows, col] = at, act, ok
        self.land_seq[rows, col] = self.seq
        self.seq += 1
        self.pending += len(rows)

    def land(self, until: np.ndarray) -> None:
        """Apply, in time order, every pending landing of each row at or before ``until``."""
        tb = self.tb
        while self.pending:
            soonest = self.land_t.min(axis=1)
            rows = np.flatnonzero((soonest <= until) & (soonest < np.inf))
            if len(rows) == 0:
                return
            t = soonest[rows]
            first = self.land_t[rows] == t[:, None]
            col = np.where(first, self.land_seq[rows], NEVER).argmin(axis=1)
            act, ok = self.land_a[rows, col], self.land_ok[rows, col]
            self.ledger[rows] = tb.after_landings(ok, act, self.sid[rows], self.ledger[rows])
            effect = ok & tb.effect[act] & np.isnan(self.first_effect[rows])
            self.first_effect[rows[effect]] = t[effect]
            self.land_t[rows, col] = np.inf
            self.pending -= len(rows)

    # --- choices and ends
    def decide(self, rows: np.ndarray) -> None:
        """Draw the branch of each choice the ``rows`` stand at, and of each reached at once."""
        tb = self.tb
        while len(rows):
            sid = self.sid[rows]
            u = self.rng.random(len(rows))
            branch = (u[:, None] >= tb.bounds[sid]).sum(axis=1)
            target, carry = tb.branch_target[sid, branch], tb.branch_carry[sid, branch]
            self.carry_over(carry, target, rows)
            self.sid[rows] = target
            r, c = np.nonzero(carry == -1)
            self.begin(rows[r], c, tb.running[target[r], c], np.ones(len(r), np.int64),
                       self.now[rows[r]])  # fmt: skip
            rows = rows[tb.outcome[target] == DECIDING]

    def end(self, done: np.ndarray) -> None:
        """Write the columns of the instances ``done`` (a mask of rows) and drop their rows."""
        tb, cols = self.tb, self.columns
        if self.pending:  # what still lands after the end counts for the anomalies
            self.land(np.where(done, np.inf, -np.inf))
        slot, comps = self.slot[done], self.compensations[done]
        now = self.now[done]
        cols["outcome"][slot] = tb.outcome[self.sid[done]]
        cols["latency_ms"][slot] = now
        cols["retries"][slot] = np.minimum(self.retries[done], INT16_MAX)
        cols["compensations"][slot] = np.minimum(comps, INT16_MAX)
        cols["anomaly_flags"][slot] = np.asarray(tb.flags)[self.ledger[done]]
        cols["messages"][slot] = np.minimum(2 * self.calls[done], UINT16_MAX)
        cols["fail"][slot] = tb.fail[self.sid[done]]
        first_effect = self.first_effect[done]
        window = np.where((comps > 0) & ~np.isnan(first_effect), now - first_effect, np.nan)
        cols["window_ms"][slot] = window
        keep = np.flatnonzero(~done)
        for name in self.per_row:
            setattr(self, name, getattr(self, name)[keep])

    # --- the loop
    def run(self) -> None:
        tb, w = self.tb, self.tb.width
        n = len(self.sid)
        first = tb.running[tb.initial]
        cols = np.flatnonzero(first >= 0)
        rows = np.repeat(np.arange(n), len(cols))
        cols = np.tile(cols, n)
        self.begin(rows, cols, first[cols], np.ones(len(rows), np.int64), np.zeros(len(rows)))
        if tb.outcome[tb.initial] == DECIDING:
            self.decide(np.arange(n))
        done = tb.outcome[self.sid] >= 0
        if done.any():
            self.end(done)
        while len(self.sid):
            if w == 1:  # one action runs at a time: its column is every row's next event
                pos = np.zeros(len(self.sid), np.int64)
                t, act, kind, att = (
                    a[:, 0].copy() for a in (self.due, self.act, self.kind, self.att)
                )
            else:
                pos = self.due.argmin(axis=1)
                flat = np.arange(len(pos)) * w + pos
                t, act = self.due.reshape(-1)[flat], self.act.reshape(-1)[flat]
                kind, att = self.kind.reshape(-1)[flat], self.att.reshape(-1)[flat]
            if self.pending:
                self.land(t)
            m = ((self.sid * w + pos) * 4 + kind) * 2 + (att >= tb.limit[act])
            target = tb.target[m]
            if (target < 0).any():
                j = int(np.flatnonzero(target < 0)[0])
                raise SagaSimError(
                    f"{tb.plan.saga.name}: no edge for {tb.plan.names[act[j]]} "
                    f"(kind {kind[j]}) from {tb.plan.state_ids[self.sid[j]]}"
                )
            effect = tb.effect_id[m]
            changed = effect >= 0
            if changed.any():
                self.ledger[changed] = tb.after_edges(effect[changed], self.ledger[changed])
            landed = (kind == OK) & tb.effect[act]
            if landed.any():
                first = landed & np.isnan(self.first_effect)
                self.first_effect[first] = t[first]
            if tb.lands_late:
                late = np.flatnonzero((kind == TIMEOUT) & tb.late_tracked[act])
                if len(late):
                    ok = self.code[late, pos[late]] == OK
                    self.schedule(late, self.finish[late, pos[late]], act[late], ok)
            retried = tb.retried[m]
            self.retries += retried
            self.sid, self.now = target, t
            carry = tb.carry[m]
            outcome = tb.outcome[target]
            self.carry_over(carry, target, None)
            going = outcome < 0
            r, c = np.nonzero((carry == -1) & going[:, None])
            again = np.flatnonzero(retried & going)
            again_col = np.argmax(carry[again] == pos[again, None], axis=1)
            wait = tb.backoff(self.rng, act[again], att[again]) if len(again) else np.zeros(0)
            self.begin(
                np.concatenate([r, again]),
                np.concatenate([c, again_col]),
                np.concatenate([tb.running[target[r], c], act[again]]),
                np.concatenate([np.ones(len(r), np.int64), att[again] + 1]),
                np.concatenate([t[r], t[again] + wait]),
            )
            if tb.decisions:
                deciding = np.flatnonzero(outcome == DECIDING)
                if len(deciding):
                    self.decide(deciding)
                    outcome = tb.outcome[self.sid]
            done = outcome >= 0
            if done.any():
                self.end(done)


def run_chunk(
    saga: Saga, seed: int, seed_seq: np.random.SeedSequence, first: int, n: int
) -> Results:
    """``n`` independent instances of ``saga`` from instance number ``first`` on the fast
    path, self-contained so that it can run in another process."""
    reason = fast_supported(saga)
    if reason is not None:
        raise SagaSimError(f"{saga.name}: the fast engine cannot run it: {reason}")
    tb = tables(saga)
    batch = _Batch(tb, np.random.default_rng(seed_seq), n, first)
    batch.run()
    plan = tb.plan
    services = {s: ServiceStats(s, plan.saga.service(s).capacity) for s in plan.service}
    for a, s in enumerate(plan.service):
        services[s].add(ServiceStats(s, None, int(batch.attempts[a]), float(batch.busy[a])))
    return assemble(
        plan.saga.name,
        seed,
        batch.columns,  # type: ignore[arg-type]
        services,
        [],
        first=first,
        horizon_ms=None,
        fail_names=plan.fail_names,
        containers=plan.containers,
        decisions=plan.choices,
        engine="fast",
    )
