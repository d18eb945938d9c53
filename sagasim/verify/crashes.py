"""The state space of a saga whose coordinator crashes: a crash at every log point.

docs/concurrency.md, "The coordinator crashes", is the semantics. The coordinator logs the start
of each call, sends it, and logs its outcome; after each log write it may crash, at most
``max_crashes`` times per saga. A crash after a start record leaves that call *in doubt*: it is
still served, and *lands* (applies its effect) when its attempt would have ended ``ok``.
Recovery then takes the compiled machine's ``CALL.crash`` edge (see
:meth:`~sagasim.machine.control.Control.crashed`): the same state, where the call is re-run as
an extra attempt (``forward``, after the pivot, while compensating), or backward recovery with
the step in doubt's own compensation first.

A state here is a state of :mod:`~sagasim.verify.statespace` (a control and a ledger) and three
more things: how many crashes have happened; the call in doubt, in the state right after a crash
where only ``CALL.landed`` or ``CALL.lost`` can happen next; and the idempotent call a forward
re-run must answer ``ok`` (its first call landed; the participant answers without applying it
again), until that call's next event. So a trace reads ``a.crash, a.landed, a.ok``, and the
ledger says what it did: a landed call counts as a timed-out call that lands while its step
still runs, so that a re-run ``ok`` of a step that is not idempotent is a ``duplicate_effect``
and giving the step up is a ``late_leak``; a compensation that landed and is re-run finds
nothing to undo (``empty_compensation``).

``check`` leaves out the crashes after an outcome record: they change nothing but the budget,
so whatever a path with one reaches, the same path without it reaches too, with budget to
spare. :mod:`sagasim.analysis.crashes` needs them (they use up the budget with a probability):
with ``after_outcome`` every outcome move out of a state with budget left has a twin into the
state with one crash more, marked in :attr:`CrashSpace.after`.

The search is breadth-first from the start, so the first end state found with a property is one
at the fewest events: the shortest trace to each anomaly.

Examples
--------
>>> from sagasim.model import Coordinator, Saga, Step
>>> saga = Saga(name="s", steps=(Step(name="a", failure=0.1),),
...             coordinator=Coordinator(crash=0.01, recovery="forward"))
>>> space = explore_crashes(saga)
>>> sorted(space.anomalies_reachable())
['duplicate_effect', 'late_leak']
>>> space.trace_to(space.first_end["duplicate_effect"])
['a.crash', 'a.landed', 'a.ok']
>>> space.trace_to(space.first_end["late_leak"])
['a.crash', 'a.landed', 'a.fail']
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from ..exceptions import StateSpaceLimitError
from ..machine.orchestration import CRASH, Machine, compile_saga
from ..machine.participants import Ledger, Participants
from ..machine.program import core
from ..model import Map, Saga, walk
from .lint import Warning
from .statespace import CAP, DEFAULT_MAX_STATES, StateSpace, _LedgerStep, _Memo

__all__ = ["CrashParticipants", "CrashSpace", "can_crash", "crash_warnings", "explore_crashes"]

#: What a call in doubt did: applied its effect, or not.
LANDED, LOST = "landed", "lost"

#: A state while searching: (control, ledger, crashes, idempotent call to answer ok, call in
#: doubt), the controls and ledgers as :class:`_Memo` interns them.
_Key = tuple[int, int, int, str | None, str | None]


def can_crash(saga: Saga) -> bool:
    """Whether the coordinator of ``saga`` can crash (an orchestrated saga with a
    ``coordinator`` whose ``crash`` is above 0)."""
    c = saga.coordinator
    return c is not None and c.crash > 0 and saga.coordination == "orchestration"


class CrashParticipants(Participants):
    """:class:`~sagasim.machine.participants.Participants` that also know what a call in doubt
    does when it lands."""

    def landed(self, ledger: Ledger, action: str) -> Ledger:
        """The call of ``action`` in doubt after a crash applied its effect while its step
        still runs: what a timed-out call that lands late then does (a step applies, on an
        effect already applied a duplicate unless idempotent; a compensation undoes)."""
        if action in self.undoes:
            return self.ok(ledger, action)  # undoing: the same as a late landing's
        if action not in self.effect_index:
            return ledger
        return self._apply(ledger, action, late=True, running=True)


@dataclass(slots=True, kw_only=True)
class CrashSpace(StateSpace):
    """Every reachable state with crashes (see the module docstring), as a
    :class:`~sagasim.verify.statespace.StateSpace`, and per state: ``crashes`` so far,
    ``in_doubt`` (the call a crash just left in doubt, None in most states) and ``forced`` (an
    idempotent call whose re-run ends ``ok``, or None). ``after[e]`` says whether edge ``e`` is
    an outcome followed by a crash after its outcome record (only with ``after_outcome``)."""

    max_crashes: int
    crashes: list[int] = field(default_factory=list)
    in_doubt: list[str | None] = field(default_factory=list)
    forced: list[str | None] = field(default_factory=list)
    after: list[bool] = field(default_factory=list)


def explore_crashes(
    saga: Saga,
    *,
    participants: bool = True,
    after_outcome: bool = False,
    max_states: int = DEFAULT_MAX_STATES,
) -> CrashSpace:
    """Explore every reachable state of ``saga`` (whose coordinator can crash, see
    :func:`can_crash`) with a crash at every log point, up to ``max_crashes``; raise
    :class:`StateSpaceLimitError` past ``max_states``. ``participants=False`` explores the
    orchestrator alone (ledgers stay empty, no late landings); ``after_outcome`` adds the
    crashes after outcome records (for :mod:`sagasim.analysis`)."""
    saga = core(saga)
    coordinator = saga.coordinator
    assert coordinator is not None and can_crash(saga), f"{saga.name} cannot crash"
    machine = compile_saga(saga)
    people = CrashParticipants(saga, cap=CAP) if participants else None
    space = CrashSpace(
        saga=saga, machine=machine, participants=people, max_crashes=coordinator.max_crashes
    )
    collecting = gc.isenabled()
    gc.disable()  # many small acyclic tuples, as in statespace.explore
    try:
        _Search(saga, machine, people, space, after_outcome, max_states).run()
    finally:
        if collecting:
            gc.enable()
    return space


class _Search:
    """The breadth-first search of :func:`explore_crashes`, on :class:`_Memo`'s controls,
    ledgers and moves."""

    def __init__(
        self,
        saga: Saga,
        machine: Machine,
        people: CrashParticipants | None,
        space: CrashSpace,
        after_outcome: bool,
        max_states: int,
    ) -> None:
        self.saga, self.machine, self.people, self.space = saga, machine, people, space
        self.memo = _Memo(saga, machine, people, False)
        self.after_outcome, self.max_states = after_outcome, max_states
        self.possible = {a.name: saga.possible_events(a) for a in saga.actions()}
        self.idempotent = {a.name for a in saga.actions() if a.idempotent}
        self.undone_first = {s.name for s in saga.all_steps() if s.compensation is not None}
        self.ids: dict[_Key, int] = {}
        self.keys: list[_Key] = []
        #: Per (control, call): the control recovery resumes in, what the crash edge does to
        #: ledgers, and whether it re-runs the call (forward).
        self.recoveries: dict[tuple[int, str], tuple[int, _LedgerStep | None, bool]] = {}
        self.landings: dict[tuple[int, str], int] = {}
        self.without_undo: dict[int, _LedgerStep | None] = {}

    def run(self) -> None:
        memo, space = self.memo, self.space
        initial = self.machine.initial
        control = memo.control(initial, tuple(1 for _ in self.machine.states[initial].running))
        ledger = memo.ledger(self.people.initial if self.people else ())
        space.parent.append(-1)
        space.via.append("")
        self.ids[(control, ledger, 0, None, None)] = 0
        self.keys.append((control, ledger, 0, None, None))
        frontier = 0
        while frontier < len(self.keys):  # the list grows while it is read: the BFS queue
            self.expand(frontier)
            frontier += 1
        sids = [memo.controls[k[0]] for k in self.keys]
        space.nodes = [
            (sid, attempts, memo.ledgers[k[1]]) for (sid, attempts), k in zip(sids, self.keys)
        ]
        space.crashes = [k[2] for k in self.keys]
        space.forced = [k[3] for k in self.keys]
        space.in_doubt = [k[4] for k in self.keys]

    def add(self, source: int, key: _Key, event: str, action: str, kind: str, after: bool) -> None:
        space = self.space
        j = self.ids.get(key)
        if j is None:
            j = self.ids[key] = len(self.keys)
            if j >= self.max_states:
                raise StateSpaceLimitError(
                    f"{self.saga.name}: more than {self.max_states:,} states with coordinator "
                    f"crashes after exploring {source:,} of them; a lower max_crashes, fewer "
                    "retries or shorter parallel branches shrink it, or raise --max-states"
                )
            self.keys.append(key)
            space.parent.append(source)
            space.via.append(event)
        space.edges.append((source, j, action, kind))
        if self.after_outcome:
            space.after.append(after)

    def expand(self, i: int) -> None:
        control, ledger, crashes, forced, doubt = self.keys[i]
        if doubt is not None:
            self.resolve(i, doubt)
            return
        memo = self.memo
        moves = memo.control_moves[control]
        if moves is None:
            moves = memo.expand_control(control)
        deciding = memo.deciding[control]
        late = memo.late_moves[ledger] if not deciding else ()
        if late is None:
            late = memo.expand_ledger(ledger)
        if not moves and not late:
            memo.record_end(self.space, i, control, ledger)
            return
        budget = crashes < self.space.max_crashes and not deciding
        for target, _, step, action, kind, event in moves:
            if action == forced:
                if kind != "ok":
                    continue  # the participant answers a landed call's re-run ok
                step = self.skip_undo(step, action)
            after = ledger if step is None else step[ledger]
            keep = forced if action != forced and forced in memo.running[target] else None
            self.add(i, (target, after, crashes, keep, None), event, action, kind, False)
            if budget and self.after_outcome:
                self.add(i, (target, after, crashes + 1, keep, None), event, action, kind, True)
        running = memo.running[control]
        for action, kind, event, if_running, if_not in late:
            after = if_running if action in running else if_not
            self.add(i, (control, after, crashes, forced, None), event, action, kind, False)
        if budget:
            for action in self.machine.states[memo.controls[control][0]].running:
                key = (control, ledger, crashes + 1, forced, action)
                self.add(i, key, f"{action}.{CRASH}", action, CRASH, False)

    def resolve(self, i: int, action: str) -> None:
        """Out of a state right after a crash: the call in doubt landed or was lost, and
        recovery resumes."""
        control, ledger, crashes, forced, _ = self.keys[i]
        target, step, forward = self.recovery(control, action)
        possible = self.possible[action]
        ways = [LANDED] if forced == action or "ok" in possible else []
        if forced != action and any(kind != "ok" for kind in possible):
            ways.append(LOST)
        running = self.memo.running[target]
        for way in ways:
            after = ledger
            if way == LANDED and forced != action:  # a forced re-run applies nothing again
                after = self.landing(ledger, action)
            if step is not None:
                after = step[after]
            keep = forced if forced in running else None
            if forward and way == LANDED and action in self.idempotent:
                keep = action
            self.add(i, (target, after, crashes, keep, None), f"{action}.{way}", action, way, False)

    def recovery(self, control: int, action: str) -> tuple[int, _LedgerStep | None, bool]:
        """Where the machine's ``CALL.crash`` edge takes ``control``; the steps it stops
        running are given up (a step in doubt whose own compensation runs first is not)."""
        found = self.recoveries.get((control, action))
        if found is not None:
            return found
        memo = self.memo
        sid, attempts = memo.controls[control]
        (edge,) = self.machine.table[(sid, f"{action}.{CRASH}")]
        running = self.machine.states[sid].running
        after = self.machine.states[edge.target].running
        forward = edge.target == sid
        if forward:
            target = control  # the re-run is an extra attempt, not counted
        else:
            carried = dict(zip(running, attempts))
            carried.pop(action, None)
            target = memo.control(edge.target, tuple(carried.get(a, 1) for a in after))
        step = None
        people = self.people
        if people is not None:
            gone = [
                a
                for a in running
                if a not in after
                and a in people.effect_index
                and not (a == action and a in self.undone_first)
            ]
            if gone:
                step = _LedgerStep(people, memo.ledger_table, tuple(("gave_up", a) for a in gone))
        self.recoveries[(control, action)] = found = (target, step, forward)
        return found

    def landing(self, ledger: int, action: str) -> int:
        found = self.landings.get((ledger, action))
        if found is None:
            assert self.people is not None or not self.memo.ledgers[ledger]
            value = self.memo.ledgers[ledger]
            landed = self.people.landed(value, action) if self.people is not None else value
            found = self.landings[(ledger, action)] = self.memo.ledger(landed)
        return found

    def skip_undo(self, step: _LedgerStep | None, action: str) -> _LedgerStep | None:
        """``step`` without ``action``'s own undo: an idempotent compensation's re-run after its
        first call landed undoes nothing again."""
        if step is None or self.people is None or action not in self.people.undoes:
            return step
        key = id(step)
        if key not in self.without_undo:
            calls = tuple(call for call in step.calls if call != ("ok", action))
            people, table = self.people, self.memo.ledger_table
            self.without_undo[key] = _LedgerStep(people, table, calls) if calls else None
        return self.without_undo[key]


def crash_warnings(saga: Saga) -> list[Warning]:
    """``crash-duplicate``: each step with effects, not idempotent, that recovery re-runs
    forward after a crash left its call in doubt (its ``CALL.crash`` edge stays where it is),
    so that the re-run duplicates a call that landed.

    >>> from sagasim.model import Coordinator, Saga, Step
    >>> saga = Saga(name="s", steps=(Step(name="a"), Step(name="b", idempotent=True)),
    ...             coordinator=Coordinator(crash=0.01, recovery="forward"))
    >>> [w.message.split(":")[0] for w in crash_warnings(saga)]
    ['a is re-run after a coordinator crash (forward recovery)']
    """
    if not can_crash(saga):
        return []
    unrolled = core(saga)
    machine = compile_saga(unrolled)
    forward = saga.coordinator is not None and saga.coordinator.recovery == "forward"
    before_pivot: dict[str, bool] = {}  # re-run forward somewhere, and whether before the pivot
    for t in machine.transitions:
        if t.kind == CRASH and t.source == t.target:
            info = machine.states[t.source]
            early = info.phase in ("forward", "halting") and not info.after_pivot
            before_pivot[t.action] = before_pivot.get(t.action, False) or early
    named = _model_names(saga)
    warnings: dict[str, Warning] = {}
    for step in unrolled.all_steps():
        if (
            step.name not in before_pivot
            or not step.effects
            or step.idempotent
            or "ok" not in unrolled.possible_events(step)
        ):
            continue
        name = named.get(step.name, step.name)
        if before_pivot[step.name] and forward:
            fix = "make it idempotent: true, or set coordinator.recovery: backward"
            why = "forward recovery"
        else:
            fix = "make it idempotent: true (recovery: backward does not help there)"
            why = "past the pivot, or once recovery has failed, recovery is forward"
        warnings.setdefault(
            name,
            Warning(
                "crash-duplicate",
                f"{name} is re-run after a coordinator crash ({why}): when the call in doubt "
                f"had landed, the re-run applies its effect again (duplicate_effect); {fix}.",
            ),
        )
    return list(warnings.values())


def _model_names(saga: Saga) -> dict[str, str]:
    """The model's name of each map item's copy of a step (``box_2``: ``box``)."""
    names: dict[str, str] = {}
    for entry in walk(saga.steps):
        if isinstance(entry, Map):
            for k in range(1, max(entry.counts) + 1):
                for inner in walk(entry.steps):
                    name = getattr(inner, "name", None)
                    if name is not None:
                        names[f"{name}_{k}"] = name
    return names
