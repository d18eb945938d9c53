"""Build sagas in Python in the words of the YAML format: durations as strings, the same checks.

Each helper returns a model object (:class:`~sagasim.model.Step`, a latency distribution, ...)
and checks its arguments with the very readers :mod:`sagasim.io` applies to a file, so a saga
built here obeys the rules of one loaded from YAML, and an equal model compares equal.
:func:`saga` ends in :func:`sagasim.model.validate`. Errors name the place by step name:
``charge.timeout: expected a duration with a unit (ms, s, min), got 300``.

Examples
--------
>>> order = saga(
...     "order",
...     step("reserve", compensation="release", latency=exponential("20ms")),
...     parallel([step("fraud_check", effects=False)], [step("hold", compensation="unhold")]),
...     step("charge", service="payments", kind="pivot", reject=0.05, retry=retry(3, delay="50ms")),
...     services=[service("payments", capacity=20)],
...     arrivals="50/s",
... )
>>> [s.kind for s in order.all_steps()]
['compensatable', 'read_only', 'compensatable', 'pivot']
>>> order.arrivals.rate_per_s, order.step("charge").retry.delay_ms
(50.0, 50.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast, get_args

from ..model import validate
from ..model.latency import Constant, Empirical, Exponential, Latency, LogNormal, Normal, Uniform
from ..model.saga import (
    Arrivals,
    Branch,
    Broker,
    Choice,
    Compensation,
    Entry,
    Fail,
    Goto,
    Map,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
    SubSaga,
    Succeed,
)
from .format import BRANCH, COMPENSATION, MAP, SAGA, SERVICE, STEP, read_latency
from .format import read_retry as _read_retry
from .shared import with_isolation
from .values import Field, expected, read_fields, read_label, read_rate

__all__ = ["compensation", "constant", "empirical", "exponential", "lognormal", "normal"]
__all__ += ["parallel", "retry", "saga", "service", "step", "uniform"]
__all__ += ["branch", "choice", "fail", "goto", "map_items", "sub_saga", "succeed"]

Duration = str
_LATENCIES = get_args(Latency)


def _plain(value: object) -> object:
    """A value as an error shows it: plain data as is, anything else by its type's name."""
    return value if isinstance(value, (str, int, float, type(None))) else type(value).__name__


def constant(value: Duration) -> Constant:
    """Every attempt takes ``value``.

    >>> constant("5ms")
    Constant(value_ms=5.0)
    """
    return cast(Constant, read_latency({"dist": "constant", "value": value}, "constant"))


def uniform(low: Duration, high: Duration) -> Uniform:
    """Uniform between ``low`` and ``high``.

    >>> uniform("1ms", "0.005s")
    Uniform(low_ms=1.0, high_ms=5.0)
    """
    return cast(Uniform, read_latency({"dist": "uniform", "low": low, "high": high}, "uniform"))


def exponential(mean: Duration) -> Exponential:
    """Exponential with mean ``mean`` (above zero).

    >>> exponential("20ms")
    Exponential(mean_ms=20.0)
    """
    return cast(Exponential, read_latency({"dist": "exponential", "mean": mean}, "exponential"))


def normal(mean: Duration, sd: Duration) -> Normal:
    """Normal truncated at 0 (negative draws are redrawn).

    >>> normal("10ms", "2ms")
    Normal(mu_ms=10.0, sd_ms=2.0)
    """
    return cast(Normal, read_latency({"dist": "normal", "mean": mean, "sd": sd}, "normal"))


def lognormal(
    median: Duration, *, p99: Duration | None = None, sigma: float | None = None
) -> LogNormal:
    """Log-normal by its median and either its 99th percentile or its shape ``sigma``.

    >>> lognormal("15ms", sigma=0.5)
    LogNormal(median_ms=15.0, sigma=0.5)
    >>> round(lognormal("15ms", p99="80ms").sigma, 4)
    0.7196
    """
    params: dict[str, Any] = {"dist": "lognormal", "median": median}
    params |= {key: value for key, value in (("p99", p99), ("sigma", sigma)) if value is not None}
    return cast(LogNormal, read_latency(params, "lognormal"))


def empirical(samples: Sequence[Duration]) -> Empirical:
    """Measured samples, drawn uniformly.

    >>> empirical(["1ms", "3ms"])
    Empirical(samples_ms=(1.0, 3.0))
    """
    return cast(
        Empirical, read_latency({"dist": "empirical", "samples": list(samples)}, "empirical")
    )


def retry(
    attempts: int | Literal["unbounded"] = 1,
    *,
    backoff: Literal["fixed", "exponential"] = "fixed",
    delay: Duration = "0ms",
    max_delay: Duration | None = None,
    multiplier: float = 2.0,
    jitter: bool = False,
) -> Retry:
    """How many attempts an action gets and how long it waits between them.

    >>> policy = retry("unbounded", backoff="exponential", delay="50ms", max_delay="1s")
    >>> policy.attempts, policy.nominal_delay_ms(3), policy.max_delay_ms
    (None, 200.0, 1000.0)
    """
    policy = {"attempts": attempts, "backoff": backoff, "delay": delay, "multiplier": multiplier}
    policy |= {"jitter": jitter} | ({} if max_delay is None else {"max_delay": max_delay})
    result: Retry = _read_retry(policy, "retry")
    return result


def _action(table: Sequence[Field], name: str, plain: dict[str, Any], extra: dict[str, Any]) -> Any:
    """The fields of a step or compensation: plain ones read as from YAML, objects type-checked."""
    fields = read_fields(
        {key: value for key, value in plain.items() if value is not None}, name, table, ""
    )
    kinds = {"latency": _LATENCIES, "retry": (Retry,), "compensation": (str, Compensation)}
    wanted = {"latency": "a distribution such as constant('5ms')", "retry": "a retry(...)"}
    for key, value in extra.items():
        if value is not None and not isinstance(value, kinds[key]):
            what = wanted.get(key, "a compensation name or compensation(...)")
            raise expected(what, _plain(value), f"{name}.{key}")
        if value is not None:
            fields[key] = Compensation(name=value) if isinstance(value, str) else value
    return fields


def compensation(
    name: str,
    *,
    latency: Latency | None = None,
    failure: float = 0.0,
    reject: float = 0.0,
    timeout: Duration | None = None,
    retry: Retry | None = None,
    service: str | None = None,
    idempotent: bool = False,
    rejects_late: bool = False,
    writes: Mapping[str, Any] | None = None,
) -> Compensation:
    """The action that undoes a step's effect.

    >>> compensation("release", retry=retry("unbounded", delay="100ms")).retry.unbounded
    True
    """
    plain: dict[str, Any] = {"name": name, "service": service, "failure": failure, "reject": reject}
    plain |= {"timeout": timeout, "idempotent": idempotent, "rejects_late": rejects_late}
    plain |= {"writes": None if writes is None else dict(writes)}
    return Compensation(**_action(COMPENSATION, name, plain, {"latency": latency, "retry": retry}))


def step(
    name: str,
    *,
    compensation: str | Compensation | None = None,
    latency: Latency | None = None,
    failure: float = 0.0,
    reject: float = 0.0,
    timeout: Duration | None = None,
    retry: Retry | None = None,
    kind: Literal["pivot", "retriable"] | None = None,
    effects: bool = True,
    service: str | None = None,
    idempotent: bool = False,
    rejects_late: bool = False,
    compensate_on_failure: bool = False,
    max_visits: int | None = None,
    reads: Sequence[str] | None = None,
    writes: Mapping[str, Any] | None = None,
) -> Step:
    """A local transaction of the saga; ``compensation`` is a name or a :func:`compensation`;
    ``reads`` and ``writes`` as in YAML (``writes={"seats": {"mode": "set", "by": -1}}``).

    >>> step("charge", kind="pivot", timeout="300ms").timeout_ms
    300.0
    >>> step("charge", failure="often")
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: charge.failure: expected a number, got 'often'
    """
    plain: dict[str, Any] = {"name": name, "service": service, "kind": kind, "effects": effects}
    plain |= {"failure": failure, "reject": reject, "timeout": timeout}
    plain |= {"idempotent": idempotent, "rejects_late": rejects_late}
    plain |= {"compensate_on_failure": compensate_on_failure, "max_visits": max_visits}
    plain |= {"reads": None if reads is None else list(reads)}
    plain |= {"writes": None if writes is None else dict(writes)}
    extra = {"latency": latency, "retry": retry, "compensation": compensation}
    return Step(**_action(STEP, name, plain, extra))


def parallel(*branches: Sequence[Entry]) -> Parallel:
    """Branches that start together; the group completes when every branch has.

    >>> len(parallel([step("a")], [step("b"), step("c")]).branches[1])
    2
    """
    for b, branch in enumerate(branches):
        if not isinstance(branch, (list, tuple)):
            raise expected("a list of steps", _plain(branch), f"parallel[{b}]")
        _entries(branch, f"parallel[{b}]")
    return Parallel(branches=tuple(tuple(branch) for branch in branches))


def branch(
    when: str, *steps: Entry, probability: float | None = None, default: bool = False
) -> Branch:
    """One way out of a :func:`choice`: ``when`` as written, its probability (or ``default``).

    >>> branch("in stock", step("reserve"), probability=0.9).probability
    0.9
    """
    fields = read_fields({"when": when, "default": default}, "branch", BRANCH, "", when="a text")
    if probability is not None:
        fields["probability"] = read_fields({"probability": probability}, "branch", BRANCH, "")[
            "probability"
        ]
    return Branch(steps=_entries(steps, f"branch {when!r}"), **fields)


def choice(name: str, *branches: Branch) -> Choice:
    """Exactly one branch runs, drawn afresh each time the saga gets here.

    >>> c = choice("stock", branch("yes", probability=0.9), branch("no", fail("out"), default=True))
    >>> [round(p, 12) for p in c.probabilities]
    [0.9, 0.1]
    """
    for b, item in enumerate(branches):
        if not isinstance(item, Branch):
            raise expected("a branch(...)", _plain(item), f"{name}.branches[{b}]")
    return Choice(name=name, branches=tuple(branches))


def fail(name: str) -> Fail:
    """Backward recovery from here; outcomes are counted by ``name`` too."""
    return Fail(name=name)


def succeed(name: str) -> Succeed:
    """The saga ends committed here."""
    return Succeed(name=name)


def goto(target: str) -> Goto:
    """Jump to the entry named ``target`` (in this list or an enclosing one)."""
    return Goto(target=target)


def map_items(
    name: str, *steps: Entry, items: int | Sequence[int], concurrency: int | None = None
) -> Map:
    """The body ``steps`` once per item: ``items`` a count or samples of counts (drawn
    uniformly), at most ``concurrency`` at a time.

    >>> map_items("pack", step("pack_item"), items=[1, 2, 2]).counts
    {1: 0.3333333333333333, 2: 0.6666666666666666}
    """
    count = items if isinstance(items, int) else {"dist": "empirical", "samples": list(items)}
    plain = {"name": name, "items": count} | (
        {} if concurrency is None else {"concurrency": concurrency}
    )
    fields = read_fields(plain, name, MAP, "")
    return Map(steps=_entries(steps, f"{name}.steps"), **fields)


def sub_saga(
    name: str,
    child: Saga,
    *,
    model: str | None = None,
    compensation: str | Compensation | None = None,
) -> SubSaga:
    """``child`` run as one step; ``model`` is the file it comes from (default: its name
    + ``.yaml``); ``compensation`` undoes the whole child once it committed.

    >>> sub_saga("book_hotel", saga("hotel", step("reserve_room")), compensation="cancel").model
    'hotel.yaml'
    """
    if not isinstance(child, Saga):
        raise expected("a saga(...)", _plain(child), f"{name}.saga")
    undo = Compensation(name=compensation) if isinstance(compensation, str) else compensation
    return SubSaga(name=name, model=model or f"{child.name}.yaml", saga=child, compensation=undo)


def _entries(entries: Sequence[Entry], path: str) -> tuple[Entry, ...]:
    for k, item in enumerate(entries):
        if not isinstance(item, ENTRIES):
            raise expected("a step(...) or another entry", _plain(item), f"{path}[{k}]")
    return tuple(entries)


ENTRIES = (Step, Parallel, Choice, Fail, Succeed, Goto, Map, SubSaga)


def service(
    name: str, capacity: int | None = None, outages: Sequence[tuple[Duration, Duration]] = ()
) -> Service:
    """A participant: ``capacity`` concurrent calls (None: unlimited) and outage windows.

    >>> service("payments", capacity=20, outages=[("60s", "90s")]).outages[0].end_ms
    90000.0
    """
    settings: dict[str, Any] = {"outages": [{"start": start, "end": end} for start, end in outages]}
    settings |= {} if capacity is None else {"capacity": capacity}
    path = f"services.{name}"
    return Service(name=read_label(name, path), **read_fields(settings, path, SERVICE, "a service"))


def saga(
    name: str,
    *entries: Entry,
    description: str = "",
    coordination: Literal["orchestration", "choreography"] = "orchestration",
    compensation_order: Literal["reverse", "parallel"] = "reverse",
    services: Sequence[Service] = (),
    arrivals: str | float | None = None,
    broker: Broker | None = None,
    resources: Mapping[str, Any] | None = None,
    isolation: Mapping[str, str] | None = None,
    instances: int = 1,
    coordinator: Mapping[str, Any] | None = None,
) -> Saga:
    """A whole saga, checked by :func:`sagasim.model.validate`; ``arrivals`` as ``"50/s"``;
    ``broker`` a :class:`sagasim.model.Broker` (for choreography); ``resources``,
    ``isolation`` and ``coordinator`` as in YAML (``coordinator={"crash": 0.01}``).

    >>> saga("s", step("a"), step("a"))
    Traceback (most recent call last):
    ...
    sagasim.exceptions.SagaDefinitionError: steps[1].name: expected a unique name, got 'a' again ...
    """
    top: dict[str, Any] = {"saga": name, "description": description}
    top |= {"coordination": coordination, "compensation_order": compensation_order}
    top |= {"instances": instances}
    shared = {"resources": resources, "isolation": isolation, "coordinator": coordinator}
    top |= {key: dict(value) for key, value in shared.items() if value is not None}
    fields = read_fields(top, "", SAGA, "")
    by_name = fields.pop("isolation_by_name", None)
    if by_name is not None:
        fields["resources"] = with_isolation(fields.get("resources", ()), by_name)
    for index, entry in enumerate(entries):
        if not isinstance(entry, ENTRIES):
            raise expected("a step(...) or another entry", _plain(entry), f"steps[{index}]")
    seen: set[str] = set()
    for declared in services:
        if not isinstance(declared, Service) or declared.name in seen:
            shown = declared.name if isinstance(declared, Service) else _plain(declared)
            raise expected("each service(...) once", shown, "services")
        seen.add(declared.name)
    if arrivals is not None:
        fields["arrivals"] = Arrivals(rate_per_s=read_rate(arrivals, "arrivals.rate"))
    if broker is not None:
        if not isinstance(broker, Broker):
            raise expected("a Broker(...)", _plain(broker), "broker")
        fields["broker"] = broker
    result = Saga(steps=tuple(entries), services=tuple(services), **fields)
    validate(result)
    return result
