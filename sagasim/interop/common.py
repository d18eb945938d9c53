"""What the Step Functions and Seata readers share: state names to action names, flags in
``Comment`` fields, retry rules, unique names and errors located at a definition's path.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..exceptions import SagaDefinitionError
from ..io import yaml as _yaml
from ..io.values import MISSING, expected
from ..model import RESERVED_NAMES, Retry, Saga, validate

#: The largest ``MaxAttempts`` ASL accepts; read as, and written for, unbounded attempts.
MAX_ATTEMPTS = 99_999_999

FLAGS = {
    "pivot": re.compile(r"\bpivot\b", re.IGNORECASE),
    "retriable": re.compile(r"\bretriable\b", re.IGNORECASE),
    "read_only": re.compile(r"\bread[- ]only\b", re.IGNORECASE),
}


def snake_case(name: str) -> str:
    """The action name a state name becomes.

    >>> snake_case("ReserveFlight"), snake_case("reserve car-rental"), snake_case("HTTPCall2B")
    ('reserve_flight', 'reserve_car_rental', 'http_call2_b')
    """
    words = re.sub(r"\W+", "_", name)
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words)
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", words)
    return re.sub(r"_+", "_", words).strip("_").lower()


def comment_flags(state: Mapping[str, Any], path: str) -> set[str]:
    """Which of ``pivot``, ``retriable`` and ``read_only`` the state's ``Comment`` declares."""
    comment = state.get("Comment", "")
    if not isinstance(comment, str):
        raise bad("a text", comment, f"{path}.Comment")
    return {flag for flag, pattern in FLAGS.items() if pattern.search(comment)}


def milliseconds(seconds: float) -> float:
    """Seconds as exact milliseconds: ``0.1`` -> ``100.0``, not ``100.00000000000001``."""
    return float(Decimal(repr(seconds)) * 1000)


ABSENT = object()


def bad(what: str, value: object, path: str) -> SagaDefinitionError:
    """``expected WHAT, got VALUE`` at ``path``; :data:`ABSENT` reads as a missing key."""
    if value is ABSENT:
        return SagaDefinitionError(f"expected {what}, got {MISSING}", path=path)
    return expected(what, value, path)


def read_number(value: object, path: str, low: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
        raise bad(what, value, path)
    return float(value)


def read_retry(
    rules: object, path: str, *, retries: int | None, interval_s: float, rate: float, asl: bool
) -> Retry:
    """The retry policy of a ``Retry`` list of at most one rule; the defaults are the engine's.

    ``retries`` is the default ``MaxAttempts`` (None: the key is required). With ``asl``,
    ``MaxDelaySeconds`` and ``JitterStrategy`` are read and :data:`MAX_ATTEMPTS` is unbounded.
    """
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise bad("a list of retry rules", rules, path)
    if len(rules) > 1:
        message = f"expected one retry rule, got {len(rules)} (sagasim has one retry policy per"
        message += " action: keep the rule for the failures whose rate you will measure)"
        raise SagaDefinitionError(message, path=f"{path}[1]")
    if not rules:
        return Retry()
    rule, at = rules[0], f"{path}[0]"
    count = rule.get("MaxAttempts", ABSENT if retries is None else retries)
    number = isinstance(count, (int, float)) and not isinstance(count, bool)
    if not number or count < 0 or not float(count).is_integer():
        raise bad("a non-negative integer", count, f"{at}.MaxAttempts")
    if count == 0:
        return Retry()
    delay = read_number(
        rule.get("IntervalSeconds", interval_s), f"{at}.IntervalSeconds", 0, "a number"
    )
    rate = read_number(rule.get("BackoffRate", rate), f"{at}.BackoffRate", 1, "a number >= 1")
    cap = rule.get("MaxDelaySeconds") if asl else None
    max_delay_ms = None if cap is None else read_number(cap, f"{at}.MaxDelaySeconds", 0, "a number")
    jitter = rule.get("JitterStrategy", "NONE") if asl else "NONE"
    if jitter not in ("FULL", "NONE"):
        raise bad("'FULL' or 'NONE'", jitter, f"{at}.JitterStrategy")
    return Retry(
        attempts=None if asl and count >= MAX_ATTEMPTS else int(count) + 1,
        backoff="fixed" if rate == 1 else "exponential",
        multiplier=2.0 if rate == 1 else rate,
        delay_ms=milliseconds(delay),
        max_delay_ms=None if max_delay_ms is None else milliseconds(max_delay_ms),
        jitter=jitter == "FULL",
    )


@dataclass
class Names:
    """The action names given so far, each with the path of the state it came from."""

    used: dict[str, str] = field(default_factory=dict)

    def take(self, state_name: str, path: str) -> str:
        name = snake_case(state_name)
        shown = f"{state_name!r} (as {name!r})"
        if not name.isidentifier() or keyword.iskeyword(name):
            message = f"expected a state name that makes an identifier in snake_case, got {shown}"
            raise SagaDefinitionError(message, path=path)
        if name in RESERVED_NAMES:
            reserved = ", ".join(sorted(RESERVED_NAMES))
            message = f"expected a state name other than the reserved {reserved}, got {shown}"
            raise SagaDefinitionError(message, path=path)
        if name in self.used:
            message = f"expected state names distinct in snake_case, got {shown} again"
            raise SagaDefinitionError(f"{message} (first at {self.used[name]})", path=path)
        self.used[name] = path
        return name


def located(
    err: SagaDefinitionError, file: str | None, lines: Mapping[str, int] | None
) -> SagaDefinitionError:
    """``err`` with the file and the line of its path."""
    line = err.line if err.line is not None or lines is None else _yaml.line_of(lines, err.path)
    return SagaDefinitionError(err.message, path=err.path, file=file, line=line)


def check_valid(saga: Saga, places: Mapping[str, str]) -> Saga:
    """Validate ``saga``, naming a problem by the state it came from (``places``: model path ->
    state path)."""
    try:
        validate(saga)
    except SagaDefinitionError as err:
        inside = [p for p in places if err.path == p or err.path[len(p) : len(p) + 1] in (".", "[")]
        place = max((p for p in inside if err.path.startswith(p)), key=len, default="")
        rest = err.path[len(place) :]
        rest = ".Comment" if rest == ".kind" else rest  # a definition declares kinds in Comments
        path = places[place] + rest if place else err.path
        raise SagaDefinitionError(err.message, path=path) from None
    return saga


def describe(chain: Collection[str]) -> str:
    return ", then ".join(chain) if chain else "no compensation"
