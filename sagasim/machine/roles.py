"""The roles of a choreography: each step's part, and who listens to what, from the saga's shape.

Every step of a choreographed saga is a *role* of its service; so is each ``choice`` (its
*decider*), each ``fail`` and each ``succeed``: pseudo-roles without actions, performed by the
service of the step before them (a choice's branches inherit the decider's service; with no
step before, the pseudo-role is a service of its own, named after it). A role's own machine::

    step:     waiting --start--> running --ok--> done --undo--> undoing --ok--> undone
                 |                  |                               |
                 +--skip--> skipped +--(rejected, exhausted)--> failed  +--(...)--> stuck
    choice:   waiting --start--> deciding --CHOICE.LABEL--> chose_LABEL   (and skip)
    fail:     waiting --start--> failed                                   (and skip)
    succeed:  waiting --start--> succeeded

A step with ``compensate_on_failure`` goes from ``running`` to ``self_undoing`` instead, runs
its own compensation, and is ``failed`` (and says so) once that succeeded.

Who listens to what (:func:`roles`):

* **forward**: a role starts once one of its ``starts`` alternatives has fully arrived: the
  ``done`` of the step before it (the ``done`` of every branch's last step after a parallel
  group: an AND-join), or, after a choice, what ends whichever branch ran (an OR-join; an
  empty branch is its event ``CHOICE.LABEL`` itself); a branch's first entry starts on its
  branch event, the saga's first entry with the saga;
* **halting**: a role in a parallel group that has not started never starts once a step (or a
  ``fail``) of another branch has failed (in-flight work is awaited, never cancelled);
* **backward**: a step with a compensation, before the pivot, is undone once it is done and a
  later (or concurrent) step or ``fail`` up to the pivot has failed; in ``parallel`` order it
  undoes at once; in ``reverse`` order it first waits until each of the nearest later
  compensatable steps is known to hold no effect: undone (``COMPENSATION.done``), failed
  (``STEP.failed``), skipped (``STEP.skipped``), never to start (a step or ``fail`` it needs has
  failed), or in a branch not taken (another branch's event of a choice on the way). The
  nearest steps are found on every way forward: past a choice unless each of its branches
  holds one, past a group unless one of its branches does.

Examples
--------
>>> from sagasim.model import Branch, Choice, Compensation, Fail, Saga, Step
>>> saga = Saga(name="order", steps=(
...     Step(name="check", service="stock", effects=False),
...     Choice(name="level", branches=(
...         Branch(when="high", probability=0.9,
...                steps=(Step(name="reserve", compensation=Compensation(name="release")),)),
...         Branch(when="low", default=True, steps=(Fail(name="out"),)),
...     )),
...     Step(name="charge", reject=0.1),
... ))
>>> [(r.step, r.kind, r.service) for r in roles(saga)]
[('check', 'step', 'stock'), ('level', 'choice', 'stock'), ('reserve', 'step', 'reserve'), \
('out', 'fail', 'stock'), ('charge', 'step', 'charge')]
>>> by_name = {r.step: r for r in roles(saga)}
>>> by_name["reserve"].starts, by_name["charge"].starts
((frozenset({'level.high'}),), (frozenset({'reserve.done'}),))
>>> sorted(by_name["reserve"].failures)
['charge.failed']
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.saga import Action, Choice, Entry, Fail, Parallel, Saga, Step, Succeed, blocks_of
from .orchestration import RETRY_GUARD
from .program import branch_labels

__all__ = ["ALWAYS", "Condition", "Role", "RoleEdge", "exit_condition", "role_edges", "roles"]

#: When a role may start: any one of the sets of events, all of whose events have arrived.
Condition = frozenset[frozenset[str]]
#: Starts with the saga (one alternative, waiting for nothing).
ALWAYS: Condition = frozenset({frozenset()})
NEVER: Condition = frozenset()


@dataclass(frozen=True, slots=True)
class Role:
    """One step's (or pseudo-role's) part in the choreography: what it waits for and what it
    listens to.

    ``starts`` are the alternatives any one of which, fully arrived, starts the role (none: it
    never starts; one empty alternative: it starts with the saga) and ``triggers`` every event
    in them; any of ``aborts`` makes a waiting role never start; any of ``failures`` means the
    saga is failing and the step, once done, must be undone (``compensation``; None when
    nothing is undone: no compensation, or at or after the pivot); ``waits`` are the later
    steps (and their compensations) whose undo comes first, in ``reverse`` order, and
    ``clears`` (one set per wait) the events any of which says that step holds no effect to
    undo first. ``kind`` is ``step``, ``choice``, ``fail`` or ``succeed``; a choice's
    ``branches`` are its labels and their probabilities; a fail's ``ends`` is its fail name.
    """

    step: str
    service: str
    compensation: str | None
    effects: bool
    after_pivot: bool
    idempotent: bool
    undo_idempotent: bool
    triggers: frozenset[str]
    aborts: frozenset[str]
    failures: frozenset[str]
    waits: tuple[tuple[str, str], ...]
    clears: tuple[frozenset[str], ...] = ()
    kind: str = "step"
    starts: tuple[frozenset[str], ...] = ()
    branches: tuple[tuple[str, float], ...] = ()
    ends: str | None = None

    @property
    def subscriptions(self) -> frozenset[str]:
        """Every event this role must be told about."""
        return self.triggers | self.aborts | self.failures | frozenset().union(*self.clears)

    @property
    def with_the_saga(self) -> bool:
        """Whether the role starts as the saga does, waiting for nothing."""
        return frozenset() in self.starts

    def ready(self, seen: frozenset[str]) -> bool:
        """Whether the events in ``seen`` start the role."""
        return any(alternative <= seen for alternative in self.starts)


@dataclass(frozen=True, slots=True)
class _Node:
    """A role where the saga holds it: ``path`` is ``(index, branch, index, ..., index)``
    down the nested step lists, ``hops`` the kind of container (``parallel`` or ``choice``)
    at each branch in it."""

    id: str
    kind: str
    entry: Step | Choice | Fail | Succeed
    path: tuple[int, ...]
    hops: tuple[str, ...]
    starts: Condition
    service: str


def _both(a: Condition, b: Condition) -> Condition:
    return _minimal(frozenset(x | y for x in a for y in b))


def _minimal(c: Condition) -> Condition:
    return frozenset(x for x in c if not any(y < x for y in c))


def _one(event: str) -> Condition:
    return frozenset({frozenset({event})})


class _Shape:
    """One walk of the saga placing every role, with the condition that ends the saga."""

    def __init__(self, saga: Saga) -> None:
        self.nodes: dict[str, _Node] = {}
        self.taken = {a.name for a in saga.actions()}
        self.taken |= {e.name for e in _entries(saga.steps) if isinstance(e, Choice)}
        self.exit = self.block(saga.steps, (), (), ALWAYS, None)

    def add(self, node: _Node) -> None:
        self.nodes[node.id] = node

    def fresh(self, name: str) -> str:
        """A role id for a fail or succeed named ``name`` (a fail name may be used twice)."""
        found, k = name, 1
        while found in self.taken:
            k += 1
            found = f"{name}_{k}"
        self.taken.add(found)
        return found

    def block(
        self,
        entries: tuple[Entry, ...],
        prefix: tuple[int, ...],
        hops: tuple[str, ...],
        cond: Condition,
        owner: str | None,
    ) -> Condition:
        """Place the roles of ``entries`` (reached under ``cond``); what ends the list."""
        for i, e in enumerate(entries):
            path = (*prefix, i)
            if isinstance(e, Step):
                self.add(_Node(e.name, "step", e, path, hops, cond, e.service_name))
                cond, owner = _one(f"{e.name}.done"), e.service_name
            elif isinstance(e, Choice):
                decider = owner or e.name
                self.add(_Node(e.name, "choice", e, path, hops, cond, decider))
                cond = NEVER
                for b, (label, branch) in enumerate(zip(branch_labels(e), e.branches)):
                    start = _one(f"{e.name}.{label}")
                    cond |= self.block(branch.steps, (*path, b), (*hops, "choice"), start, decider)
                owner = decider
            elif isinstance(e, Parallel):
                joined = ALWAYS
                for b, steps in enumerate(e.branches):
                    ends = self.block(steps, (*path, b), (*hops, "parallel"), cond, owner)
                    joined = _both(joined, ends)
                cond = joined
            elif isinstance(e, (Fail, Succeed)):
                kind = "fail" if isinstance(e, Fail) else "succeed"
                self.add(_Node(self.fresh(e.name), kind, e, path, hops, cond, owner or e.name))
                return NEVER
            else:  # the compiler refuses the rest before it gets here
                raise AssertionError(f"no role for {type(e).__name__}")
        return _minimal(cond)


def _entries(entries: tuple[Entry, ...]) -> list[Entry]:
    found: list[Entry] = []
    for e in entries:
        found.append(e)
        for block in blocks_of(e):
            found.extend(_entries(block))
    return found


def _relation(x: _Node, y: _Node) -> str:
    """How ``y`` stands to ``x``: ``after`` (it can only run once ``x`` is over), ``before``,
    ``concurrent`` (in another branch of a parallel group) or ``exclusive`` (another branch of a
    choice)."""
    for j, (a, b) in enumerate(zip(x.path, y.path)):
        if a != b:
            if j % 2 == 0:
                return "after" if b > a else "before"
            return "concurrent" if x.hops[j // 2] == "parallel" else "exclusive"
    return "after" if len(y.path) > len(x.path) else "before"  # a choice and its branches


def _scan(entries: tuple[Entry, ...], undoes: frozenset[str]) -> tuple[list[str], bool]:
    """The nearest steps of ``undoes`` on every way through ``entries``, and whether every way
    meets one (or ends)."""
    found: list[str] = []
    for e in entries:
        if isinstance(e, Step):
            if e.name in undoes:
                return [*found, e.name], True
        elif isinstance(e, (Fail, Succeed)):
            return found, True
        elif isinstance(e, (Choice, Parallel)):
            blocks = blocks_of(e)
            stops = []
            for block in blocks:
                inner, stop = _scan(block, undoes)
                found += inner
                stops.append(stop)
            if (all if isinstance(e, Choice) else any)(stops):
                return found, True
    return found, False


def _nearest(saga: Saga, path: tuple[int, ...], undoes: frozenset[str]) -> list[str]:
    """The nearest steps of ``undoes`` after the role at ``path``, outward from its list."""
    rests: list[tuple[Entry, ...]] = []
    block = saga.steps
    for j in range(0, len(path), 2):
        rests.append(block[path[j] + 1 :])
        if j + 1 < len(path):
            block = blocks_of(block[path[j]])[path[j + 1]]
    found: list[str] = []
    for rest in reversed(rests):
        inner, stop = _scan(rest, undoes)
        found += inner
        if stop:
            break
    return found


def roles(saga: Saga) -> tuple[Role, ...]:
    """The roles of ``saga``, in document order (see the module docstring for the rules)."""
    shape = _Shape(saga)
    nodes = list(shape.nodes.values())
    pivot = len(saga.steps) if saga.pivot_index is None else saga.pivot_index
    failing = [n for n in nodes if n.kind in ("step", "fail") and n.path[0] <= pivot]

    def compensation(n: _Node) -> str | None:
        step = n.entry
        if isinstance(step, Step) and step.compensation is not None and n.path[0] < pivot:
            return step.compensation.name
        return None

    undoes = frozenset(n.id for n in nodes if compensation(n) is not None)
    result = []
    for n in nodes:
        failures = frozenset(
            f"{y.id}.failed"
            for y in failing
            if y is not n and _relation(n, y) in ("after", "concurrent")
        )
        aborts = frozenset(
            f"{y.id}.failed"
            for y in nodes
            if y.kind in ("step", "fail") and y is not n and _relation(n, y) == "concurrent"
        )
        waits: tuple[tuple[str, str], ...] = ()
        clears: tuple[frozenset[str], ...] = ()
        if n.id in undoes and saga.compensation_order == "reverse":
            nearest = [shape.nodes[y] for y in _nearest(saga, n.path, undoes)]
            waits = tuple((y.id, str(compensation(y))) for y in nearest)
            clears = tuple(_clears(n, y, c, nodes, failing, failures) for y, (_, c) in
                           zip(nearest, waits))  # fmt: skip
        step = n.entry
        is_step = isinstance(step, Step)
        result.append(
            Role(
                step=n.id,
                service=n.service,
                compensation=compensation(n),
                effects=is_step and step.effects,  # type: ignore[union-attr]
                after_pivot=n.path[0] > pivot,
                idempotent=not is_step or step.idempotent,  # type: ignore[union-attr]
                undo_idempotent=bool(
                    is_step and step.compensation and step.compensation.idempotent  # type: ignore[union-attr]
                ),
                triggers=frozenset().union(*n.starts),
                aborts=aborts if n.kind != "succeed" else frozenset(),
                failures=failures if n.id in undoes else frozenset(),
                waits=waits,
                clears=clears,
                kind=n.kind,
                starts=tuple(sorted(n.starts, key=sorted)),
                branches=tuple(zip(branch_labels(step), step.probabilities))
                if isinstance(step, Choice)
                else (),
                ends=step.name if isinstance(step, Fail) else None,
            )
        )
    return tuple(result)


def _clears(
    x: _Node,
    y: _Node,
    undo: str,
    nodes: list[_Node],
    failing: list[_Node],
    failures: frozenset[str],
) -> frozenset[str]:
    """The events any of which says ``y`` holds no effect that ``x``'s undo must wait for."""
    clear = {f"{undo}.done", f"{y.id}.failed"}
    if any(z.kind in ("step", "fail") and _relation(y, z) == "concurrent" for z in nodes):
        clear.add(f"{y.id}.skipped")  # a failure halts it before it starts
    clear |= failures & {f"{z.id}.failed" for z in failing if _relation(z, y) == "after"}
    for c in nodes:  # a choice on the way to y took another branch: y never runs
        depth = len(c.path)
        if c.kind == "choice" and y.path[:depth] == c.path and x.path[:depth] != c.path:
            assert isinstance(c.entry, Choice)
            labels = branch_labels(c.entry)
            clear |= {f"{c.id}.{label}" for b, label in enumerate(labels) if b != y.path[depth]}
    return frozenset(clear)


def exit_condition(saga: Saga) -> tuple[frozenset[str], ...]:
    """What ends ``saga`` going forward: the alternatives, as :attr:`Role.starts` reads, that
    would start an entry after the last one (none when every way ends in ``fail`` or
    ``succeed``)."""
    return tuple(sorted(_Shape(saga).exit, key=sorted))


# --- each role's own machine ------------------------------------------------------------------

#: A role's own edges: (source, event, target, guard).
RoleEdge = tuple[str, str, str, str | None]


def _attempt_edges(
    saga: Saga, action: Action, running: str, ok: str, failed: str
) -> list[RoleEdge]:
    """How attempts of ``action`` end, as in the orchestrated machine (same events, same guard)."""
    edges: list[RoleEdge] = []
    attempts = action.retry.attempts
    for kind in saga.possible_events(action):
        event = f"{action.name}.{kind}"
        if kind == "ok":
            edges.append((running, event, ok, None))
        elif kind == "reject" or attempts == 1:
            edges.append((running, event, failed, None))
        else:
            edges.append((running, event, running, RETRY_GUARD))
            if attempts is not None:
                edges.append((running, event, failed, "!" + RETRY_GUARD))
    return edges


def role_edges(saga: Saga, role: Role) -> list[RoleEdge]:
    """Every transition of one role's machine."""
    x = role.step
    edges: list[RoleEdge] = []
    if role.kind != "step":
        reached = {"choice": "deciding", "fail": "failed", "succeed": "succeeded"}[role.kind]
        edges.append(("waiting", f"{x}.start", reached, None))
        if role.aborts:
            edges.append(("waiting", f"{x}.skip", "skipped", None))
        edges += [
            ("deciding", f"{x}.{label}", f"chose_{label}", None)
            for label, p in role.branches
            if p > 0
        ]
        return edges
    step = saga.step(x)
    edges.append(("waiting", f"{x}.start", "running", None))
    if role.aborts:
        edges.append(("waiting", f"{x}.skip", "skipped", None))
    undoes_itself = step.compensate_on_failure and role.compensation is not None
    edges += _attempt_edges(
        saga, step, "running", "done", "self_undoing" if undoes_itself else "failed"
    )
    if undoes_itself:  # its own compensation first; the step has failed once that is over
        assert step.compensation is not None
        edges += _attempt_edges(saga, step.compensation, "self_undoing", "failed", "stuck")
    if not role.idempotent:
        edges.append(("done", f"{x}.again", "done", None))  # a duplicated trigger, applied
    if role.compensation is not None:
        assert step.compensation is not None
        edges.append(("done", f"{x}.undo", "undoing", None))
        edges += _attempt_edges(saga, step.compensation, "undoing", "undone", "stuck")
        if not role.undo_idempotent:
            edges.append(("undone", f"{x}.undo_again", "undone", None))  # a duplicated failure
    return edges
