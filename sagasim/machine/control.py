"""The orchestrator's control flow over a core saga (:func:`~sagasim.machine.program.core`):
where each event leads. This is where the semantics of DESIGN.md live.

A *control configuration* is a hashable tuple:

* ``("F", cursor, stages, leak, pivoted, visits)`` forward: ``cursor`` says where the saga is
  (below); ``stages`` is the undo log, what backward recovery would run, latest stage first
  (a stage is a tuple of chains run concurrently, a chain a tuple of compensations run in
  turn); ``leak`` whether an effect nothing can undo has applied; ``pivoted`` whether the pivot
  has committed; ``visits`` how often each step with ``max_visits`` has been reached;
* ``("H", cursor, stages, leak, visits, fail)`` halting: a step failed inside a parallel group
  while other branches had steps in flight; they finish those, start nothing new;
* ``("C", stages, leak, fail)`` compensating: the first stage's chains run; ``fail`` is the
  name of the ``fail`` entry that started recovery (None for a step's own failure);
* ``("S", running, fail)`` recovery failed: the actions in flight finish, then ``stuck``;
* ``("T", outcome, fail)`` an end state.

A cursor into a step list is ``(index, inner)``: at a step ``inner`` is None (the step runs);
at a choice None while it is being decided, else ``(branch, cursor)``; at a sub-saga
``(cursor, mark)`` where ``mark`` is the undo log's size and the leak flag when the child
started (a whole-child compensation replaces what the child logged); at a parallel group a
tuple of branch states: ``None`` waiting for a slot (a map's ``concurrency``),
``("r", cursor, chain, leak)`` running, ``("d", chain, leak)`` done, ``("s", chain, leak)``
stopped by a failure. Inside a branch the undo log is that branch's chain, latest first.
Groups do not nest (a model rule), so at most one group is active at a time.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..model import Choice, Fail, Goto, Parallel, Saga, Step, SubSaga, Succeed, rebuild

Config = tuple[Any, ...]
Cursor = tuple[int, Any]
#: An undo log: ``(items, leak)``; items are stages at the top, compensations in a branch.
Log = tuple[tuple[Any, ...], bool]
#: What walking a step list ends in: ``("rest", cursor, log)`` (a step runs or a choice waits),
#: ``("done", log)``, ``("succeed", log)``, ``("jump", target, log)``, ``("fail", name, log)``
#: (a fail entry, or a step reached once too often), ``("failed", step, cursor, log)`` (a step
#: failed), ``("halt", cursor, log, fail)`` (a branch of a group failed, and ``fail`` names
#: the fail entry that failed it, if one did; the cursor is at the group).
Result = tuple[Any, ...]


class Walk:
    """What one transition may change besides the cursor and the log."""

    __slots__ = ("pivoted", "visits")

    def __init__(self, pivoted: bool, visits: tuple[int, ...]) -> None:
        self.pivoted = pivoted
        self.visits = list(visits)


class Control:
    """The control flow of one core saga: :meth:`start`, :meth:`success`, :meth:`failure`,
    :meth:`decide`, and what runs in a configuration."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga
        self.sequential = saga.compensation_order == "reverse"
        self.bounded = {
            s.name: i for i, s in enumerate(s for s in saga.all_steps() if s.max_visits)
        }
        self.limit = {s.name: s.max_visits for s in saga.all_steps() if s.max_visits}
        #: Steps by name (the first of a name, as :meth:`Saga.step`), without a walk each time.
        self.steps: dict[str, Step] = {}
        for s in saga.all_steps():
            self.steps.setdefault(s.name, s)
        self._in_doubt: Control | None = None

    # --- starting and settling -----------------------------------------------------------------
    def start(self) -> Config:
        walk = Walk(False, (0,) * len(self.bounded))
        return self.top(self.settle(self.saga.steps, 0, ((), False), walk, top=True), walk)

    def settle(self, block: tuple[Any, ...], i: int, log: Log, walk: Walk, *, top: bool) -> Result:
        """Walk ``block`` from index ``i`` through the entries that take no time, to where
        something runs or waits, or to how the list ends. ``top``: the log holds stages."""
        while i < len(block):
            e = block[i]
            if isinstance(e, Step):
                if e.name in self.bounded:
                    k = self.bounded[e.name]
                    walk.visits[k] += 1
                    if walk.visits[k] > self.limit[e.name]:
                        return ("fail", "max_visits", log)
                return ("rest", (i, None), log)
            if isinstance(e, Fail):
                return ("fail", e.name, log)
            if isinstance(e, Succeed):
                return ("succeed", log)
            if isinstance(e, Goto):
                j = _index(block, e.target)
                if j is None:
                    return ("jump", e.target, log)
                i = j
                continue
            if isinstance(e, Choice):
                return ("rest", (i, None), log)
            if isinstance(e, SubSaga):
                mark = (len(log[0]), log[1])
                inner = self.settle(e.saga.steps, 0, log, walk, top=top)
                result = self.resume_sub(block, i, e, mark, inner, walk, top=top)
            else:
                result = self.start_group(block, i, e, log, walk)
            if result[0] != "next":
                return result
            i, log = result[1], result[2]
        return ("done", log)

    def start_group(
        self, block: tuple[Any, ...], i: int, group: Parallel, log: Log, walk: Walk
    ) -> Result:
        states: list[Any] = [None] * len(group.branches)
        return self.fill(block, i, group, states, log, walk)

    def fill(
        self,
        block: tuple[Any, ...],
        i: int,
        group: Parallel,
        states: list[Any],
        log: Log,
        walk: Walk,
    ) -> Result:
        """Start waiting branches while the group's concurrency allows; close a done group."""
        limit = group.concurrency or len(states)
        while True:
            active = sum(1 for s in states if s is not None and s[0] == "r")
            waiting = [b for b, s in enumerate(states) if s is None]
            if not waiting or active >= limit:
                break
            b = waiting[0]
            result = self.settle(group.branches[b], 0, ((), False), walk, top=False)
            states[b] = self.branch_state(result)
            if result[0] == "fail":
                return ("halt", (i, tuple(states)), log, result[1])
        if all(s is not None and s[0] == "d" for s in states):
            chains = tuple(s[1] for s in states if s[1])
            leak = log[1] or any(s[2] for s in states)
            items = ((chains,) + log[0]) if chains else log[0]
            return ("next", i + 1, (items, leak))
        return ("rest", (i, tuple(states)), log)

    @staticmethod
    def branch_state(result: Result) -> Any:
        """A branch's state after its steps ended in ``result``; a failed branch is stopped
        (the group halts), the same state as a branch stopped after its step in flight."""
        kind = result[0]
        if kind == "rest":
            return ("r", result[1], *result[2])
        if kind in ("done", "succeed"):
            return ("d", *result[1])
        if kind == "fail":
            return ("s", *result[2])
        if kind == "failed":
            return ("s", *result[3])
        raise AssertionError(f"a branch cannot end in {kind}")  # jumps stay inside branches

    def resume_sub(
        self,
        block: tuple[Any, ...],
        i: int,
        sub: SubSaga,
        mark: tuple[int, bool],
        inner: Result,
        walk: Walk,
        *,
        top: bool,
    ) -> Result:
        """Carry what a sub-saga's steps ended in to the list holding the sub-saga."""
        kind = inner[0]
        if kind in ("done", "succeed"):
            log = inner[1]
            if sub.compensation is not None and not walk.pivoted:
                item = ((sub.compensation.name,),) if top else sub.compensation.name
                log = ((item, *log[0][len(log[0]) - mark[0] :]), mark[1])
            return ("next", i + 1, log)
        if kind in ("rest", "failed", "halt"):
            return self.wrap(inner, i, lambda cur: (cur, mark))
        if kind == "jump":
            j = _index(block, inner[1])
            return ("next", j, inner[2]) if j is not None else inner
        return inner  # fail

    @staticmethod
    def wrap(inner: Result, i: int, make: Any) -> Result:
        """``inner`` (a result with a cursor) seen from the list that holds it at ``i``."""
        kind = inner[0]
        if kind == "rest":
            return ("rest", (i, make(inner[1])), inner[2])
        if kind == "halt":
            return ("halt", (i, make(inner[1])), inner[2], inner[3])
        return ("failed", inner[1], (i, make(inner[2])), inner[3])

    def resume_choice(
        self, block: tuple[Any, ...], i: int, b: int, inner: Result, walk: Walk, *, top: bool
    ) -> Result:
        kind = inner[0]
        if kind == "done":
            return self.settle(block, i + 1, inner[1], walk, top=top)
        if kind in ("rest", "failed", "halt"):
            return self.wrap(inner, i, lambda cur: (b, cur))
        if kind == "jump":
            j = _index(block, inner[1])
            return self.settle(block, j, inner[2], walk, top=top) if j is not None else inner
        return inner  # succeed, fail

    def after_next(
        self, block: tuple[Any, ...], result: Result, walk: Walk, *, top: bool
    ) -> Result:
        return (
            self.settle(block, result[1], result[2], walk, top=top)
            if result[0] == "next"
            else result
        )

    # --- events on a running step ------------------------------------------------------------
    def event(
        self,
        block: tuple[Any, ...],
        cur: Cursor,
        log: Log,
        action: str,
        ok: bool,
        walk: Walk,
        *,
        top: bool,
    ) -> Result:
        """``action``, running somewhere under ``cur``, succeeded (``ok``) or failed."""
        i, inner = cur
        e = block[i]
        if isinstance(e, Step):
            if not ok:
                return ("failed", e, cur, log)
            return self.settle(block, i + 1, self.completed(e, log, walk, top=top), walk, top=top)
        if isinstance(e, Choice):
            b, sub = inner
            result = self.event(e.branches[b].steps, sub, log, action, ok, walk, top=top)
            return self.resume_choice(block, i, b, result, walk, top=top)
        if isinstance(e, SubSaga):
            sub_cur, mark = inner
            result = self.event(e.saga.steps, sub_cur, log, action, ok, walk, top=top)
            resumed = self.resume_sub(block, i, e, mark, result, walk, top=top)
            return self.after_next(block, resumed, walk, top=top)
        states = list(inner)
        b = self.branch_of(e, states, action)
        _, bcur, chain, leak = states[b]
        result = self.event(e.branches[b], bcur, (chain, leak), action, ok, walk, top=False)
        states[b] = self.branch_state(result)
        if result[0] == "failed":
            states[b] = self.self_undone(result[1], states[b])
        if result[0] in ("failed", "fail"):
            return ("halt", (i, tuple(states)), log, result[1] if result[0] == "fail" else None)
        return self.after_next(block, self.fill(block, i, e, states, log, walk), walk, top=top)

    def completed(self, step: Step, log: Log, walk: Walk, *, top: bool) -> Log:
        """The log after ``step`` succeeded: its compensation is owed, or its effect leaks."""
        if walk.pivoted:
            return log
        if step.kind == "pivot":
            walk.pivoted = True
            return ((), False)  # only forward from here: nothing will be undone
        if step.compensation is not None:
            name = step.compensation.name
            return (((((name,),),) if top else (name,)) + log[0], log[1])
        return (log[0], log[1] or step.effects)

    @staticmethod
    def self_undone(step: Step, state: Any) -> Any:
        """A failed branch's state, with the step's own compensation first if it asks for it."""
        if step.compensate_on_failure and step.compensation is not None:
            return (state[0], (step.compensation.name, *state[1]), *state[2:])
        return state

    def branch_of(self, group: Parallel, states: list[Any], action: str) -> int:
        for b, state in enumerate(states):
            if (
                state is not None
                and state[0] == "r"
                and action in self.running_in(group.branches[b], state[1])
            ):
                return b
        raise KeyError(action)

    # --- decisions -------------------------------------------------------------------------------
    def decide(
        self, block: tuple[Any, ...], cur: Cursor, log: Log, branch: int, walk: Walk, *, top: bool
    ) -> Result:
        """Take ``branch`` at the first choice under ``cur`` still being decided."""
        i, inner = cur
        e = block[i]
        if isinstance(e, Choice):
            if inner is None:
                result = self.settle(e.branches[branch].steps, 0, log, walk, top=top)
                return self.resume_choice(block, i, branch, result, walk, top=top)
            b, sub = inner
            result = self.decide(e.branches[b].steps, sub, log, branch, walk, top=top)
            return self.resume_choice(block, i, b, result, walk, top=top)
        if isinstance(e, SubSaga):
            sub_cur, mark = inner
            result = self.decide(e.saga.steps, sub_cur, log, branch, walk, top=top)
            resumed = self.resume_sub(block, i, e, mark, result, walk, top=top)
            return self.after_next(block, resumed, walk, top=top)
        states = list(inner)
        for b, state in enumerate(states):
            if state is not None and state[0] == "r" and self.deciding_in(e.branches[b], state[1]):
                _, bcur, chain, leak = state
                result = self.decide(e.branches[b], bcur, (chain, leak), branch, walk, top=False)
                states[b] = self.branch_state(result)
                if result[0] == "fail":
                    return ("halt", (i, tuple(states)), log, result[1])
                return self.after_next(
                    block, self.fill(block, i, e, states, log, walk), walk, top=top
                )
        raise AssertionError("no choice is being decided")

    def deciding_in(self, block: tuple[Any, ...], cur: Cursor) -> Choice | None:
        """The first choice under ``cur`` still being decided, if any."""
        i, inner = cur
        e = block[i]
        if isinstance(e, Choice):
            if inner is None:
                return e
            return self.deciding_in(e.branches[inner[0]].steps, inner[1])
        if isinstance(e, SubSaga):
            return self.deciding_in(e.saga.steps, inner[0])
        if isinstance(e, Parallel):
            for b, state in enumerate(inner):
                if state is not None and state[0] == "r":
                    found = self.deciding_in(e.branches[b], state[1])
                    if found is not None:
                        return found
        return None

    # --- what runs -------------------------------------------------------------------------------
    def running_in(self, block: tuple[Any, ...], cur: Cursor) -> tuple[str, ...]:
        """The steps in flight under ``cur``, in branch order."""
        i, inner = cur
        e = block[i]
        if isinstance(e, Step):
            return (e.name,)
        if isinstance(e, Choice):
            return () if inner is None else self.running_in(e.branches[inner[0]].steps, inner[1])
        if isinstance(e, SubSaga):
            return self.running_in(e.saga.steps, inner[0])
        return tuple(
            name
            for b, state in enumerate(inner)
            if state is not None and state[0] == "r"
            for name in self.running_in(e.branches[b], state[1])
        )

    def running(self, config: Config) -> tuple[str, ...]:
        kind = config[0]
        if kind in ("F", "H"):
            return self.running_in(self.saga.steps, config[1])
        if kind == "C":
            return tuple(chain[0] for chain in config[1][0])
        if kind == "S":
            return tuple(config[1])
        return ()

    def decision(self, config: Config) -> Choice | None:
        """The choice a forward configuration decides before anything else happens."""
        return self.deciding_in(self.saga.steps, config[1]) if config[0] == "F" else None

    # --- the transitions -------------------------------------------------------------------------
    def success(self, config: Config, action: str) -> Config:
        kind = config[0]
        if kind == "F":
            _, cur, stages, leak, pivoted, visits = config
            walk = Walk(pivoted, visits)
            result = self.event(self.saga.steps, cur, (stages, leak), action, True, walk, top=True)
            return self.top(result, walk)
        if kind == "H":
            return self.halted(config, action, True)
        if kind == "C":
            return self.compensation_done(config, action)
        return self.stuck_wait([a for a in config[1] if a != action], config[2])

    def failure(self, config: Config, action: str) -> Config:
        kind = config[0]
        if kind == "F":
            _, cur, stages, leak, pivoted, visits = config
            walk = Walk(pivoted, visits)
            result = self.event(self.saga.steps, cur, (stages, leak), action, False, walk, top=True)
            return self.top(result, walk)
        if kind == "H":
            return self.halted(config, action, False)
        running = [a for a in self.running(config) if a != action]
        return self.stuck_wait(running, config[-1])

    def crashed(self, config: Config, action: str) -> Config:
        """Where the coordinator's recovery takes the saga after a crash left ``action``'s
        call in doubt (docs/concurrency.md): ``backward`` compensates what completed and the
        step in doubt (as if it failed and asked for its own compensation first); ``forward``,
        recovery after the pivot and recovery while compensating re-run the call, from the
        same configuration."""
        coordinator = self.saga.coordinator
        backward = coordinator is not None and coordinator.recovery == "backward"
        if not backward or config[0] not in ("F", "H") or (config[0] == "F" and config[4]):
            return config
        if self._in_doubt is None:

            def own_undo_first(entry: Any) -> Any:
                if isinstance(entry, Step) and entry.compensation is not None:
                    return replace(entry, compensate_on_failure=True)
                return entry

            steps = rebuild(self.saga.steps, own_undo_first)
            self._in_doubt = Control(replace(self.saga, steps=steps))
        return self._in_doubt.failure(config, action)

    def choose(self, config: Config, branch: int) -> Config:
        _, cur, stages, leak, pivoted, visits = config
        walk = Walk(pivoted, visits)
        return self.top(
            self.decide(self.saga.steps, cur, (stages, leak), branch, walk, top=True), walk
        )

    def top(self, result: Result, walk: Walk) -> Config:
        """The configuration a walk of the whole saga ended in."""
        kind, visits = result[0], tuple(walk.visits)
        if kind == "rest":
            stages, leak = result[2]
            return ("F", result[1], stages, leak, walk.pivoted, visits)
        if kind in ("done", "succeed"):
            return ("T", "committed", None)
        if kind == "jump":
            raise AssertionError(f"goto {result[1]}: no such entry (the model rules forbid it)")
        if walk.pivoted:  # only forward after the pivot: any failure is the end
            if kind == "fail":
                return self.stuck_wait([], result[1])
            cur = result[2] if kind == "failed" else result[1]
            failed = result[1].name if kind == "failed" else None
            others = [a for a in self.running_in(self.saga.steps, cur) if a != failed]
            return self.stuck_wait(others, None if kind == "failed" else result[3])
        if kind == "fail":
            return self.recover(result[2], (), result[1])
        if kind == "failed":
            step, _, log = result[1], result[2], result[3]
            first: tuple[Any, ...] = ()
            if step.compensate_on_failure and step.compensation is not None:
                first = (((step.compensation.name,),),)
            return self.recover(log, first, None)
        cur, (stages, leak), fail = result[1], result[2], result[3]
        return self.halted(("H", cur, stages, leak, visits, fail), None, False)

    def group_at(self, block: tuple[Any, ...], cur: Cursor) -> tuple[Parallel, tuple[Any, ...]]:
        """The active group under ``cur`` and its branch states."""
        i, inner = cur
        e = block[i]
        if isinstance(e, Parallel):
            return e, inner
        if isinstance(e, Choice):
            return self.group_at(e.branches[inner[0]].steps, inner[1])
        return self.group_at(e.saga.steps, inner[0])

    def halted(self, config: Config, action: str | None, ok: bool) -> Config:
        """In a halting group, ``action`` finished (None: the group just failed); recover once
        nothing is in flight.

        Every branch not in flight is kept as ``("s", chain, leak)``, however it got there
        (done before the failure, stopped after it, failed, or never started), so that
        halting states differ only in what still runs and what is owed."""

        def stop(group: Parallel, states: tuple[Any, ...]) -> tuple[Any, ...]:
            out = []
            for b, state in enumerate(states):
                if state is None:
                    state = ("s", (), False)
                elif state[0] == "r" and action in self.running_in(group.branches[b], state[1]):
                    step = self.steps[action]
                    chain, leak = state[2], state[3]
                    if ok:
                        chain, leak = self.completed(
                            step, (chain, leak), Walk(False, ()), top=False
                        )
                        state = ("s", chain, leak)
                    else:
                        state = self.self_undone(step, ("s", chain, leak))
                if state[0] == "r" and not self.running_in(group.branches[b], state[1]):
                    state = ("s", state[2], state[3])  # deciding: start nothing new
                elif state[0] == "d":
                    state = ("s", *state[1:])
                out.append(state)
            return tuple(out)

        _, cur, stages, leak, visits, fail = config
        cur = self.with_group(self.saga.steps, cur, stop)
        _, states = self.group_at(self.saga.steps, cur)
        if any(state[0] == "r" for state in states):
            return ("H", cur, stages, leak, visits, fail)
        chains = tuple(state[1] for state in states if state[1])
        leak = leak or any(state[2] for state in states)
        return self.recover((((chains,) if chains else ()) + stages, leak), (), fail)

    def with_group(self, block: tuple[Any, ...], cur: Cursor, change: Any) -> Cursor:
        """``cur`` with the active group's branch states replaced by ``change(group, states)``."""
        i, inner = cur
        e = block[i]
        if isinstance(e, Choice):
            b, sub = inner
            return (i, (b, self.with_group(e.branches[b].steps, sub, change)))
        if isinstance(e, SubSaga):
            return (i, (self.with_group(e.saga.steps, inner[0], change), inner[1]))
        return (i, change(e, inner))

    def recover(self, log: Log, first: tuple[Any, ...], fail: str | None) -> Config:
        """Backward recovery: run ``first`` (a failed step's own compensation), then the log."""
        stages, leak = first + log[0], log[1]
        if not self.sequential:
            flat = tuple((c,) for stage in stages for chain in stage for c in chain)
            stages = (flat,) if flat else ()
        if not stages:
            return ("T", "leaked" if leak else "compensated", fail)
        return ("C", stages, leak, fail)

    def compensation_done(self, config: Config, action: str) -> Config:
        _, stages, leak, fail = config
        current = tuple(chain[1:] if chain[0] == action else chain for chain in stages[0])
        current = tuple(chain for chain in current if chain)
        rest = ((current,) if current else ()) + stages[1:]
        if not rest:
            return ("T", "leaked" if leak else "compensated", fail)
        return ("C", rest, leak, fail)

    @staticmethod
    def stuck_wait(running: list[str], fail: str | None) -> Config:
        return ("S", tuple(running), fail) if running else ("T", "stuck", fail)


def _index(block: tuple[Any, ...], name: str) -> int | None:
    for j, e in enumerate(block):
        if getattr(e, "name", None) == name and not isinstance(e, (Fail, Succeed)):
            return j
    return None
