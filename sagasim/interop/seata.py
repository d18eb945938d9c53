"""Read Seata saga state machines (Seata's JSON state language) as sagas.

Seata's saga engine runs a state machine written in JSON, in a language modelled on Step
Functions'. :func:`from_seata` reads each state into a :class:`~sagasim.interop.flow.Node` and
lets :func:`~sagasim.interop.structure.entries` write the step list the graph means:

* ``ServiceTask``: a step named after its state in snake_case; ``ServiceName`` is its service.
  ``CompensateState`` names the ``ServiceTask`` undoing it (its ``ServiceName`` is the
  compensation's service). ``IsForUpdate: false`` declares it read-only (Seata
  also takes a step with neither ``IsForUpdate`` nor a compensation as read-only; sagasim does not
  guess, so that ``check`` reports a step nothing would undo). One ``Retry`` rule is the retry
  policy, as Seata documents it: attempts are ``MaxAttempts + 1``, ``IntervalSeconds`` the delay,
  ``BackoffRate`` the multiplier (1, or none: fixed). ``Status`` (which results mean success,
  failure, unknown) and ``IsAsync`` are listed as assumptions: their rates are not in the file;
* ``ScriptTask``: a read-only step (the script runs in the engine and calls no participant);
* ``SubStateMachine``: a sub-saga, found by its ``StateMachineName``; a ``CompensateState`` that
  is a ``ServiceTask`` is its user-defined compensation (a ``CompensateSubMachine`` state undoes
  its steps, which is what a sub-saga does anyway);
* ``Loop`` on a task or sub-machine: a map, ``Parallel`` its concurrency (the item count, from the
  ``Collection``, is assumed);
* ``Choice``: a choice whose ``when`` is each ``Expression``; ``Default`` its default branch;
* ``Catch`` leading to a ``CompensationTrigger`` or a ``Fail``: recovery, which undoes the
  completed steps in reverse order (a failure without one ends the same way: Seata's coordinator
  compensates a failed saga when it rolls the global transaction back); one leading elsewhere is a
  branch (:mod:`~sagasim.interop.flow`);
* ``Succeed`` and ``Fail``: ``succeed`` and ``fail`` ends; a ``CompensationTrigger`` fails with
  the name of the ``Fail`` after it;
* a ``Comment`` saying ``pivot``, ``retriable`` or ``read-only`` declares the step's kind, as in
  :mod:`sagasim.interop.asl`: Seata has no pivot of its own.

The machine's ``RecoverStrategy`` (what a restarted coordinator does) is kept in the description.

Examples
--------
>>> states = {
...     "Reduce": {"Type": "ServiceTask", "ServiceName": "inventory", "Next": "Pay",
...                "CompensateState": "Restore"},
...     "Restore": {"Type": "ServiceTask", "ServiceName": "inventory",
...                 "Retry": [{"MaxAttempts": 3, "IntervalSeconds": 0.5}]},
...     "Pay": {"Type": "ServiceTask", "ServiceName": "payments", "Next": "Done",
...             "Catch": [{"Exceptions": ["java.lang.Throwable"], "Next": "Undo"}]},
...     "Undo": {"Type": "CompensationTrigger", "Next": "Failed"},
...     "Done": {"Type": "Succeed"}, "Failed": {"Type": "Fail"}}
>>> saga = from_seata({"Name": "order", "StartState": "Reduce", "States": states})
>>> [(step.name, step.service, step.kind) for step in saga.steps[:2]]
[('reduce', 'inventory', 'compensatable'), ('pay', 'payments', 'uncompensatable')]
>>> saga.steps[0].compensation.retry
Retry(attempts=4, backoff='fixed', delay_ms=500.0, multiplier=2.0, max_delay_ms=None, jitter=False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model.saga import Compensation, Saga
from .asl import Lookup
from .common import (
    ABSENT,
    bad,
    check_valid,
    comment_flags,
    located,
    read_retry,
    snake_case,
)
from .flow import Flow, Node, Rule, read_catchers
from .structure import entries

__all__ = ["from_seata"]

_TYPES = (
    "ServiceTask",
    "ScriptTask",
    "SubStateMachine",
    "CompensateSubMachine",
    "Choice",
    "CompensationTrigger",
    "Succeed",
    "Fail",
)


class _Reader:
    def __init__(self, states: dict[str, Any], lookup: Lookup | None, assumed: list[str]) -> None:
        self.states = states
        self.lookup = lookup
        self.assumed = assumed

    def node(self, name: str, state: object, path: str) -> Node:
        if not isinstance(state, dict) or state.get("Type") not in _TYPES:
            kind = state.get("Type") if isinstance(state, dict) else state
            raise bad(f"a state whose Type is one of {', '.join(_TYPES)}", kind, f"{path}.Type")
        kind = state["Type"]
        following = state.get("Next")
        if following is not None and not isinstance(following, str):
            raise bad("the name of a state", following, f"{path}.Next")
        node = Node(
            name,
            path,
            "call",
            next=following,
            catchers=read_catchers(state, path, "Exceptions", "java.lang.Throwable"),
        )
        if kind in ("Succeed", "Fail"):
            node.kind, node.next = ("succeed" if kind == "Succeed" else "fail"), None
        elif kind == "CompensationTrigger":
            node.kind = "trigger"
        elif kind == "Choice":
            self.choice(node, state, path)
        elif kind == "ScriptTask":
            node.effects = False
        elif kind == "CompensateSubMachine":
            node.effects = False  # undoes a sub-machine's steps: a sub-saga does that itself
        else:
            self.task(node, state, path)
        flags = comment_flags(state, path)
        if "pivot" in flags:
            node.kind_declared = "pivot"
        elif "retriable" in flags:
            node.kind_declared = "retriable"
        if "Loop" in state and node.kind in ("call", "saga"):
            return self.loop(node, state["Loop"], f"{path}.Loop")
        return node

    def task(self, node: Node, state: Mapping[str, Any], path: str) -> None:
        node.fields = _action(state, path)
        model = snake_case(node.name)
        if state["Type"] == "SubStateMachine":
            machine = state.get("StateMachineName", ABSENT)
            if not isinstance(machine, str) or not machine:
                raise bad("the name of a state machine", machine, f"{path}.StateMachineName")
            if self.lookup is None:
                raise SagaDefinitionError(
                    f"expected to find the state machine {machine!r}, got no folder to look in "
                    "(import the file, or give --lookup DIR)",
                    path=f"{path}.StateMachineName",
                )
            node.kind, node.child = "saga", self.lookup(machine, f"{path}.StateMachineName")
            return
        for_update = state.get("IsForUpdate", True)
        if not isinstance(for_update, bool):
            raise bad("true or false", for_update, f"{path}.IsForUpdate")
        node.effects = for_update and "read_only" not in comment_flags(state, path)
        node.undo = state.get("CompensateState")
        if node.undo is not None and not isinstance(node.undo, str):
            raise bad("the name of a state", node.undo, f"{path}.CompensateState")
        if isinstance(state.get("Status"), dict):
            outcomes = sorted(set(map(str, state["Status"].values())))
            self.assumed.append(
                f"{model}: Status maps results to {'/'.join(outcomes)}: FA is a failure and UN "
                f"unknown (like a timeout); their rates are not in the file (set with --set "
                f"{model}.failure=P)"
            )
        if state.get("IsAsync") is True:
            self.assumed.append(
                f"{model}: IsAsync: not awaited, so give it no latency; its effect still lands"
            )

    def choice(self, node: Node, state: Mapping[str, Any], path: str) -> None:
        node.kind, node.next = "choice", None
        rules = state.get("Choices", ABSENT)
        if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) for r in rules):
            raise bad("a non-empty list of choices", rules, f"{path}.Choices")
        for i, rule in enumerate(rules):
            at = f"{path}.Choices[{i}]"
            target, when = rule.get("Next", ABSENT), rule.get("Expression", ABSENT)
            if not isinstance(target, str):
                raise bad("the name of a state", target, f"{at}.Next")
            if not isinstance(when, str):
                raise bad("an expression (text)", when, f"{at}.Expression")
            node.rules.append(Rule(when, target, at))
        default = state.get("Default")
        if default is not None and not isinstance(default, str):
            raise bad("the name of a state", default, f"{path}.Default")
        node.default = default

    def loop(self, node: Node, loop: object, path: str) -> Node:
        """A task run once per element of a collection: a map of one step."""
        if not isinstance(loop, dict):
            raise bad("a mapping with Parallel and Collection", loop, path)
        parallel = loop.get("Parallel", 1)
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise bad("a positive integer", parallel, f"{path}.Parallel")
        model = snake_case(node.name)
        if "CompletionCondition" in loop:
            self.assumed.append(
                f"{model}: the Loop ends on {loop['CompletionCondition']!r}; sagasim runs every "
                "item (and stops at the first failed one)"
            )
        item = replace(node, name=f"{node.name} item", path=f"{node.path}.item", catchers=[])
        item.next = None
        body = Flow(
            f"{node.path}.Loop.", item.name, {item.name: item}, fenced=True, explicit_undo=True
        )
        return Node(
            node.name,
            node.path,
            "map",
            next=node.next,
            catchers=node.catchers,
            body=body,
            concurrency=parallel,
            undo=node.undo,  # the item's: so the state undoing it counts as reached
        )


def _action(state: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The service and retry policy of a task state, as model fields."""
    fields: dict[str, Any] = {}
    if "ServiceName" in state:
        service = state["ServiceName"]
        if not isinstance(service, str) or not service:
            raise bad("a non-empty name", service, f"{path}.ServiceName")
        fields["service"] = service
    if "Retry" in state:
        # Seata's docs make each interval BackoffRate times the last (read here); its engine grows
        # the interval linearly after the first retry instead. The first two delays agree.
        fields["retry"] = read_retry(
            state["Retry"], f"{path}.Retry", retries=None, interval_s=0, rate=1, asl=False
        )
    return fields


def _compensations(flow: Flow) -> None:
    """Each ``CompensateState`` of a sub-machine that is a ``ServiceTask``: its user-defined
    compensation, a whole-saga one."""
    for node in flow.states.values():
        if node.kind != "saga" or node.child is None or node.undo is None:
            continue
        undo = flow.states.get(node.undo)
        if undo is not None and undo.kind == "call" and undo.effects:
            comp = Compensation(name=snake_case(undo.name), **undo.fields)
            node.child = replace(node.child, compensation=comp)


def from_seata(
    data: object,
    *,
    name: str | None = None,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
    lookup: Lookup | None = None,
    assumed: list[str] | None = None,
) -> Saga:
    """The saga a Seata state machine describes (see the module's docstring).

    The saga is named ``name``, else the state machine's ``Name``; its description is the
    ``Comment``. ``file`` and ``lines`` (path -> line, as :func:`sagasim.io.parse_yaml` gives)
    serve the errors; ``lookup`` finds sub-machines by name; what had to be assumed is appended
    to ``assumed``.

    Examples
    --------
    >>> states = {"Call": {"Type": "SubStateMachine", "StateMachineName": "inner"}}
    >>> from_seata({"Name": "outer", "StartState": "Call", "States": states}, file="o.json")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: o.json: States.Call.StateMachineName: expected to ...
    """
    notes: list[str] = [] if assumed is None else assumed
    try:
        if not isinstance(data, dict):
            raise bad("a Seata state machine (a mapping with StartState and States)", data, "")
        states = data.get("States", ABSENT)
        if not isinstance(states, dict) or not states:
            raise bad("a mapping from state names to states", states, "States")
        start = data.get("StartState", data.get("StartAt", ABSENT))
        if not isinstance(start, str) or start not in states:
            raise bad("the name of a state in States", start, "StartState")
        reader = _Reader(states, lookup, notes)
        nodes = {n: reader.node(n, s, f"States.{n}") for n, s in states.items()}
        for node in nodes.values():
            if node.kind == "saga" and isinstance(states[node.name].get("CompensateState"), str):
                node.undo = states[node.name]["CompensateState"]
        flow = Flow("", start, nodes, assumed=notes, explicit_undo=True)
        _compensations(flow)
        steps = entries(flow)
        title, comment = data.get("Name", "imported"), data.get("Comment", "")
        if not isinstance(title, str) or not title:
            raise bad("a non-empty name", title, "Name")
        if not isinstance(comment, str):
            raise bad("a text", comment, "Comment")
        strategy = data.get("RecoverStrategy")
        if strategy is not None:
            if strategy not in ("Compensate", "Forward"):
                raise bad("Compensate or Forward", strategy, "RecoverStrategy")
            comment = f"{comment} (RecoverStrategy: {strategy})".strip()
            notes.append(
                f"RecoverStrategy {strategy}: what a restarted coordinator does; kept in the "
                "description (no coordinator crashes are modelled)"
            )
        saga = Saga(name=name or title, description=comment, steps=steps)
        return check_valid(saga, flow.places)
    except SagaDefinitionError as err:
        raise located(err, file, lines) from None
