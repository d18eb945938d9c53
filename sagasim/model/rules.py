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

import keyword

from ..exceptions import SagaDefinitionError
from .saga import RESERVED_NAMES, Action, Parallel, Retry, Saga

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
    pivots: list[str] = []
    used_services: set[str] = set()
    for index, entry in enumerate(saga.steps):
        path = f"steps[{index}]"
        if isinstance(entry, Parallel):
            if len(entry.branches) < 1:
                raise SagaDefinitionError(
                    "expected at least one branch, got none", path=f"{path}.parallel"
                )
            located = [
                (step, f"{path}.parallel[{b}][{k}]")
                for b, branch in enumerate(entry.branches)
                for k, step in enumerate(branch)
            ]
            for b, branch in enumerate(entry.branches):
                if not branch:
                    raise SagaDefinitionError(
                        "expected a branch with at least one step, got an empty one",
                        path=f"{path}.parallel[{b}]",
                    )
        else:
            located = [(entry, path)]
        for step, step_path in located:
            check_name(step.name, f"{step_path}.name")
            check_action(step, step_path)
            used_services.add(step.service_name)
            if step.kind == "pivot":
                if isinstance(entry, Parallel):
                    raise SagaDefinitionError(
                        "expected the pivot outside parallel groups, got it inside one",
                        path=f"{step_path}.kind",
                    )
                pivots.append(step_path)
                if len(pivots) > 1:
                    raise SagaDefinitionError(
                        f"expected at most one pivot, got a second one (first at {pivots[0]})",
                        path=f"{step_path}.kind",
                    )
            if step.compensation is not None:
                check_name(step.compensation.name, f"{step_path}.compensation.name")
                check_action(step.compensation, f"{step_path}.compensation")
                used_services.add(step.compensation.service or step.service_name)
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
