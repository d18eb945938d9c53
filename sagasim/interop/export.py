"""A saga written as an AWS Step Functions definition: a Catch-based compensation chain with
Retry blocks, in the shape :func:`sagasim.interop.asl.from_asl` reads back.

:func:`structural` is what that definition carries, so ``from_asl(to_asl(saga))`` equals
``structural(saga)`` whenever :func:`to_asl` can write the saga.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar, cast

from ..exceptions import SagaDefinitionError
from ..model.latency import Constant
from ..model.saga import (
    Action,
    Branch,
    Broker,
    Choice,
    Compensation,
    Entry,
    Map,
    Parallel,
    Retry,
    Saga,
    Step,
    SubSaga,
    Succeed,
    line_of,
    walk,
)
from .common import MAX_ATTEMPTS
from .export_graph import Graph, closed, graph_asl
from .tasks import catchers, pascal_case, seconds, step_comment, task, unique

A = TypeVar("A", bound=Action)


class _Writer:
    def __init__(self, saga: Saga) -> None:
        self.taken: set[str] = set()
        self.state = {a.name: unique(self.taken, pascal_case(a.name)) for a in saga.actions()}
        self.states: dict[str, Any] = {}

    def step(self, step: Step, catch: str | None, then: str | None, keep: bool) -> dict[str, Any]:
        comment = step_comment(step, dropped=not keep)
        return task(step, comment=comment, catch=catch, then=then)

    def group(
        self, group: Parallel, name: str, head: str, *, catch: str | None, then: str, keep: bool
    ) -> str:
        """Write a group's Parallel state (and what undoes it); return the new head of the chain.

        ``keep``: a later failure undoes the group, so the compensation of each branch's last
        step has a place (the others have theirs in the branch's own chain, after the pivot none).
        """
        branches: list[dict[str, Any]] = []
        undo: list[list[tuple[Compensation, str, str]]] = []  # per branch: what, whose, state
        for b, branch in enumerate(cast(tuple[tuple[Step, ...], ...], group.branches)):
            states: dict[str, Any] = {}
            inner: str | None = None  # the head of the branch's own chain
            undo.append([])
            for k, step in enumerate(branch):
                last = k == len(branch) - 1
                kept = catch is not None and (keep or not last)
                following = None if last else self.state[branch[k + 1].name]
                states[self.state[step.name]] = self.step(step, inner, following, kept)
                comp = step.compensation
                if comp is None or not kept:
                    continue
                plain = self.state[comp.name]
                undo[b].append(
                    (comp, step.name, plain if last else unique(self.taken, f"{plain}After{name}"))
                )
                if not last:
                    fail = (
                        unique(self.taken, f"{name}Branch{b + 1}Failed") if inner is None else None
                    )
                    if fail is not None:
                        states[fail] = {"Type": "Fail", "Error": "BranchCompensated"}
                    comment = f"undoes {step.name}"
                    states[plain] = task(comp, comment=comment, catch=None, then=inner or fail)
                    inner = plain
            branches.append({"StartAt": self.state[branch[0].name], "States": states})
        state: dict[str, Any] = {
            "Type": "Parallel",
            "Branches": branches,
            "ResultPath": f"$.{name}",
        }
        if catch is not None:
            state["Catch"] = catchers(catch)
        self.states[name] = state | {"Next": then}
        if not keep or not any(undo):
            return head
        undo_name, undo_branches = unique(self.taken, f"Undo{name}"), []
        for b, chain in enumerate(undo):
            chain = chain[::-1]
            states = {}
            for j, (comp, undoes, state_name) in enumerate(chain):
                following = chain[j + 1][2] if j + 1 < len(chain) else None
                comment = f"undoes {undoes}"
                states[state_name] = task(comp, comment=comment, catch=None, then=following)
            if not chain:
                states[unique(self.taken, f"{undo_name}Branch{b + 1}Nothing")] = {
                    "Type": "Pass",
                    "End": True,
                }
            undo_branches.append({"StartAt": next(iter(states)), "States": states})
        self.states[undo_name] = {
            "Type": "Parallel",
            "Comment": f"undoes {name}",
            "Branches": undo_branches,
            "ResultPath": None,
            "Next": head,
        }
        return undo_name


def to_asl(saga: Saga) -> dict[str, Any]:
    """The saga as a Step Functions definition, in the shape :func:`from_asl` reads.

    Each action is a ``Task`` invoking the Lambda function of its name (``FunctionName``);
    compensations chain through ``Catch`` and ``Next`` to a ``Fail`` state; retry policies and
    timeouts become ``Retry`` (on ``States.ALL``: narrow ``ErrorEquals`` so that rejections are
    not retried) and ``TimeoutSeconds``, in whole seconds rounded up; parallel groups become
    ``Parallel`` states; kinds go in ``Comment``. A compensation no failure can reach (that of a
    step after the pivot, or of the last step) has no place in the chain: its step's ``Comment``
    says it was left out. Latencies, rates, services, ``idempotent`` and ``rejects_late`` have
    no place in ASL. Choreography and ``compensation_order: parallel`` cannot be written. The
    graph model (choices, ``fail``, ``succeed``, ``goto``, maps, sub-sagas, self-compensation)
    is written by :func:`~sagasim.interop.export_graph.graph_asl`, whose module says how;
    :func:`to_asl_files` adds the sub-sagas' own definitions.

    Examples
    --------
    >>> from sagasim.io.dsl import saga, step
    >>> definition = to_asl(saga("s", step("hold", compensation="release"), step("pay")))
    >>> definition["States"]["Pay"]["Catch"][0]["Next"], definition["States"]["Release"]["Next"]
    ('Release', 'Compensated')
    """
    if saga.coordination != "orchestration":
        message = "expected orchestration, got choreography (Step Functions is an orchestrator)"
        raise SagaDefinitionError(message, path="coordination")
    if saga.compensation_order != "reverse":
        message = "expected reverse, got parallel (a Catch chain undoes one step after another)"
        raise SagaDefinitionError(message, path="compensation_order")
    if saga.is_graph:
        return graph_asl(saga)
    writer = _Writer(saga)
    fail, succeed = unique(writer.taken, "Compensated"), unique(writer.taken, "Committed")
    pivot = saga.pivot_index
    last = len(saga.steps) - 1 if pivot is None else pivot
    names = [
        writer.state[e.name] if isinstance(e, Step) else unique(writer.taken, f"Parallel{i + 1}")
        for i, e in enumerate(saga.steps)
    ]
    head = fail
    for index, entry in enumerate(saga.steps):
        then = names[index + 1] if index + 1 < len(names) else succeed
        catch = head if index <= last else None
        keep = index < last
        if isinstance(entry, Parallel):
            head = writer.group(entry, names[index], head, catch=catch, then=then, keep=keep)
            continue
        assert isinstance(entry, Step)  # a graph saga was refused above
        writer.states[names[index]] = writer.step(entry, catch, then, keep)
        comp = entry.compensation
        if comp is not None and keep:
            comment = f"undoes {entry.name}"
            writer.states[writer.state[comp.name]] = task(
                comp, comment=comment, catch=None, then=head
            )
            head = writer.state[comp.name]
    writer.states[fail] = {"Type": "Fail", "Error": "SagaCompensated"}
    writer.states[succeed] = {"Type": "Succeed"}
    description = {"Comment": saga.description} if saga.description else {}
    return {**description, "StartAt": names[0], "States": writer.states}


def _carried(action: A) -> A:
    retry = action.retry
    if retry.attempts == 1:
        retry = Retry()
    else:
        exponential = retry.backoff == "exponential" and retry.multiplier != 1
        retry = Retry(
            attempts=None
            if retry.attempts is None or retry.attempts > MAX_ATTEMPTS
            else retry.attempts,
            backoff="exponential" if exponential else "fixed",
            multiplier=retry.multiplier if exponential else 2.0,
            delay_ms=1000.0 * seconds(retry.delay_ms),
            max_delay_ms=None
            if retry.max_delay_ms is None
            else 1000.0 * seconds(retry.max_delay_ms),
            jitter=retry.jitter,
        )
    timeout = None if action.timeout_ms is None else 1000.0 * seconds(action.timeout_ms)
    carried = replace(
        action,
        service=None,
        latency=Constant(),
        failure=0.0,
        reject=0.0,
        timeout_ms=timeout,
        retry=retry,
        idempotent=False,
        rejects_late=False,
        writes=(),
    )
    return replace(carried, reads=()) if isinstance(carried, Step) else carried


#: The saga's keys of many instances at once, reset: ASL has no place for them.
_NO_SHARING: dict[str, Any] = {"resources": (), "instances": 1, "coordinator": None}


def structural(saga: Saga) -> Saga:
    """What of ``saga`` a Step Functions definition carries: ``from_asl(to_asl(saga))``.

    Compared, so kept: the name and description, the steps in order with their kinds (pivot,
    retriable, read-only), parallel groups and their branches, which compensation undoes which
    step, and every retry policy and timeout. Reset to the defaults, having no place in ASL:
    latencies, ``failure``, ``reject``, ``service``, ``idempotent``, ``rejects_late``, the
    services and the arrivals, and what instances share (``resources``, ``reads``, ``writes``,
    ``instances``, ``coordinator``). Rounded up to whole seconds (at least 1), as ASL counts them:
    timeouts, retry delays and ``max_delay``. Dropped, as no failure leads to them in a ``Catch``
    chain: the compensation of a step with no entry after it up to the pivot (those of the pivot,
    of the steps after it, and of the last entry of a saga without one), unless the step is in a
    parallel group before the pivot and a later step of its branch can fail.

    In the graph model the same holds per scope (the saga, a parallel branch, a map body) along
    each way: a compensation is kept when a unit after it on its way (up to the pivot) is
    caught, when its step undoes itself (``compensate_on_failure``), or when the group or map
    around it is undone by a later failure. Choice probabilities are kept (a rule's
    ``Comment``); the default branch becomes the last one, its ``when`` ``otherwise`` (it has no
    condition); branches going to the same state are one (conditions or'ed, probabilities
    added). Where the ways of a choice meet again is where a reader finds it: when all
    branches but one end, that one's steps come after the choice (the others fail or jump) or
    the rest of the list goes into it (one ends the saga with ``succeed``); a ``succeed`` where
    the saga ends anyway is dropped. Map items and concurrency, ``max_visits``, fails and
    gotos are kept; a sub-saga holds the structure of its child, read from the file named
    after it (``model``: the child's name + ``.yaml``).

    Examples
    --------
    >>> from sagasim.io.dsl import retry, saga, step
    >>> s = structural(saga("s", step("a", failure=0.1, retry=retry(3, delay="200ms")), step("b")))
    >>> s.steps[0].failure, s.steps[0].retry.delay_ms
    (0.0, 1000.0)
    """
    if saga.is_graph:
        return _graph_structural(saga)
    pivot = saga.pivot_index
    last = len(saga.steps) - 1 if pivot is None else pivot

    def carried(step: Step, keep: bool) -> Step:
        comp = step.compensation if keep and step.compensation is not None else None
        return replace(_carried(step), compensation=comp and _carried(comp))

    entries: list[Entry] = []
    for index, groups in enumerate(line_of(saga)):
        if isinstance(saga.steps[index], Step):
            entries.append(carried(groups[0][0], index < last))
            continue
        branches = tuple(
            tuple(
                carried(step, index <= last and (k < len(branch) - 1 or index < last))
                for k, step in enumerate(branch)
            )
            for branch in groups
        )
        entries.append(Parallel(branches=branches))
    return replace(saga, steps=tuple(entries), services=(), arrivals=None, **_NO_SHARING)


def _graph_structural(saga: Saga) -> Saga:
    """:func:`structural` of a graph saga: what
    :func:`~sagasim.interop.export_graph.graph_asl` writes of it."""
    graph = Graph(saga)
    graph.write()

    def carried(step: Step) -> Step:
        keep = step.name in graph.kept and step.compensation is not None
        comp = _carried(step.compensation) if keep and step.compensation else None
        own = step.compensate_on_failure and step.name in graph.own
        return replace(_carried(step), compensation=comp, compensate_on_failure=own)

    def entries(block: tuple[Entry, ...], tail: bool) -> tuple[Entry, ...]:
        out: list[Entry] = []
        todo, i = list(block), -1
        while i + 1 < len(todo):
            i += 1
            entry = todo[i]
            targets: list[str] = []
            if isinstance(entry, Choice):
                targets = graph.targets[id(entry)]
                entry, hoisted, nested = _hoist(entry, todo[i + 1 :])
                todo[i + 1 :] = [] if nested else [*hoisted, *todo[i + 1 :]]
            last = tail and i == len(todo) - 1
            if isinstance(entry, Step):
                out.append(carried(entry))
            elif isinstance(entry, Choice):
                out.append(choice(entry, targets, last))
            elif isinstance(entry, Succeed) and last:
                continue  # the end of the saga anyway: a Succeed there says nothing more
            elif isinstance(entry, Parallel):
                out.append(
                    replace(entry, branches=tuple(entries(b, False) for b in entry.branches))
                )
            elif isinstance(entry, Map):
                out.append(replace(entry, steps=entries(entry.steps, False)))
            elif isinstance(entry, SubSaga):
                child = replace(
                    structural(entry.saga),
                    coordination="orchestration",
                    compensation_order="reverse",
                    broker=Broker(),
                )
                keep = entry.name in graph.kept and entry.compensation is not None
                comp = _carried(entry.compensation) if keep and entry.compensation else None
                model = f"{entry.saga.name}.yaml"
                out.append(replace(entry, model=model, saga=child, compensation=comp))
            else:
                out.append(entry)
        return tuple(out)

    def choice(c: Choice, targets: list[str], tail: bool) -> Choice:
        ways = sorted(zip(c.branches, targets, strict=True), key=lambda bt: bt[0].default)
        rules: dict[str, Branch] = {}
        default: Branch | None = None
        for way, target in ways:
            steps = entries(way.steps, tail)
            if way.default:
                folded = [r.when for t, r in rules.items() if t == target]
                rules.pop(target, None)
                when = " or ".join([*folded, "otherwise"])
                default = Branch(when=when, steps=steps, default=True)
            elif target in rules:
                first = rules[target]
                p = (first.probability or 0.0) + (way.probability or 0.0)
                rules[target] = replace(first, when=f"{first.when} or {way.when}", probability=p)
            else:
                rules[target] = Branch(when=way.when, steps=steps, probability=way.probability)
        return replace(c, branches=(*rules.values(), *([default] if default else [])))

    return replace(saga, steps=entries(saga.steps, True), services=(), arrivals=None, **_NO_SHARING)


def _hoist(choice: Choice, rest: list[Entry]) -> tuple[Choice, tuple[Entry, ...], bool]:
    """Where the ways of a choice meet again, as a reader of the definition finds it, when all
    its branches but one never reach their end: with the others failing or jumping, that
    one's steps come after the choice (returned); with one ending the saga (``succeed``), the
    ``rest`` of the list goes into that one (True)."""
    open_ = [b for b, way in enumerate(choice.branches) if not closed(way.steps)]
    if len(open_) != 1:
        return choice, (), False
    ways, way = list(choice.branches), choice.branches[open_[0]]
    if any(_escapes(w.steps) for w in choice.branches):
        ways[open_[0]] = replace(way, steps=way.steps + tuple(rest))
        return replace(choice, branches=tuple(ways)), (), True
    ways[open_[0]] = replace(way, steps=())
    return replace(choice, branches=tuple(ways)), way.steps, False


def _escapes(steps: tuple[Entry, ...]) -> bool:
    """Whether a branch can end the saga: a ``succeed`` at its end (or in a choice there)."""
    last = steps[-1] if steps else None
    if isinstance(last, Choice):
        return any(_escapes(way.steps) for way in last.branches)
    return isinstance(last, Succeed)


def to_asl_files(saga: Saga, stem: str) -> dict[str, dict[str, Any]]:
    """The definition of ``saga`` as ``{stem}.asl.json`` and that of each sub-saga's child, once
    each, as ``{child name}.asl.json`` (the file name the importer looks the machine up by).

    >>> from sagasim.io.dsl import saga, step, sub_saga
    >>> hotel = saga("hotel", step("reserve_room", compensation="release_room"), step("confirm"))
    >>> sorted(to_asl_files(saga("trip", sub_saga("book_hotel", hotel), step("pay")), "trip"))
    ['hotel.asl.json', 'trip.asl.json']
    """
    files = {f"{stem}.asl.json": to_asl(saga)}
    written: dict[str, Saga] = {}
    for entry in walk(saga.steps):
        if not isinstance(entry, SubSaga):
            continue
        child, file = entry.saga, f"{entry.saga.name}.asl.json"
        if child.name in written and written[child.name] != child:
            raise SagaDefinitionError(
                f"expected one child saga named {child.name}, got two that differ (each "
                "machine is a file named after it)",
                path=f"{entry.name}.saga.model",
            )
        if file in files and child.name not in written:
            raise SagaDefinitionError(
                f"expected a child saga not named like the file {file} it would overwrite",
                path=f"{entry.name}.saga.model",
            )
        if child.name not in written:
            written[child.name] = child
            files[file] = to_asl(child)
    return files
