"""The pieces of a Step Functions definition every writer shares: the Task state of an
action, its Retry and Catch blocks, and state names made from action names.

>>> task_state = task(Step(name="pay"), comment="", catch="Undo", then=None)
>>> task_state["Parameters"]["FunctionName"], task_state["Catch"][0]["Next"], task_state["End"]
('pay', 'Undo', True)
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from ..model.saga import Action, Retry, Step
from .common import MAX_ATTEMPTS, snake_case

__all__ = [
    "LAMBDA_INVOKE",
    "catchers",
    "pascal_case",
    "retrier",
    "seconds",
    "step_comment",
    "task",
    "unique",
]

#: What exported ``Task`` states invoke: the Lambda function named after the action.
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


def pascal_case(name: str) -> str:
    """The state name :func:`to_asl` gives an action: one that
    :func:`~sagasim.interop.common.snake_case` turns back into the action's name.

    >>> pascal_case("reserve_flight"), pascal_case("step_2")
    ('ReserveFlight', 'step_2')
    """
    pascal = "".join(word[:1].upper() + word[1:] for word in name.split("_"))
    return pascal if snake_case(pascal) == name else name


def seconds(ms: float) -> int:
    """Milliseconds as the whole seconds ASL takes, rounded up, at least 1."""
    return max(1, math.ceil(Decimal(repr(ms)) / 1000))


def retrier(retry: Retry) -> dict[str, Any]:
    retries = MAX_ATTEMPTS if retry.attempts is None else min(retry.attempts - 1, MAX_ATTEMPTS)
    rule: dict[str, Any] = {
        "ErrorEquals": ["States.ALL"],
        "MaxAttempts": retries,
        "IntervalSeconds": seconds(retry.delay_ms),
        "BackoffRate": retry.multiplier if retry.backoff == "exponential" else 1.0,
    }
    if retry.max_delay_ms is not None:
        rule["MaxDelaySeconds"] = seconds(retry.max_delay_ms)
    if retry.jitter:
        rule["JitterStrategy"] = "FULL"
    return rule


def catchers(target: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": target}]


def task(action: Action, *, comment: str, catch: str | None, then: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task"}
    if comment:
        state["Comment"] = comment
    state["Resource"] = LAMBDA_INVOKE
    state["Parameters"] = {"FunctionName": action.name, "Payload.$": "$"}
    state["ResultPath"] = f"$.{action.name}"
    if action.timeout_ms is not None:
        state["TimeoutSeconds"] = seconds(action.timeout_ms)
    if action.retry.attempts != 1:
        state["Retry"] = [retrier(action.retry)]
    if catch is not None:
        state["Catch"] = catchers(catch)
    return state | ({"Next": then} if then is not None else {"End": True})


def step_comment(step: Step, dropped: bool) -> str:
    words = []
    if step.kind_declared == "pivot":
        words.append("pivot: the go/no-go point, after it the saga only moves forward")
    if step.kind_declared == "retriable":
        words.append("retriable: retried until it succeeds")
    if not step.effects:
        words.append("read-only: nothing to undo")
    if dropped and step.compensation is not None:
        words.append(
            f"its compensation {step.compensation.name} is left out: no failure leads to it"
        )
    return "; ".join(words)


def unique(taken: set[str], name: str) -> str:
    """``name``, or the first of ``name2``, ``name3``... not in ``taken``; taken from then on.

    >>> taken = {"Pay"}
    >>> unique(taken, "Pay"), unique(taken, "Pay"), sorted(taken)
    ('Pay2', 'Pay3', ['Pay', 'Pay2', 'Pay3'])
    """
    found, count = name, 1
    while found in taken:
        count += 1
        found = f"{name}{count}"
    taken.add(found)
    return found
