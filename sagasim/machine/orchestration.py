"""Compile a saga into an explicit python-statemachine class, and a transition table from it.

The compiler walks every *control configuration* the orchestrator can be in (what they are and
where each event leads is :mod:`sagasim.machine.control`, the one place the semantics of
DESIGN.md live) and turns each into a state of a flat ``StateMachine``:

* forward: where the saga is in its nested step lists, what it owes if it must recover;
* deciding: a choice is drawn, at once, while the work in flight goes on;
* halting: a step failed inside a parallel group; the other branches finish the step they run;
* compensating: the compensations still to do, in stages (``reverse`` order: one stage per
  entry, latest first, a group's branches as concurrent chains; ``parallel``: one stage, every
  compensation its own chain), and whether an effect is left that nothing can undo (``leaked``);
* stuck-waiting: recovery has failed; in-flight actions finish, nothing new starts;
* the four end states ``committed``, ``compensated``, ``leaked``, ``stuck``, one per fail name
  that can lead there (``compensated__out_of_stock``).

Why an explicit product rather than the library's parallel states: checking, analysis and
simulation all need one *flat* state per moment of the saga, with events that each move one
action on; a product machine gives exactly that, its transition table is a dictionary, and the
library's own class-creation checks (reachability, final states) still run on it. The price is
size: a group of ``b`` branches of ``n`` steps has about ``(n + 1) ** b`` forward states, fine
for the groups sagas have in practice.

Events are ``ACTION.EVENT`` with EVENT one of ``ok``, ``fail``, ``reject``, ``timeout``, and
``CHOICE.LABEL`` for a choice's branches, and ``ACTION.crash`` where the coordinator may crash
with that call in doubt (a ``coordinator``; see :meth:`Control.crashed`); a transient failure
(``fail`` or ``timeout``) with attempts left loops back to the same state under the guard
``retry_left``, the one guard of every machine. Only events the model makes possible are
compiled (no ``reject`` edge where ``reject`` is 0, no edge for a branch of probability 0), so
the class depends on the saga's structure, not on its numbers, and is cached on that structure.

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... ))
>>> machine = compile_saga(saga)
>>> sorted(machine.states)
['charge', 'committed', 'compensated', 'release', 'reserve']
>>> machine.step("reserve", "reserve.ok").target
'charge'
>>> machine.step("charge", "charge.reject").target
'release'
>>> sm = machine.instantiate(saga)
>>> _ = sm.send("reserve.ok"); _ = sm.send("charge.reject"); _ = sm.send("release.ok")
>>> sorted(s.id for s in sm.configuration)
['compensated']
"""

from __future__ import annotations

import gc
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from statemachine import State, StateMachine
from statemachine.exceptions import InvalidDefinition
from statemachine.factory import StateMachineMetaclass
from statemachine.transition_list import TransitionList

from ..exceptions import StateSpaceLimitError
from ..model import Action, Choice, Fail, Goto, Parallel, Saga, Step, SubSaga, Succeed
from .control import Config, Control
from .program import branch_labels, core

Phase = Literal["forward", "halting", "compensating", "stuck_wait", "terminal"]
OUTCOMES = ("committed", "compensated", "leaked", "stuck")
#: Outcomes a saga designer wants: every effect applied once, or every effect undone once.
CONSISTENT = frozenset({"committed", "compensated"})
EVENT_KINDS = ("ok", "fail", "reject", "timeout")
#: The event of a crash of the coordinator while a call is in doubt (never a retry).
CRASH = "crash"
RETRY_GUARD = "retry_left"
#: Most states a compiled machine may have: the library's class checks take time quadratic in it.
MAX_MACHINE_STATES = 4_000


@dataclass(frozen=True, slots=True)
class StateInfo:
    """What a state of the compiled machine means.

    ``running`` lists the actions in flight (steps or compensations, by name); ``after_pivot``
    whether the pivot has committed. A state with a ``decision`` (a choice's name) is urgent:
    its only moves are that choice's branch events, taken at once with the branches'
    probabilities, while ``running`` stays in flight. ``fail`` names the ``fail`` entry (or
    ``max_visits``) that started recovery, from then on to the end state.
    """

    id: str
    phase: Phase
    running: tuple[str, ...]
    after_pivot: bool
    outcome: str | None = None
    decision: str | None = None
    fail: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge of the machine: ``event`` from ``source`` to ``target``.

    ``guard`` is ``"retry_left"`` (a retry loop), ``"!retry_left"`` (attempts exhausted) or None.
    """

    source: str
    event: str
    target: str
    guard: str | None = None

    @property
    def action(self) -> str:
        return self.event.rsplit(".", 1)[0]

    @property
    def kind(self) -> str:
        return self.event.rsplit(".", 1)[1]

    @property
    def is_retry(self) -> bool:
        return self.guard == RETRY_GUARD


class _Compiler:
    """Breadth-first construction of every control configuration reachable from the start
    (:class:`~sagasim.machine.control.Control` says where each event leads)."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga
        self.control = Control(saga)
        self.actions: dict[str, Action] = {a.name: a for a in saga.actions()}
        #: Each action's events, ``ok`` first: asked for every state an action runs in, and
        #: each answer walks the saga (:meth:`Saga.service_of`), so worked out once here.
        self.events: dict[str, list[str]] = {
            name: ["ok", *(kind for kind in saga.possible_events(a) if kind != "ok")]
            for name, a in self.actions.items()
        }
        #: Whether every running call gets a ``CALL.crash`` edge: the coordinator crashed
        #: while the call was in flight, and recovered (:meth:`Control.crashed`).
        self.crashes = (
            saga.coordinator is not None
            and saga.coordinator.crash > 0
            and saga.coordination == "orchestration"  # a choreography's services have outboxes
        )

    def build(self) -> tuple[dict[str, StateInfo], list[Transition]]:
        control = self.control
        ids: dict[Config, str] = {}
        used: dict[str, int] = {}
        queue: deque[Config] = deque()

        def name(config: Config) -> str:
            if config not in ids:
                if len(ids) >= MAX_MACHINE_STATES:
                    raise StateSpaceLimitError(
                        f"{self.saga.name}: the orchestrator alone has more than "
                        f"{MAX_MACHINE_STATES:,} states (a parallel group of b branches of n "
                        "steps has about (n + 1) ** b, and a map of n items is a group of n "
                        "branches); use fewer or narrower parallel groups, smaller maps or a "
                        "lower concurrency, or fewer steps"
                    )
                base = self.base_name(config)
                used[base] = used.get(base, 0) + 1
                ids[config] = base if used[base] == 1 else f"{base}_{used[base]}"
                queue.append(config)
            return ids[config]

        infos: dict[str, StateInfo] = {}
        transitions: list[Transition] = []
        name(control.start())
        while queue:
            config = queue.popleft()
            sid = ids[config]
            infos[sid] = self.info(sid, config)
            choice = control.decision(config)
            if choice is not None:
                labels, chances = branch_labels(choice), choice.probabilities
                for b, (label, p) in enumerate(zip(labels, chances)):
                    if p > 0:
                        target = name(control.choose(config, b))
                        transitions.append(Transition(sid, f"{choice.name}.{label}", target))
                continue
            for action in control.running(config):
                attempts = self.actions[action].retry.attempts
                for kind in self.events[action]:
                    event = f"{action}.{kind}"
                    if kind == "ok":
                        target = name(control.success(config, action))
                        transitions.append(Transition(sid, event, target))
                        continue
                    if kind == "reject" or attempts == 1:
                        target = name(control.failure(config, action))
                        transitions.append(Transition(sid, event, target))
                        continue
                    transitions.append(Transition(sid, event, sid, RETRY_GUARD))
                    if attempts is not None:
                        target = name(control.failure(config, action))
                        transitions.append(Transition(sid, event, target, "!" + RETRY_GUARD))
                if self.crashes:
                    target = name(control.crashed(config, action))
                    transitions.append(Transition(sid, f"{action}.{CRASH}", target))
        return infos, transitions

    def base_name(self, config: Config) -> str:
        """A state's id before de-duplication: what runs, or the end state (and its fail)."""
        kind = config[0]
        if kind == "T":
            return config[1] if config[2] is None else f"{config[1]}__{config[2]}"
        running = "__".join(self.control.running(config))
        choice = self.control.decision(config)
        if choice is not None:
            return f"deciding_{choice.name}" + (f"__{running}" if running else "")
        return {"H": "halting__", "S": "stuck_waiting__"}.get(kind, "") + running

    def info(self, sid: str, config: Config) -> StateInfo:
        kind = config[0]
        phase: Phase = {
            "F": "forward",
            "H": "halting",
            "C": "compensating",
            "S": "stuck_wait",
            "T": "terminal",
        }[kind]  # type: ignore[assignment]
        choice = self.control.decision(config)
        return StateInfo(
            id=sid,
            phase=phase,
            running=self.control.running(config),
            after_pivot=kind == "F" and config[4],
            outcome=config[1] if kind == "T" else None,
            decision=None if choice is None else choice.name,
            fail=config[-1] if kind in ("H", "C", "S", "T") else None,
        )


# --- the compiled machine -------------------------------------------------------------------------


def _signature(saga: Saga) -> tuple[Any, ...]:
    """Everything that shapes the machine, and nothing else: its cache key."""

    def action_shape(a: Action | None) -> tuple[Any, ...]:
        if a is None:
            return ()
        attempts = a.retry.attempts
        retry_shape = "unbounded" if attempts is None else min(attempts, 2)
        return (a.name, saga.possible_events(a), retry_shape)

    def shape(e: Any) -> tuple[Any, ...]:
        if isinstance(e, Step):
            comp = action_shape(e.compensation)
            return (action_shape(e), e.kind, e.effects, comp, e.compensate_on_failure, e.max_visits)
        if isinstance(e, Parallel):
            return ("parallel", e.concurrency, tuple(tuple(map(shape, b)) for b in e.branches))
        if isinstance(e, Choice):
            possible = tuple(p > 0 for p in e.probabilities)
            steps = tuple(tuple(map(shape, b.steps)) for b in e.branches)
            return ("choice", e.name, branch_labels(e), possible, steps)
        if isinstance(e, SubSaga):
            steps = tuple(map(shape, e.saga.steps))
            return ("saga", e.name, action_shape(e.compensation), steps)
        if isinstance(e, (Fail, Succeed)):
            return (type(e).__name__, e.name)
        if isinstance(e, Goto):
            return ("goto", e.target)
        raise AssertionError(f"{e!r} is not in a core saga")

    c, orchestrated = saga.coordinator, saga.coordination == "orchestration"
    crashes = c.recovery if c is not None and c.crash > 0 and orchestrated else None
    return (saga.name, saga.compensation_order, crashes, tuple(map(shape, saga.steps)))


class Machine:
    """A saga compiled to a flat state machine: its states, transitions and library class.

    ``states`` maps each state id to its :class:`StateInfo`; ``transitions`` lists every edge;
    ``table`` maps ``(state, event)`` to the candidate edges, taken from the python-statemachine
    class itself (:attr:`machine_class`), so what runs fast is what the library built and checked.
    """

    def __init__(self, saga: Saga, infos: dict[str, StateInfo], edges: list[Transition]) -> None:
        self.name = saga.name
        self.states: dict[str, StateInfo] = infos
        self.initial: str = next(iter(infos))
        self.machine_class: type[StateMachine] = _build_class(saga.name, infos, edges)
        self.transitions: list[Transition] = table_from_class(self.machine_class)
        self.table: dict[tuple[str, str], tuple[Transition, ...]] = {}
        self.outgoing: dict[str, list[Transition]] = {}
        for t in self.transitions:
            self.table[(t.source, t.event)] = (*self.table.get((t.source, t.event), ()), t)
            self.outgoing.setdefault(t.source, []).append(t)

    def __repr__(self) -> str:
        return (
            f"<Machine {self.name}: {len(self.states)} states, {len(self.transitions)} transitions>"
        )

    def transitions_from(self, state: str) -> list[Transition]:
        """Every edge out of ``state``, in the machine's order."""
        return self.outgoing.get(state, [])

    @property
    def terminals(self) -> dict[str, str]:
        """End-state ids and their outcomes."""
        return {sid: info.outcome for sid, info in self.states.items() if info.outcome}

    def step(self, state: str, event: str, retry_left: bool = False) -> Transition:
        """The edge ``event`` takes from ``state``, given whether attempts are left."""
        for t in self.table[(state, event)]:
            if t.guard is None or (t.guard == RETRY_GUARD) == retry_left:
                return t
        raise KeyError((state, event))

    def instantiate(self, saga: Saga) -> StateMachine:
        """A live python-statemachine instance of ``saga`` (a saga of this machine's shape)."""
        return self.machine_class(Attempts(self, core(saga)))


@dataclass(slots=True)
class Attempts:
    """The extended state a machine's guard reads: which attempt each running action is on.

    Used as the ``model`` of a live python-statemachine instance; the table-driven simulator
    and the explorer call :func:`next_attempts` and :func:`retry_left` directly, the same rules.
    """

    machine: Machine
    saga: Saga
    current: tuple[int, ...] = ()
    state: Any = None  # where the library keeps the active state's value

    def __post_init__(self) -> None:
        self.current = tuple(1 for _ in self.machine.states[self.machine.initial].running)

    def retry_left(self, event: Any, source: State) -> bool:
        action = str(event.id).rsplit(".", 1)[0]
        info = self.machine.states[source.id]
        limit = self.saga.action(action).retry.attempts
        return retry_left(limit, self.current[info.running.index(action)])

    def after_transition(self, event: Any, source: State, target: State) -> None:
        edges = self.machine.table[(source.id, str(event.id))]
        retried = source.id == target.id and any(t.is_retry for t in edges)
        self.current = next_attempts(
            self.current,
            self.machine.states[source.id],
            self.machine.states[target.id],
            str(event.id).rsplit(".", 1)[0] if retried else None,
        )


#: Attempts of one action in one simulated instance past which it is taken never to end
#: (both simulators read it here when they run, so a test may lower it).
MAX_ATTEMPTS = 1_000_000


def retry_left(limit: int | None, attempt: int) -> bool:
    """Whether an action on attempt number ``attempt`` may try again (``None``: unbounded)."""
    return limit is None or attempt < limit


def next_attempts(
    current: tuple[int, ...], source: StateInfo, target: StateInfo, retried: str | None
) -> tuple[int, ...]:
    """Attempt numbers of ``target.running`` after a transition from ``source``.

    A retried action goes one attempt further; actions still running keep theirs; actions that
    start with this transition are on their first attempt.
    """
    before = dict(zip(source.running, current))
    if retried is not None:
        before[retried] += 1
    return tuple(before.get(action, 1) for action in target.running)


_class_counter = 0


def _build_class(saga_name: str, infos: dict[str, StateInfo], edges: list[Transition]) -> type:
    states = {
        sid: State(
            name=sid if info.outcome or info.decision else " + ".join(info.running),
            initial=index == 0,
            final=info.outcome is not None,
        )
        for index, (sid, info) in enumerate(infos.items())
    }
    title = f"{''.join(p.title() for p in saga_name.split('_'))}Saga"
    # The library checks that every state can reach a final one by a search from each state
    # (quadratic: most of the compile time of a big group); the same check, in linear time:
    cls = build_class(title, states, edges, validate_final_reachability=False)
    _check_final_reachability(cls)
    return cls


def _check_final_reachability(cls: type[StateMachine]) -> None:
    """Raise the library's ``InvalidDefinition`` if a non-final state of ``cls`` has no path
    to a final state (one backward search from the final states)."""
    into: dict[str, list[str]] = {}
    for state in cls.states:
        for t in state.transitions:
            into.setdefault(t.target.id, []).append(state.id)
    reach = [s.id for s in cls.states if s.final]
    if not reach:
        return  # the library skips the check then too
    seen = set(reach)
    while reach:
        for source in into.get(reach.pop(), ()):
            if source not in seen:
                seen.add(source)
                reach.append(source)
    cut = [s.id for s in cls.states if s.id not in seen]
    if cut:
        raise InvalidDefinition(
            "All non-final states should have at least one path to a final state. "
            f"These states have no path to a final state: {cut!r}"
        )


def build_class(
    title: str, states: dict[str, State], edges: list[Transition], **options: Any
) -> type[StateMachine]:
    """A python-statemachine class of ``states`` and ``edges`` (guarded by ``retry_left``),
    named ``title`` and a counter (the library registers classes by name); ``options`` are
    class attributes such as ``validate_final_reachability``."""
    global _class_counter
    _class_counter += 1
    # Each event's transitions are joined once at the end (``a | b`` copies ``a``: joining
    # them one by one is quadratic in an event's transitions).
    by_event: dict[str, list[Any]] = {}
    for t in edges:
        kwargs: dict[str, Any] = {"event": t.event}
        if t.guard == RETRY_GUARD:
            kwargs["cond"] = RETRY_GUARD
        elif t.guard is not None:
            kwargs["unless"] = RETRY_GUARD
        source, target = states[t.source], states[t.target]
        edge = source.to.itself(**kwargs) if source is target else source.to(target, **kwargs)
        by_event.setdefault(t.event, []).extend(edge)
    events = {event: TransitionList(found) for event, found in by_event.items()}
    attrs: dict[str, Any] = {**states, **events, **options}
    cls: Any = StateMachineMetaclass(f"{title}{_class_counter}", (StateMachine,), attrs)
    return cls


def table_from_class(machine_class: type) -> list[Transition]:
    """Read every transition back from the library class: ids, events, targets and guards."""
    table: list[Transition] = []
    for state in machine_class.states:  # type: ignore[attr-defined]
        for t in state.transitions:
            guard = None
            for spec in t.cond:
                guard = spec.attr_name if spec.expected_value else "!" + spec.attr_name
            for event in str(t.event).split():
                table.append(Transition(state.id, event, t.target.id, guard))
    return table


def compile_saga(saga: Saga) -> Machine:
    """The machine of ``saga``, built once per shape and cached (classes register globally).

    A saga with maps compiles as its :func:`~sagasim.machine.program.core`, which every answer
    then reads its actions from."""
    saga = core(saga)
    signature = _signature(saga)
    cached = _SHAPES.get(signature)
    if cached is None:
        # The library's class holds some 100,000 small objects (transitions, callback specs),
        # all alive as long as the class: the cyclic collector would only walk them, and all
        # else alive, again and again while they are made.
        collecting = gc.isenabled()
        gc.disable()
        try:
            infos, edges = _Compiler(saga).build()
            cached = _SHAPES[signature] = Machine(saga, infos, edges)
        finally:
            if collecting:
                gc.enable()
    return cached


_SHAPES: dict[tuple[Any, ...], Machine] = {}
