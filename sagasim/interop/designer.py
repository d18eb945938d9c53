"""Seata's saga designer JSON as Seata's engine state language, converted as Seata converts it.

Seata's visual designer saves a graph with its layout: ``nodes`` (each with an ``id``, a
``stateId``, a ``stateType``, ``stateProps``, a ``label``, a position ``x``, ``y`` and a
``size`` such as ``"110*48"``) and ``edges`` from a ``source`` node id to a ``target`` one.
:func:`to_engine` turns it into the state machine Seata's engine runs, following Seata's own
``DesignerJsonTransformer``:

* the ``StateMachine`` of the ``Start`` node's ``stateProps`` gives the machine's fields
  (``Name``, ``Comment``, ``Version``...), its edge the ``StartState``;
* every other node but a ``Catch`` is a state named by its ``stateId``: its ``label`` is its
  ``Comment``, its ``stateProps`` are copied, its ``Type`` is the ``stateType`` (a
  ``Compensation`` node is a ``ServiceTask``);
* an edge from a ``ServiceTask`` to a ``Compensation`` node is the ``CompensateState``; an edge
  from a ``Choice`` is one of its ``Choices`` (``stateProps.Expression``), or its ``Default``
  when ``stateProps.Default`` is true; any other edge is the ``Next``;
* a ``Catch`` node belongs to the ``ServiceTask`` or ``ScriptTask`` its box overlaps (the first
  in ``nodes``); each edge out of it adds ``{Exceptions, Next}`` to that state's ``Catch``.

Where Seata would silently keep the last of several edges or fail with a Java exception, an
error names the place instead: no ``Start`` node or two, a ``Start`` with no edge, a node with
no ``stateId`` or a repeated one, an edge to no node, two ``Next`` (or ``CompensateState``, or
``Default``) edges out of one state, a ``Catch`` node placed on no task.

Examples
--------
>>> designer = {"nodes": [
...     {"id": "n0", "stateType": "Start", "stateProps": {"StateMachine": {"Name": "order"}}},
...     {"id": "n1", "stateId": "Pay", "stateType": "ServiceTask", "label": "charge",
...      "stateProps": {"ServiceName": "bank", "ServiceMethod": "pay"}},
...     {"id": "n2", "stateId": "Refund", "stateType": "Compensation",
...      "stateProps": {"ServiceName": "bank", "ServiceMethod": "refund"}},
...     {"id": "n3", "stateId": "Done", "stateType": "Succeed"},
... ], "edges": [
...     {"source": "n0", "target": "n1"}, {"source": "n1", "target": "n2"},
...     {"source": "n1", "target": "n3"},
... ]}
>>> is_designer(designer)
True
>>> to_engine(designer)  # doctest: +NORMALIZE_WHITESPACE
{'Name': 'order', 'StartState': 'Pay', 'States': {'Pay': {'Comment': 'charge',
 'ServiceName': 'bank', 'ServiceMethod': 'pay', 'Type': 'ServiceTask', 'CompensateState':
 'Refund', 'Next': 'Done'}, 'Refund': {'ServiceName': 'bank', 'ServiceMethod': 'refund',
 'Type': 'ServiceTask'}, 'Done': {'Type': 'Succeed'}}}
>>> designer["edges"].append({"source": "n1", "target": "n9"})
>>> to_engine(designer, file="order.json")
Traceback (most recent call last):
...
sagasim.exceptions.SagaDefinitionError: order.json: edges[3].target: expected the id of a node...
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ..exceptions import SagaDefinitionError
from .common import ABSENT, bad, located

#: The states a ``Catch`` node can be attached to.
TASKS = ("ServiceTask", "ScriptTask")
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\*([0-9]+(?:\.[0-9]+)?)")


def is_designer(data: object) -> bool:
    """Whether ``data`` is designer JSON: ``nodes`` and ``edges`` lists, nodes with a
    ``stateType``, and no ``States`` (Seata itself only asks for the two keys).

    >>> is_designer({"nodes": [{"stateType": "Start"}], "edges": []})
    True
    >>> is_designer({"StartState": "A", "States": {}}), is_designer({"nodes": [1], "edges": []})
    (False, False)
    """
    if not isinstance(data, dict) or "States" in data:
        return False
    nodes, edges = data.get("nodes"), data.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        return False
    return not nodes or any(isinstance(node, dict) and "stateType" in node for node in nodes)


def to_engine(data: dict[str, Any], *, file: str | None = None) -> dict[str, Any]:
    """The engine state machine (``Name``, ``StartState``, ``States``...) a designer graph
    describes; see the module's docstring. Errors name ``file`` and the path in the graph."""
    try:
        return _Converter(data).run()
    except SagaDefinitionError as err:
        raise located(err, file, None) from None


class _Converter:
    def __init__(self, data: object) -> None:
        if not isinstance(data, dict):
            raise bad("a designer graph (a mapping with nodes and edges)", data, "")
        self.nodes = _items(data, "nodes")
        self.edges = _items(data, "edges")
        self.machine: dict[str, Any] = {}
        self.index: dict[str, int] = {}  # node id -> its place in nodes
        self.states: dict[str, dict[str, Any]] = {}
        self.places: dict[str, int] = {}  # state name -> its node's place in nodes
        self.start: int | None = None
        self.set_by: dict[tuple[str, str], int] = {}  # (state, key) -> edge that set it

    def run(self) -> dict[str, Any]:
        for k, node in enumerate(self.nodes):
            self.node(k, node)
        if self.start is None:
            raise SagaDefinitionError(
                "expected a Start node (stateType 'Start'), got none", path="nodes"
            )
        attached = {
            k: self.attached(k) for k, n in enumerate(self.nodes) if n["stateType"] == "Catch"
        }
        for k, edge in enumerate(self.edges):
            self.edge(k, edge, attached)
        if "StartState" not in self.machine:
            message = "expected an edge from the Start node to the first state, got none"
            raise SagaDefinitionError(message, path=f"nodes[{self.start}]")
        return self.machine

    def node(self, k: int, node: dict[str, Any]) -> None:
        path = f"nodes[{k}]"
        node_id, kind = node.get("id", ABSENT), node.get("stateType", ABSENT)
        if not isinstance(node_id, str) or not node_id:
            raise bad("a non-empty node id", node_id, f"{path}.id")
        if node_id in self.index:
            message = f"expected distinct node ids, got {node_id!r} again"
            raise SagaDefinitionError(
                f"{message} (first at nodes[{self.index[node_id]}])", path=f"{path}.id"
            )
        if not isinstance(kind, str) or not kind:
            raise bad("a state type such as 'ServiceTask'", kind, f"{path}.stateType")
        self.index[node_id] = k
        props = node.get("stateProps")
        if props is not None and not isinstance(props, dict):
            raise bad("a mapping of the state's fields", props, f"{path}.stateProps")
        props = copy.deepcopy(props or {})
        if kind == "Start":
            if self.start is not None:
                message = f"expected one Start node, got a second (first at nodes[{self.start}])"
                raise SagaDefinitionError(message, path=f"{path}.stateType")
            self.start = k
            fields = props.get("StateMachine", {})
            if not isinstance(fields, dict):
                raise bad(
                    "a mapping such as {Name, Comment, Version}",
                    fields,
                    f"{path}.stateProps.StateMachine",
                )
            if "States" in fields or "StartState" in fields:
                message = (
                    "expected the machine's Name, Comment and Version, got States or StartState"
                )
                raise SagaDefinitionError(
                    f"{message} (the nodes are the states)", path=f"{path}.stateProps.StateMachine"
                )
            self.machine.update(fields)
            return
        if kind == "Catch":
            return
        self.machine.setdefault("States", self.states)
        name = node.get("stateId", ABSENT)
        if not isinstance(name, str) or not name:
            raise bad("a non-empty state name", name, f"{path}.stateId")
        if name in self.states:
            first = self.places[name]
            message = f"expected distinct stateIds, got {name!r} again (first at nodes[{first}])"
            raise SagaDefinitionError(message, path=f"{path}.stateId")
        label = node.get("label")
        if label is not None and not isinstance(label, str):
            raise bad("a text", label, f"{path}.label")
        state: dict[str, Any] = {"Comment": label} if label else {}
        state.update(props)
        state["Type"] = "ServiceTask" if kind == "Compensation" else kind
        self.states[name], self.places[name] = state, k

    def attached(self, k: int) -> dict[str, Any]:
        """The state the ``Catch`` node ``nodes[k]`` is placed on."""
        x, y, width, height = _box(self.nodes[k], k)
        for j, node in enumerate(self.nodes):
            if j != k and node["stateType"] in TASKS:
                x2, y2, width2, height2 = _box(node, j)
                if abs(x - x2) < (width + width2) / 2 and abs(y - y2) < (height + height2) / 2:
                    return self.states[node["stateId"]]
        message = f"expected a Catch node placed on a {' or '.join(TASKS)}, got one on none"
        raise SagaDefinitionError(f"{message} (at x={x:g}, y={y:g})", path=f"nodes[{k}]")

    def edge(self, k: int, edge: dict[str, Any], attached: dict[int, dict[str, Any]]) -> None:
        path = f"edges[{k}]"
        ends = []
        for end in ("source", "target"):
            node_id = edge.get(end, ABSENT)
            if not isinstance(node_id, str) or node_id not in self.index:
                what = (
                    "the id of a node" if node_id is ABSENT else "the id of a node (no node has it)"
                )
                raise bad(what, node_id, f"{path}.{end}")
            ends.append(self.nodes[self.index[node_id]])
        source, target = ends
        if target["stateType"] in ("Start", "Catch"):
            message = f"expected an edge into a state, got one into the {target['stateType']} node"
            raise SagaDefinitionError(message, path=f"{path}.target")
        to, kind = target["stateId"], source["stateType"]
        props = edge.get("stateProps")
        if props is not None and not isinstance(props, dict):
            raise bad("a mapping", props, f"{path}.stateProps")
        if kind == "Start":
            self.once(("", "StartState"), k, "the Start node")
            self.machine["StartState"] = to
            self.machine["States"] = self.machine.pop("States")  # StartState before States
        elif kind == "Catch":
            catches = _list(attached[self.index[source["id"]]], "Catch", path)
            if props is not None:
                catches.append({"Exceptions": props.get("Exceptions"), "Next": to})
        elif kind == "Choice":
            state = self.states[source["stateId"]]
            choices = _list(state, "Choices", path)
            if props is not None and props.get("Default") is True:
                self.once((source["stateId"], "Default"), k, repr(source["stateId"]))
                state["Default"] = to
            elif props is not None:
                choices.append({"Expression": props.get("Expression"), "Next": to})
        else:
            key = "Next"
            if kind == "ServiceTask" and target["stateType"] == "Compensation":
                key = "CompensateState"
            self.once((source["stateId"], key), k, repr(source["stateId"]))
            self.states[source["stateId"]][key] = to

    def once(self, slot: tuple[str, str], k: int, shown: str) -> None:
        """Claim ``slot`` for edge ``k``: Seata would keep the last edge and drop the others."""
        if slot in self.set_by:
            message = f"expected one {slot[1]} edge out of {shown}, got a second"
            raise SagaDefinitionError(
                f"{message} (first at edges[{self.set_by[slot]}])", path=f"edges[{k}]"
            )
        self.set_by[slot] = k


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key, ABSENT)
    if not isinstance(items, list):
        raise bad(f"a list of {key}", items, key)
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"a mapping (one of the {key})", item, f"{key}[{k}]")
    return items


def _box(node: dict[str, Any], k: int) -> tuple[float, float, float, float]:
    """The centre and the size of ``nodes[k]``."""
    x, y, size = node.get("x", ABSENT), node.get("y", ABSENT), node.get("size", ABSENT)
    for axis, value in (("x", x), ("y", y)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number (the node's position)", value, f"nodes[{k}].{axis}")
    found = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if found is None:
        raise bad("a size such as '110*48'", size, f"nodes[{k}].size")
    return float(x), float(y), float(found[1]), float(found[2])


def _list(state: dict[str, Any], key: str, path: str) -> list[Any]:
    items = state.setdefault(key, [])
    if not isinstance(items, list):
        raise bad(f"a list of {key} in the state's stateProps", items, path)
    return items
