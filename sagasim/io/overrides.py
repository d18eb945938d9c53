"""``--set PATH=VALUE``: change any number of a model from outside, checked like the file.

One model file serves a whole sweep: :func:`apply_overrides` edits the model's plain data
(:func:`sagasim.io.to_dict`) at paths named the way users name things
(``process_payment.retry.attempts``, ``services.payments.capacity``, ``broker.loss``) and builds
the model again, so an override is held to every rule a file is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import takewhile
from typing import Any

from ..exceptions import SagaDefinitionError
from ..model.saga import Saga, Step
from . import yaml as _yaml
from .format import SAGA, build, to_dict
from .values import UnknownKey, did_you_mean
from .yaml import join as _join

__all__ = ["apply_overrides"]


def _places(saga: Saga) -> dict[str, str]:
    """Where each step and compensation sits in :func:`to_dict`'s output, by name."""
    places: dict[str, str] = {}
    for i, entry in enumerate(saga.steps):
        located = {f"steps[{i}]": entry} if isinstance(entry, Step) else {}
        for b, branch in enumerate([] if isinstance(entry, Step) else entry.branches):
            located |= {f"steps[{i}].parallel[{b}][{k}]": step for k, step in enumerate(branch)}
        for path, step in located.items():
            places[step.name] = path
            if step.compensation is not None:
                places[step.compensation.name] = f"{path}.compensation"
    return places


def _friendly(path: str, places: Mapping[str, str]) -> str:
    """``steps[2].retry`` as the user names it: ``process_payment.retry``."""
    inside = [(place, name) for name, place in places.items() if path.startswith(place)]
    inside = [(place, name) for place, name in inside if path[len(place) :][:1] in ("", ".", "[")]
    place, name = max(inside, default=("", ""), key=lambda pair: len(pair[0]))
    return name + path[len(place) :]


def _assign(data: dict[str, Any], places: Mapping[str, str], target: str, value: Any) -> str:
    """Set ``target`` (``process_payment.retry.attempts``) in ``data``; return its model path."""
    head = re.split(r"[.\[]", target, maxsplit=1)[0]
    tops = [key for key, *_ in SAGA if key != "steps"]
    if head not in places and head not in tops:
        hint = did_you_mean(head, [*places, *tops])
        message = f"unknown step or compensation {head!r}" + f" ({hint})" * bool(hint)
        raise SagaDefinitionError(message)
    path = places[head] + target[len(head) :] if head in places else target
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


def apply_overrides(saga: Saga, assignments: Sequence[str]) -> Saga:
    """A copy of ``saga`` with ``PATH=VALUE`` assignments applied, checked like a model file.

    PATH starts with a step or compensation name or a top-level key (``services``, ``broker``…);
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
    data, places = to_dict(saga), _places(saga)
    applied: list[tuple[str, str, list[str]]] = []
    for assignment in assignments:
        where = f"--set {assignment}"
        target, equals, text = (part.strip() for part in assignment.partition("="))
        try:
            if not equals or not target:
                missing = "no PATH" if equals else "no '='"
                raise SagaDefinitionError(f"expected PATH=VALUE, got {missing}")
            path = _assign(data, places, target, _yaml.scalar(text))
        except SagaDefinitionError as err:
            raise SagaDefinitionError(err.message, path=where) from None
        applied.append((where, target, _yaml.split(path)))
    try:
        return build(data) if applied else saga
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
