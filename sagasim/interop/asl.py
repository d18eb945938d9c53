"""Read AWS Step Functions definitions (Amazon States Language, ASL) as sagas.

:func:`from_asl` reads each state into a :class:`~sagasim.interop.flow.Node` and lets
:func:`~sagasim.interop.structure.entries` write the step list the graph means:

* ``Task``: a step named after its state in snake_case (``ReserveFlight`` -> ``reserve_flight``).
  Its first ``Retry`` rule is the retry policy: attempts are ``MaxAttempts + 1`` (its maximum,
  99999999, reads as unbounded), ``IntervalSeconds`` the delay, ``BackoffRate`` the multiplier of
  exponential backoff (1.0: fixed), ``MaxDelaySeconds`` the cap, ``JitterStrategy: FULL`` jitter;
  further rules are listed as assumptions. ``TimeoutSeconds`` is the timeout (``HeartbeatSeconds``
  where there is none). A callback task (``.waitForTaskToken``) waits for someone to answer:
  its latency is that wait. A nested execution (``states:startExecution.sync``) is a sub-saga,
  found by its machine's name. A ``Comment`` saying ``pivot``, ``retriable`` or ``read-only``
  declares the step's kind; a task whose resource only reads (``dynamodb:getItem``, an SDK
  ``get``/``list``/``describe``) is read-only;
* ``Pass`` and ``Wait``: read-only steps (a ``Wait`` with ``Seconds`` takes that long);
* ``Choice``: a choice whose ``when`` is each rule's condition, written out (JSONPath) or as
  given (JSONata ``Condition``); a ``Comment`` saying ``probability 0.9`` sets the branch's share;
* ``Parallel``: a parallel group; ``Map`` (inline or distributed): a map, whose item count a
  ``Comment`` saying ``items 5`` (or ``items 1,2,5``: an empirical distribution) gives;
* ``Succeed`` and ``Fail``: ``succeed`` and ``fail`` ends;
* ``Catch``: recovery (a chain of compensations ending in ``Fail``) or, when it leads on into the
  saga, a branch (:mod:`~sagasim.interop.flow`).

Latencies and failure rates are not in the file: actions get the model's defaults (``failure:
0``), and the importer says so in :attr:`Flow.assumed <sagasim.interop.flow.Flow.assumed>`.
When a branch fails, Step Functions stops the other branches; sagasim lets them finish and undoes
what they completed.

Examples
--------
>>> states = {"Reserve": {"Type": "Task", "Next": "Pay", "Catch": [{"Next": "Failed"}]},
...     "Pay": {"Type": "Task", "Comment": "pivot", "End": True, "Catch": [{"Next": "Release"}]},
...     "Release": {"Type": "Task", "Next": "Failed", "Retry": [{"MaxAttempts": 2}]},
...     "Failed": {"Type": "Fail"}}
>>> saga = from_asl({"StartAt": "Reserve", "States": states}, name="shop")
>>> [(step.name, step.kind) for step in saga.steps]
[('reserve', 'compensatable'), ('pay', 'pivot')]
>>> saga.steps[0].compensation.name, saga.steps[0].compensation.retry.attempts
('release', 3)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model.latency import Constant
from ..model.saga import Saga, SubSaga
from .common import (
    ABSENT,
    bad,
    check_valid,
    comment_flags,
    located,
    milliseconds,
    read_number,
    read_retry,
    snake_case,
)
from .flow import Flow, Node, Rule, read_catchers
from .structure import entries

__all__ = ["from_asl"]

#: Finds a sub-saga by its machine's name: ``(name, path) -> SubSaga`` (name and steps).
Lookup = Callable[[str, str], SubSaga]
_TYPES = ("Task", "Pass", "Wait", "Choice", "Parallel", "Map", "Succeed", "Fail")
#: Service integrations that only read.
_READS = re.compile(
    r":(dynamodb:(getItem|query|scan|batchGetItem)|aws-sdk:\w+:(get|list|describe|head)\w*)$",
    re.IGNORECASE,
)
_NESTED = re.compile(r"^arn:aws:states:::states:startExecution\.sync(:2)?$")
_COMPARE = {
    "Equals": "==",
    "GreaterThan": ">",
    "GreaterThanEquals": ">=",
    "LessThan": "<",
    "LessThanEquals": "<=",
}
_TESTS = {
    "IsPresent": "is present",
    "IsNull": "is null",
    "IsString": "is a string",
    "IsNumeric": "is a number",
    "IsBoolean": "is a boolean",
    "IsTimestamp": "is a timestamp",
}


def condition(rule: Mapping[str, Any]) -> str:
    """A Choice rule's condition as one line of text.

    >>> condition({"Variable": "$.stock", "NumericGreaterThan": 0})
    '$.stock > 0'
    >>> condition({"And": [{"Variable": "$.s", "StringEquals": "OK"},
    ...                    {"Not": {"Variable": "$.r", "IsPresent": True}}]})
    '$.s == "OK" and not ($.r is present)'
    >>> condition({"Condition": "{% $states.input.stock > 0 %}"})
    '$states.input.stock > 0'
    """
    if isinstance(rule.get("Condition"), str):
        text: str = rule["Condition"].strip()
        return text[2:-2].strip() if text.startswith("{%") and text.endswith("%}") else text
    for word in ("And", "Or"):
        if isinstance(rule.get(word), list):
            parts = [condition(r) if isinstance(r, dict) else "?" for r in rule[word]]
            return f" {word.lower()} ".join(
                f"({p})" if " and " in p or " or " in p else p for p in parts
            )
    if isinstance(rule.get("Not"), dict):
        return f"not ({condition(rule['Not'])})"
    variable = rule.get("Variable", "$")
    for key, value in rule.items():
        if key in _TESTS:
            return f"{variable} {_TESTS[key]}" if value else f"not ({variable} {_TESTS[key]})"
        if key.endswith("Matches"):
            return f"{variable} matches {json.dumps(value)}"
        base = key[:-4] if key.endswith("Path") and key != "Variable" else key
        for end, op in _COMPARE.items():
            if base.endswith(end) and base != end:
                shown = value if key != base else json.dumps(value)
                return f"{variable} {op} {shown}"
    return json.dumps({k: v for k, v in rule.items() if k not in ("Next", "Comment")})


class _Reader:
    """Reads one definition's scopes into flows; ``assumed`` collects what it had to assume."""

    def __init__(self, lookup: Lookup | None, assumed: list[str]) -> None:
        self.lookup = lookup
        self.assumed = assumed

    def flow(self, data: object, prefix: str, fenced: bool) -> Flow:
        if not isinstance(data, dict):
            raise bad("a mapping with StartAt and States", data, prefix.rstrip(".") or "(top)")
        states = data.get("States", ABSENT)
        if not isinstance(states, dict) or not states:
            raise bad("a mapping from state names to states", states, f"{prefix}States")
        start = data.get("StartAt", ABSENT)
        if not isinstance(start, str) or start not in states:
            raise bad(f"the name of a state in {prefix}States", start, f"{prefix}StartAt")
        nodes = {
            name: self.node(name, state, f"{prefix}States.{name}") for name, state in states.items()
        }
        return Flow(prefix, start, nodes, fenced=fenced, assumed=self.assumed)

    def node(self, name: str, state: object, path: str) -> Node:
        if not isinstance(state, dict) or state.get("Type") not in _TYPES:
            kind = state.get("Type") if isinstance(state, dict) else state
            raise bad(f"a state whose Type is one of {', '.join(_TYPES)}", kind, f"{path}.Type")
        kind, flags = state["Type"], comment_flags(state, path)
        node = Node(
            name,
            path,
            "call",
            next=_next(state, path),
            catchers=read_catchers(state, path, "ErrorEquals", "States.ALL"),
        )
        node.definition = json.dumps(
            {k: v for k, v in state.items() if k not in ("Next", "End", "Comment")}, sort_keys=True
        )
        if kind in ("Parallel", "Map") and "Retry" in state:
            self.assumed.append(
                f"{snake_case(name)}: the Retry on a {kind} state is not read (sagasim retries "
                "steps, not groups: put it on the Tasks inside)"
            )
        if kind in ("Succeed", "Fail"):
            node.kind = "succeed" if kind == "Succeed" else "fail"
        elif kind == "Choice":
            node.kind, node.next = "choice", None
            self.choice(node, state, path)
        elif kind == "Parallel":
            node.kind = "parallel"
            branches = state.get("Branches", ABSENT)
            if not isinstance(branches, list) or not branches:
                raise bad("a non-empty list of branches", branches, f"{path}.Branches")
            node.branches = [
                self.flow(b, f"{path}.Branches[{i}].", True) for i, b in enumerate(branches)
            ]
        elif kind == "Map":
            self.map(node, state, path)
        elif kind in ("Pass", "Wait"):
            node.effects = False
            node.fields = self.wait(name, state, path) if kind == "Wait" else {}
        else:
            self.task(node, state, path, flags)
        comment = state.get("Comment")
        if isinstance(comment, str):
            undoes = re.search(r"\bundoes (\w+)", comment)
            visits = re.search(r"\bmax_visits (\d+)", comment)
            node.undoes = undoes.group(1) if undoes else None
            node.max_visits = int(visits.group(1)) if visits else None
        if "pivot" in flags:
            node.kind_declared = "pivot"
        elif "retriable" in flags:
            node.kind_declared = "retriable"
        return node

    def task(self, node: Node, state: dict[str, Any], path: str, flags: set[str]) -> None:
        resource = state.get("Resource", "")
        if not isinstance(resource, str):
            raise bad("a Resource naming what the task calls", resource, f"{path}.Resource")
        node.fields = self.action(node.name, state, path)
        if _NESTED.match(resource):
            child = self.nested(node.name, state, path)
            if child is not None:
                node.kind, node.child = "saga", child
                return
        if resource.endswith(".waitForTaskToken"):
            self.assumed.append(
                f"{node.name}: a callback task (.waitForTaskToken): its latency is the wait for "
                f"the answer (measure it: --set {snake_case(node.name)}.latency=...)"
            )
        if "read_only" in flags or _READS.search(resource):
            node.effects = False

    def action(self, name: str, state: Mapping[str, Any], path: str) -> dict[str, Any]:
        """The timeout and retry of a ``Task`` state, as model fields."""
        fields: dict[str, Any] = {}
        timeout = state.get("TimeoutSeconds", state.get("HeartbeatSeconds"))
        key = "TimeoutSeconds" if "TimeoutSeconds" in state else "HeartbeatSeconds"
        if timeout is not None:
            fields["timeout_ms"] = milliseconds(
                read_number(timeout, f"{path}.{key}", 0, "a number")
            )
            if key == "HeartbeatSeconds":
                self.assumed.append(
                    f"{snake_case(name)}: HeartbeatSeconds read as its timeout (no heartbeats are "
                    "modelled: the call times out when no answer comes in that time)"
                )
        rules = state.get("Retry")
        if rules is not None:
            if isinstance(rules, list) and len(rules) > 1:
                errors = [
                    ", ".join(r.get("ErrorEquals") or ["?"])
                    for r in rules[1:]
                    if isinstance(r, dict)
                ]
                self.assumed.append(
                    f"{snake_case(name)}: {len(rules)} Retry rules, one retry policy: the first "
                    f"one's (the others, for {'; '.join(errors)}, are not read)"
                )
                rules = rules[:1]
            fields["retry"] = read_retry(
                rules, f"{path}.Retry", retries=3, interval_s=1, rate=2.0, asl=True
            )
        return fields

    def wait(self, name: str, state: Mapping[str, Any], path: str) -> dict[str, Any]:
        if "Seconds" in state:
            seconds = read_number(state["Seconds"], f"{path}.Seconds", 0, "a number")
            return {"latency": Constant(value_ms=milliseconds(seconds))}
        self.assumed.append(
            f"{snake_case(name)}: waits for a time the input gives: latency 0 (set with --set "
            f"{snake_case(name)}.latency=...)"
        )
        return {}

    def choice(self, node: Node, state: Mapping[str, Any], path: str) -> None:
        rules = state.get("Choices", ABSENT)
        if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) for r in rules):
            raise bad("a non-empty list of choice rules", rules, f"{path}.Choices")
        for i, rule in enumerate(rules):
            at = f"{path}.Choices[{i}]"
            target = rule.get("Next", ABSENT)
            if not isinstance(target, str):
                raise bad("the name of a state", target, f"{at}.Next")
            node.rules.append(Rule(condition(rule), target, at, _probability(rule, at)))
        default = state.get("Default")
        if default is not None and not isinstance(default, str):
            raise bad("the name of a state", default, f"{path}.Default")
        node.default = default

    def map(self, node: Node, state: Mapping[str, Any], path: str) -> None:
        node.kind = "map"
        key = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
        if key not in state:
            what = "a mapping with StartAt and States (ItemProcessor, or the older Iterator)"
            raise bad(what, ABSENT, f"{path}.ItemProcessor")
        node.body = self.flow(state[key], f"{path}.{key}.", True)
        limit = state.get("MaxConcurrency", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise bad("a non-negative integer", limit, f"{path}.MaxConcurrency")
        node.concurrency = limit or None
        comment = state.get("Comment", "")
        found = re.search(
            r"\bitems\s+(\d+(?:\s*,\s*\d+)*)", comment if isinstance(comment, str) else ""
        )
        if found:
            counts = tuple(int(n) for n in found.group(1).split(","))
            node.items = counts[0] if len(counts) == 1 else counts
        if "ToleratedFailurePercentage" in state or "ToleratedFailureCount" in state:
            self.assumed.append(
                f"{snake_case(node.name)}: tolerates failed items; sagasim stops the map at the "
                "first"
            )

    def nested(self, name: str, state: Mapping[str, Any], path: str) -> SubSaga | None:
        params = state.get("Parameters") or state.get("Arguments") or {}
        arn = params.get("StateMachineArn") if isinstance(params, dict) else None
        found = re.search(r":stateMachine:([\w-]+)$", arn) if isinstance(arn, str) else None
        if found is None or self.lookup is None:
            why = "its machine is not named in the file" if found is None else "no lookup given"
            self.assumed.append(f"{snake_case(name)}: a nested execution read as one step ({why})")
            return None
        return self.lookup(found.group(1), f"{path}.Parameters.StateMachineArn")


def _probability(rule: Mapping[str, Any], path: str) -> float | None:
    comment = rule.get("Comment", "")
    found = re.search(r"\bprobability\s+([0-9.eE+-]+)", comment if isinstance(comment, str) else "")
    if found is None:
        return None
    try:
        p = float(found.group(1))
    except ValueError:
        raise bad("a probability between 0 and 1", found.group(1), f"{path}.Comment") from None
    if not 0 <= p <= 1:
        raise bad("a probability between 0 and 1", p, f"{path}.Comment")
    return p


def _next(state: Mapping[str, Any], path: str) -> str | None:
    """Where a state goes on: its ``Next``, or None for ``End: true`` and ends."""
    if state.get("Type") in ("Succeed", "Fail", "Choice") or state.get("End") is True:
        return None
    following = state.get("Next", ABSENT)
    if not isinstance(following, str):
        raise bad("Next (the name of a state) or End: true", following, f"{path}.Next")
    return following


def from_asl(
    data: object,
    *,
    name: str | None = None,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
    lookup: Lookup | None = None,
    assumed: list[str] | None = None,
) -> Saga:
    """The saga a Step Functions definition describes (see the module's docstring).

    A definition does not carry its state machine's name: ``name`` gives it (default: the file's
    name up to its first dot, else ``imported``). ``file`` and ``lines`` (path -> line, as
    :func:`sagasim.io.parse_yaml` gives) serve the errors; ``lookup`` finds nested machines by
    name; what had to be assumed is appended to ``assumed``.

    Examples
    --------
    >>> from_asl({"StartAt": "Check", "States": {"Check": {"Type": "Sleep"}}}, file="x.json")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: x.json: States.Check.Type: expected a state whose ...
    """
    notes: list[str] = [] if assumed is None else assumed
    try:
        flow = _Reader(lookup, notes).flow(data, "", False)
        assert isinstance(data, dict)
        steps = entries(flow)
        comment = data.get("Comment", "")
        if not isinstance(comment, str):
            raise bad("a text", comment, "Comment")
        default = (file or "imported").replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
        saga = Saga(name=name or default or "imported", description=comment, steps=steps)
        return check_valid(saga, flow.places)
    except SagaDefinitionError as err:
        raise located(err, file, lines) from None
