"""The rules of DESIGN.md that span the whole model: unique identifier names, probabilities
and durations in range, one pivot outside parallel groups, services that steps call, and the
rules of the graph constructs.

Errors carry a ``path`` such as ``steps[2].retry.attempts`` but no file or line: the loader adds
those.

>>> from sagasim.model import Saga, Step
>>> validate(Saga(name="s", steps=(Step(name="a", failure=1.5),)))
Traceback (most recent call last):
...
sagasim.exceptions.SagaDefinitionError: steps[0].failure: expected a probability in [0, 1], got 1.5
"""

from __future__ import annotations

import difflib
import keyword

from ..exceptions import SagaDefinitionError
from .saga import (
    RESERVED_NAMES,
    Action,
    Choice,
    Entry,
    Fail,
    Goto,
    Map,
    Parallel,
    Retry,
    Saga,
    Step,
    SubSaga,
    Succeed,
    blocks_of,
    walk,
)

__all__ = ["validate"]


def validate(saga: Saga) -> None:
    """Check the rules of DESIGN.md that span the whole model; raise on the first broken one.

    Errors carry a ``path`` such as ``steps[2].retry.attempts`` but no file or line: the loader
    adds those.
    """
    names: dict[str, str] = {}

    def check_name(name: object, path: str) -> None:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise SagaDefinitionError(f"expected an identifier, got {name!r}", path=path)
        if name in RESERVED_NAMES:
            raise SagaDefinitionError(
                f"expected a name other than the reserved {sorted(RESERVED_NAMES)}, got {name!r}",
                path=path,
            )
        if name in names:
            raise SagaDefinitionError(
                f"expected a unique name, got {name!r} again (first used at {names[name]})",
                path=path,
            )
        names[name] = path

    def check_action(action: Action, path: str) -> None:
        for attr in ("failure", "reject"):
            value = getattr(action, attr)
            if not 0.0 <= value <= 1.0:
                raise SagaDefinitionError(
                    f"expected a probability in [0, 1], got {value!r}", path=f"{path}.{attr}"
                )
        if action.timeout_ms is not None and not action.timeout_ms >= 0:
            raise SagaDefinitionError(
                f"expected a non-negative duration, got {action.timeout_ms!r} ms",
                path=f"{path}.timeout",
            )
        check_retry(action.retry, f"{path}.retry")

    def check_retry(retry: Retry, path: str) -> None:
        if retry.attempts is not None and (isinstance(retry.attempts, bool) or retry.attempts < 1):
            raise SagaDefinitionError(
                f"expected a positive integer or 'unbounded', got {retry.attempts!r}",
                path=f"{path}.attempts",
            )
        if not retry.delay_ms >= 0:
            raise SagaDefinitionError(
                f"expected a non-negative duration, got {retry.delay_ms!r} ms", path=f"{path}.delay"
            )

    if not saga.steps:
        raise SagaDefinitionError("expected at least one step, got none", path="steps")
    shared = _Shared(saga)
    pivots: list[str] = []
    used_services: set[str] = set()

    def check_step(step: Step, path: str, inside: str | None) -> None:
        check_name(step.name, f"{path}.name")
        check_action(step, path)
        used_services.add(step.service_name)
        if step.max_visits is not None and not (
            isinstance(step.max_visits, int) and step.max_visits >= 1
        ):
            raise SagaDefinitionError(
                f"expected a positive integer, got {step.max_visits!r}", path=f"{path}.max_visits"
            )
        if step.kind == "pivot":
            if inside is not None:
                raise SagaDefinitionError(
                    f"expected the pivot outside {PLURAL[inside]}, got it inside one",
                    path=f"{path}.kind",
                )
            pivots.append(path)
            if len(pivots) > 1:
                raise SagaDefinitionError(
                    f"expected at most one pivot, got a second one (first at {pivots[0]})",
                    path=f"{path}.kind",
                )
        if step.compensation is not None:
            check_name(step.compensation.name, f"{path}.compensation.name")
            check_action(step.compensation, f"{path}.compensation")
            used_services.add(step.compensation.service or step.service_name)
        shared.check_step(step, path)

    def check_list(entries: tuple[Entry, ...], prefix: str, inside: str | None) -> None:
        for i, entry in enumerate(entries):
            check_entry(entry, f"{prefix}[{i}]", inside)

    def check_entry(entry: Entry, path: str, inside: str | None) -> None:
        if isinstance(entry, Step):
            check_step(entry, path, inside)
        elif isinstance(entry, Parallel):
            refuse_nested(entry, path, inside, "a parallel group")
            if len(entry.branches) < 1:
                raise SagaDefinitionError(
                    "expected at least one branch, got none", path=f"{path}.parallel"
                )
            for b, branch in enumerate(entry.branches):
                if not branch:
                    raise SagaDefinitionError(
                        "expected a branch with at least one step, got an empty one",
                        path=f"{path}.parallel[{b}]",
                    )
                check_list(branch, f"{path}.parallel[{b}]", "parallel group")
        elif isinstance(entry, Choice):
            check_name(entry.name, f"{path}.choice.name")
            check_choice(entry, f"{path}.choice")
            for b, way in enumerate(entry.branches):
                check_list(way.steps, f"{path}.choice.branches[{b}].steps", inside)
        elif isinstance(entry, Map):
            refuse_nested(entry, path, inside, "a map")
            check_name(entry.name, f"{path}.map.name")
            check_map(entry, f"{path}.map")
            check_list(entry.steps, f"{path}.map.steps", "map body")
        elif isinstance(entry, SubSaga):
            check_name(entry.name, f"{path}.saga.name")
            if inside is not None and any(
                isinstance(e, (Parallel, Map)) for e in walk(entry.saga.steps)
            ):
                raise SagaDefinitionError(
                    f"expected a sub-saga without parallel groups or maps inside a {inside},"
                    f" got {entry.model}, which has one",
                    path=f"{path}.saga.model",
                )
            if entry.compensation is not None:
                check_name(entry.compensation.name, f"{path}.saga.compensation.name")
                check_action(entry.compensation, f"{path}.saga.compensation")
                used_services.add(entry.compensation.service or entry.name)
            try:
                check_list(entry.saga.steps, f"{path}.saga", inside)
            except SagaDefinitionError as err:  # the child's own rules held in its file
                raise SagaDefinitionError(
                    f"{err.message} (in sub-saga {entry.model}, at {err.path})",
                    path=f"{path}.saga.model",
                ) from None
        elif isinstance(entry, (Fail, Succeed)):
            word = "fail" if isinstance(entry, Fail) else "succeed"
            if not isinstance(entry.name, str) or not entry.name.isidentifier():
                raise SagaDefinitionError(
                    f"expected an identifier, got {entry.name!r}", path=f"{path}.{word}.name"
                )
            if isinstance(entry, Succeed) and inside is not None:
                raise SagaDefinitionError(
                    f"expected succeed outside {PLURAL[inside]} (a {inside} cannot end the "
                    "whole saga while others run), got it inside one",
                    path=f"{path}.succeed",
                )

    def refuse_nested(entry: Entry, path: str, inside: str | None, what: str) -> None:
        if inside is not None:
            raise SagaDefinitionError(
                f"expected {what} only outside parallel groups and maps (they do not nest),"
                f" got one inside a {inside}",
                path=path,
            )

    check_list(saga.steps, "steps", None)
    check_copies(saga.steps, "steps", names)
    check_flow(saga)
    for service in saga.services:
        spath = f"services.{service.name}"
        if service.name not in used_services:
            raise SagaDefinitionError(
                f"expected a service that a step calls ({', '.join(sorted(used_services))}),"
                f" got {service.name!r}",
                path=spath,
            )
        if service.capacity is not None and (
            isinstance(service.capacity, bool) or service.capacity < 1
        ):
            raise SagaDefinitionError(
                f"expected a positive integer, got {service.capacity!r}", path=f"{spath}.capacity"
            )
        for k, outage in enumerate(service.outages):
            if not 0 <= outage.start_ms <= outage.end_ms:
                raise SagaDefinitionError(
                    f"expected 0 <= start <= end, got start {outage.start_ms} ms and end"
                    f" {outage.end_ms} ms",
                    path=f"{spath}.outages[{k}]",
                )
    for attr in ("loss", "duplicate", "reorder"):
        value = getattr(saga.broker, attr)
        if not 0.0 <= value <= 1.0:
            raise SagaDefinitionError(
                f"expected a probability in [0, 1], got {value!r}", path=f"broker.{attr}"
            )
    if saga.broker.loss == 1 and saga.broker.redelivery.unbounded:
        raise SagaDefinitionError(
            "expected loss below 1 with unbounded redelivery (no message would ever arrive), got 1",
            path="broker.loss",
        )
    check_retry(saga.broker.redelivery, "broker.redelivery")
    if saga.arrivals is not None and not saga.arrivals.rate_per_s > 0:
        raise SagaDefinitionError(
            f"expected a positive rate, got {saga.arrivals.rate_per_s!r}/s", path="arrivals.rate"
        )


class _Shared:
    """The rules of shared resources and the coordinator (DESIGN.md, "Many instances at
    once"): names declared once, reads and writes of declared resources only, one write mode
    per resource, a compensation writing only what its step writes, probabilities in range."""

    def __init__(self, saga: Saga) -> None:
        self.declared = {r.name for r in saga.all_resources()}
        self.modes: dict[str, tuple[str, str]] = {}  # resource -> (mode, who writes it so)
        seen: set[str] = set()
        for r in saga.resources:
            if not r.name.isidentifier() or keyword.iskeyword(r.name):
                raise SagaDefinitionError(
                    f"expected an identifier, got {r.name!r}", path=f"resources.{r.name}"
                )
            if r.name in seen:
                raise SagaDefinitionError(
                    f"expected a unique resource name, got {r.name!r} again",
                    path=f"resources.{r.name}",
                )
            seen.add(r.name)
        if not (isinstance(saga.instances, int) and saga.instances >= 1):
            raise SagaDefinitionError(
                f"expected a positive integer, got {saga.instances!r}", path="instances"
            )
        c = saga.coordinator
        if c is not None:
            if not 0.0 <= c.crash <= 1.0:
                raise SagaDefinitionError(
                    f"expected a probability in [0, 1], got {c.crash!r}", path="coordinator.crash"
                )
            if not (isinstance(c.max_crashes, int) and c.max_crashes >= 1):
                raise SagaDefinitionError(
                    f"expected a positive integer, got {c.max_crashes!r}",
                    path="coordinator.max_crashes",
                )

    def known(self, name: str, path: str) -> None:
        if name not in self.declared:
            shown = ", ".join(sorted(self.declared)) or "none are declared"
            hint = difflib.get_close_matches(name, sorted(self.declared), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise SagaDefinitionError(
                f"expected a resource declared under resources ({shown}), got {name!r}{more}",
                path=path,
            )

    def check_step(self, step: Step, path: str) -> None:
        for k, name in enumerate(step.reads):
            self.known(name, f"{path}.reads[{k}]")
        if step.writes and not step.effects:
            raise SagaDefinitionError(
                "expected no writes on a step with effects: false (a write is an effect), got "
                + ", ".join(w.resource for w in step.writes),
                path=f"{path}.writes",
            )
        self.check_writes(step, path)
        undo = step.compensation
        if undo is not None:
            mine = {w.resource for w in step.writes}
            for w in undo.writes:
                if w.resource not in mine:
                    raise SagaDefinitionError(
                        f"expected a compensation to write only what {step.name} writes "
                        f"({', '.join(sorted(mine)) or 'nothing'}), got {w.resource!r}",
                        path=f"{path}.compensation.writes.{w.resource}",
                    )
            self.check_writes(undo, f"{path}.compensation")

    def check_writes(self, action: Action, path: str) -> None:
        for w in action.writes:
            at = f"{path}.writes.{w.resource}"
            self.known(w.resource, at)
            first = self.modes.setdefault(w.resource, (w.mode, action.name))
            if first[0] != w.mode:
                raise SagaDefinitionError(
                    f"expected {first[0]}, as {first[1]} writes {w.resource} with {first[0]} "
                    f"(one write mode per resource), got {w.mode}",
                    path=at,
                )


def check_choice(choice: Choice, path: str) -> None:
    """Branch probabilities in [0, 1] summing to 1, or to at most 1 with one default."""
    if not choice.branches:
        raise SagaDefinitionError("expected at least one branch, got none", path=f"{path}.branches")
    defaults = [b for b, branch in enumerate(choice.branches) if branch.default]
    if len(defaults) > 1:
        raise SagaDefinitionError(
            f"expected at most one default branch, got a second one (first at branches"
            f"[{defaults[0]}])",
            path=f"{path}.branches[{defaults[1]}].default",
        )
    total = 0.0
    for b, branch in enumerate(choice.branches):
        at = f"{path}.branches[{b}]"
        if branch.default:
            if branch.probability is not None:
                raise SagaDefinitionError(
                    "expected no probability on the default branch (it takes what the others "
                    f"leave), got {branch.probability!r}",
                    path=f"{at}.probability",
                )
            continue
        if branch.probability is None:
            raise SagaDefinitionError(
                "expected a probability (or default: true), got nothing (the key is missing)",
                path=f"{at}.probability",
            )
        if not 0.0 <= branch.probability <= 1.0:
            raise SagaDefinitionError(
                f"expected a probability in [0, 1], got {branch.probability!r}",
                path=f"{at}.probability",
            )
        total += branch.probability
    if defaults and total > 1 + SUM_SLACK:
        raise SagaDefinitionError(
            f"expected branch probabilities summing to at most 1 beside the default, got {total:g}",
            path=f"{path}.branches",
        )
    if not defaults and abs(total - 1) > SUM_SLACK:
        raise SagaDefinitionError(
            f"expected branch probabilities summing to 1 (or a default branch), got {total:g}",
            path=f"{path}.branches",
        )


def check_map(m: Map, path: str) -> None:
    samples = (m.items,) if isinstance(m.items, int) else m.items
    if isinstance(m.items, int) and (isinstance(m.items, bool) or m.items < 1):
        raise SagaDefinitionError(
            f"expected a positive integer, got {m.items!r}", path=f"{path}.items"
        )
    if not samples or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in samples):
        raise SagaDefinitionError(
            f"expected a non-empty list of non-negative counts, got {list(samples)!r}",
            path=f"{path}.items.samples",
        )
    if m.concurrency is not None and m.concurrency < 1:
        raise SagaDefinitionError(
            f"expected a positive integer, got {m.concurrency!r}", path=f"{path}.concurrency"
        )
    if not m.steps:
        raise SagaDefinitionError(
            "expected a body with at least one step, got an empty one", path=f"{path}.steps"
        )


def check_copies(entries: tuple[Entry, ...], prefix: str, names: dict[str, str]) -> None:
    """Item k of a map runs each name ``x`` its body declares as ``x_k``: no other entry may
    hold that name already."""
    for i, entry in enumerate(entries):
        path = f"{prefix}[{i}]"
        if isinstance(entry, Map):
            items = max(entry.counts)
            body = [
                n
                for e in walk(entry.steps)
                for n in (
                    getattr(e, "name", None),
                    getattr(getattr(e, "compensation", None), "name", None),
                )
                if n is not None and not isinstance(e, (Fail, Succeed))
            ]
            for name in body:
                for k in range(1, items + 1):
                    if f"{name}_{k}" in names:
                        copy = f"{name}_{k}"
                        raise SagaDefinitionError(
                            f"expected no other entry named {copy}, got one at {names[copy]}: "
                            f"item {k} of this map runs its {name} as {copy}",
                            path=f"{path}.map.name",
                        )
        for b, block in enumerate(blocks_of(entry)):
            inner = {
                Parallel: f"{path}.parallel[{b}]",
                Choice: f"{path}.choice.branches[{b}].steps",
                Map: f"{path}.map.steps",
            }.get(type(entry))
            if inner is not None:
                check_copies(block, inner, names)


def check_flow(saga: Saga) -> None:
    """Every goto names an entry of its own list or an enclosing one (never into a parallel
    branch, a choice branch, a map body or a sub-saga from outside, nor out of a branch or a
    body); a cycle with effects needs ``max_visits`` on its target step."""

    def visit(block: tuple[Entry, ...], prefix: str, outer: list[Scope], fenced: bool) -> None:
        for i, entry in enumerate(block):
            path = f"{prefix}[{i}]"
            chain = [*outer, (block, i, fenced)]
            if isinstance(entry, Goto):
                check_goto(entry, path, chain)
            if isinstance(entry, Parallel):
                for b, branch in enumerate(entry.branches):
                    visit(branch, f"{path}.parallel[{b}]", chain, True)
            elif isinstance(entry, Choice):
                for b, way in enumerate(entry.branches):
                    visit(way.steps, f"{path}.choice.branches[{b}].steps", chain, False)
            elif isinstance(entry, Map):
                visit(entry.steps, f"{path}.map.steps", chain, True)

    def check_goto(goto: Goto, path: str, chain: list[Scope]) -> None:
        for held, at, fenced in reversed(chain):
            target = next((j for j, e in enumerate(held) if _named(e, goto.target)), None)
            if target is not None:
                if target <= at:
                    check_cycle(goto, path, held[target : at + 1])
                return
            if fenced:
                break
        names = [n for e in walk(saga.steps) for n in [_name_of(e)] if n]
        close = difflib.get_close_matches(goto.target, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SagaDefinitionError(
            f"expected the name of an entry of this step list or an enclosing one, got "
            f"{goto.target!r}{hint}",
            path=f"{path}.goto",
        )

    def check_cycle(goto: Goto, path: str, cycle: tuple[Entry, ...]) -> None:
        effects = [e.name for e in walk(cycle) if isinstance(e, Step) and e.effects]
        head = cycle[0]
        if effects and not (isinstance(head, Step) and head.max_visits is not None):
            raise SagaDefinitionError(
                f"expected max_visits on the step {goto.target}, got none: the cycle back to it "
                f"has effects ({effects[0]}), so it must be bounded",
                path=f"{path}.goto",
            )

    visit(saga.steps, "steps", [], False)


PLURAL = {"parallel group": "parallel groups", "map body": "map bodies"}
#: How far branch probabilities may sum from 1 (they are written in decimal).
SUM_SLACK = 1e-9
#: A step list on the way to a goto: the list, the entry holding the goto, and whether the
#: list is a parallel branch or map body (gotos do not leave those).
Scope = tuple[tuple["Entry", ...], int, bool]


def _name_of(entry: Entry) -> str | None:
    if isinstance(entry, (Step, Choice, Map, SubSaga)):
        return entry.name
    return None


def _named(entry: Entry, name: str) -> bool:
    return _name_of(entry) == name
