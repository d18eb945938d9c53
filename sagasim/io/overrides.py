"""``--set PATH=VALUE``: change any number of a model from outside, checked like the file.

One model file serves a whole sweep: :func:`apply_overrides` edits the model's plain data
(:func:`sagasim.io.to_dict`) at paths named the way users name things
(``process_payment.retry.attempts``, ``services.payments.capacity``, ``broker.loss``) and builds
the model again, so an override is held to every rule a file is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import takewhile
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model.saga import Choice, Entry, Map, Parallel, Saga, Step, SubSaga, rebuild, walk
from . import yaml as _yaml
from .format import SAGA, build, to_dict
from .values import UnknownKey, did_you_mean
from .yaml import join as _join

__all__ = ["apply_overrides"]


def _places(saga: Saga) -> dict[str, str]:
    """Where each named thing sits in :func:`to_dict`'s output: steps and compensations, choices
    (and each branch's probability as ``CHOICE.WHEN``, ``CHOICE.INDEX`` or ``CHOICE.branch_INDEX``,
    its event label), maps and sub-sagas.
    A sub-saga's own steps are not in the parent's output: see :func:`_children`."""
    places: dict[str, str] = {}

    def visit(entries: tuple[Entry, ...], prefix: str) -> None:
        for i, entry in enumerate(entries):
            path = f"{prefix}[{i}]"
            if isinstance(entry, Step):
                places[entry.name] = path
                if entry.compensation is not None:
                    places[entry.compensation.name] = f"{path}.compensation"
            elif isinstance(entry, Parallel):
                for b, branch in enumerate(entry.branches):
                    visit(branch, f"{path}.parallel[{b}]")
            elif isinstance(entry, Choice):
                places[entry.name] = f"{path}.choice"
                for b, way in enumerate(entry.branches):
                    at = f"{path}.choice.branches[{b}]"
                    if way.when.isidentifier():  # a condition like "a >= b" goes by index
                        places.setdefault(f"{entry.name}.{way.when}", f"{at}.probability")
                    places[f"{entry.name}.{b}"] = f"{at}.probability"
                    places[f"{entry.name}.branch_{b}"] = f"{at}.probability"  # its event label
                    visit(way.steps, f"{at}.steps")
            elif isinstance(entry, Map):
                places[entry.name] = f"{path}.map"
                visit(entry.steps, f"{path}.map.steps")
            elif isinstance(entry, SubSaga):
                places[entry.name] = f"{path}.saga"
                if entry.compensation is not None:
                    places[entry.compensation.name] = f"{path}.saga.compensation"

    visit(saga.steps, "steps")
    return places


def _children(saga: Saga) -> dict[str, SubSaga]:
    """Each sub-saga (at any depth of this file) by the names its own file declares."""
    owners: dict[str, SubSaga] = {}
    for entry in walk(saga.steps):
        if isinstance(entry, SubSaga):
            inner = _places(entry.saga) | {n: "" for n in _children(entry.saga)}
            owners |= dict.fromkeys(inner, entry)
    return owners


def _friendly(path: str, places: Mapping[str, str]) -> str:
    """``steps[2].retry`` as the user names it: ``process_payment.retry``."""
    inside = [(place, name) for name, place in places.items() if path.startswith(place)]
    inside = [(place, name) for place, name in inside if path[len(place) :][:1] in ("", ".", "[")]
    place, name = max(inside, default=("", ""), key=lambda pair: len(pair[0]))
    return name + path[len(place) :]


def _assign(
    data: dict[str, Any],
    places: Mapping[str, str],
    target: str,
    value: Any,
    elsewhere: Sequence[str] = (),
) -> str:
    """Set ``target`` (``process_payment.retry.attempts``) in ``data``; return its model path."""
    head = re.split(r"[.\[]", target, maxsplit=1)[0]
    pair = ".".join(target.split(".")[:2])
    if pair in places and pair != head:  # a choice's branch: CHOICE.WHEN or CHOICE.INDEX
        head = pair
    tops = [key for key, *_ in SAGA if key != "steps"]
    if head not in places and head not in tops:
        hint = did_you_mean(head, [*places, *tops, *elsewhere])
        message = f"unknown step or compensation {head!r}" + f" ({hint})" * bool(hint)
        raise SagaDefinitionError(message)
    path = places[head] + target[len(head) :] if head in places else target
    if path.endswith(".probability") and head == target:
        return _branch_probability(data, path, value)
    parts = _yaml.split(path)
    node: Any = data
    for depth, part in enumerate(parts):
        where = _friendly(".".join(parts[:depth]).replace(".[", "["), places)
        last, index = depth == len(parts) - 1, part[0] == "["
        key: Any = int(part[1:-1]) if index and part[1:-1].isdigit() else part
        if index and not (isinstance(key, int) and isinstance(node, list) and key < len(node)):
            size = len(node) if isinstance(node, list) else 0
            raise SagaDefinitionError(f"expected an index below {size} after {where}, got {part}")
        if isinstance(key, str) and not isinstance(node, dict):
            raise SagaDefinitionError(f"expected the path to end at {where}, got more after it")
        if key == "compensation" and not last and key not in node:
            message = f"expected a step with a compensation, got {where} without one"
            raise SagaDefinitionError(message)
        if key == "compensation" and not last and isinstance(node[key], str):
            node[key] = {"name": node[key]}
        elif isinstance(key, str) and not last and key not in node:
            node[key] = {"dist": "constant", "value": "0ms"} if key == "latency" else {}
        elif last and key == "dist" and path.endswith(".latency.dist"):
            node.clear()  # a new distribution: its parameters follow in later assignments
        elif last and key == "latency":
            raise SagaDefinitionError(
                f"expected a distribution, got one value: set {target}.value={value} for a "
                f"constant, or {target}.dist=NAME and then its parameters"
            )
        if last:
            node[key] = value
        node = node[key]
    return path


def _branch_probability(data: dict[str, Any], path: str, value: Any) -> str:
    """Set one branch's probability (``CHOICE.WHEN`` or ``CHOICE.INDEX``). The default branch
    keeps taking what the others leave: setting its share scales the others to the rest."""
    parts = _yaml.split(path)
    node: Any = data
    for part in parts[:-2]:
        node = node[int(part[1:-1])] if part[0] == "[" else node[part]
    branches, b = node, int(parts[-2][1:-1])
    if not branches[b].get("default"):
        branches[b]["probability"] = value
        return path
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise SagaDefinitionError(f"expected a probability in [0, 1], got {value!r}")
    others = [x for x in branches if not x.get("default")]
    total = sum(float(x.get("probability", 0.0)) for x in others)
    for x in others:
        share = float(x.get("probability", 0.0)) / total if total else 1 / len(others)
        x["probability"] = share * (1 - value)
    return path


def apply_overrides(saga: Saga, assignments: Sequence[str]) -> Saga:
    """A copy of ``saga`` with ``PATH=VALUE`` assignments applied, checked like a model file.

    PATH starts with a step or compensation name (one in a sub-saga's file too), a choice, map
    or sub-saga name, or a top-level key (``services``, ``broker``…); ``CHOICE.WHEN`` or
    ``CHOICE.INDEX`` is a branch's probability (the default branch's share scales the others).
    VALUE is one YAML scalar. An error names its assignment: ``--set PATH=VALUE: message``.

    Examples
    --------
    >>> from sagasim.io import loads
    >>> saga = loads("saga: s\\nsteps: [{name: pay, service: payments, reject: 0.05}]")
    >>> new = apply_overrides(saga, ["pay.reject=0.1", "services.payments.capacity=5"])
    >>> new.step("pay").reject, new.service("payments").capacity
    (0.1, 5)
    >>> apply_overrides(saga, ["pay.rejct=0.1"])
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: --set pay.rejct=0.1: unknown key 'rejct' in pay (...)
    """
    places, owners, inner = _places(saga), _children(saga), dict[str, list[str]]()
    mine = []
    for assignment in assignments:
        head = re.split(r"[.\[=]", assignment.strip(), maxsplit=1)[0].strip()
        if head in owners and head not in places:  # a step of a sub-saga's own file
            inner.setdefault(owners[head].name, []).append(assignment)
        else:
            mine.append(assignment)
    if inner:
        saga = _with_children(saga, inner)
    data = to_dict(saga)
    applied: list[tuple[str, str, list[str]]] = []
    for assignment in mine:
        where = f"--set {assignment}"
        target, equals, text = (part.strip() for part in assignment.partition("="))
        try:
            if not equals or not target:
                missing = "no PATH" if equals else "no '='"
                raise SagaDefinitionError(f"expected PATH=VALUE, got {missing}")
            path = _assign(data, places, target, _yaml.scalar(text), list(owners))
        except SagaDefinitionError as err:
            raise SagaDefinitionError(err.message, path=where) from None
        applied.append((where, target, _yaml.split(path)))
    children = {e.name: e.saga for e in walk(saga.steps) if isinstance(e, SubSaga)}
    try:
        return build(data, children=children) if applied else saga
    except SagaDefinitionError as err:
        # Blame the assignment whose path shares most with the error's (the last one on a tie).
        at = _yaml.split(_join(err.path, err.key) if isinstance(err, UnknownKey) else err.path)

        def shared(entry: tuple[str, str, list[str]]) -> int:
            return len([*takewhile(lambda pair: pair[0] == pair[1], zip(entry[2], at))])

        where, target, _ = max(reversed(applied), key=shared)
        name = _friendly(err.path, places)
        if isinstance(err, UnknownKey):
            message = f"unknown key {err.key!r} in {name} ({err.hint or err.expected})"
        else:
            message = err.message if name == target else f"{name}: {err.message}"
        raise SagaDefinitionError(message, path=where) from None


def _with_children(saga: Saga, inner: Mapping[str, list[str]]) -> Saga:
    """``saga`` with each sub-saga named in ``inner`` overridden by its assignments."""

    def entry(e: Entry) -> Entry:
        if isinstance(e, SubSaga) and e.name in inner:
            return replace(e, saga=apply_overrides(e.saga, inner[e.name]))
        return e

    return replace(saga, steps=rebuild(saga.steps, entry))
