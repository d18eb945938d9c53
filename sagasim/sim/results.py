"""What a simulation found: per-instance arrays and their summaries.

A :class:`Results` holds one compact numpy array per measured quantity, one entry per saga
instance (about 28 bytes an instance), so a million instances fit in well under 100 MB. Every
figure the command line, a notebook or a sweep shows is computed from those arrays on demand:
outcome counts, rates with Wilson intervals (as :func:`scipy.stats.binomtest` gives), latency
percentiles, inconsistency windows, service utilisation, anomalies. :meth:`Results.to_dict` is
the stable JSON shape of DESIGN.md ("Outputs").

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> from sagasim.sim import simulate
>>> saga = Saga(name="pay", steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.2),
... ))
>>> results = simulate(saga, runs=2_000, seed=1)
>>> results.outcomes
{'committed': 1590, 'compensated': 410, 'leaked': 0, 'stuck': 0}
>>> rate = results.compensation_rate
>>> rate.low < 0.2 < rate.high
True
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from ..machine.orchestration import OUTCOMES
from ..machine.participants import ANOMALIES
from .concurrency import Concurrency
from .traces import InstanceTrace, Span, TraceEvent, write_traces

__all__ = ["COLUMNS", "InstanceTrace", "Rate", "Results", "ServiceStats", "Span", "TraceEvent"]
__all__ += ["Window", "assemble", "empty_columns", "merge"]

#: The per-instance arrays of :class:`Results` and their typecodes (numpy reads them as int8,
#: float64, uint8, int16, int16, float32, float64, uint16, uint8): 29 bytes an instance.
#: ``messages`` counts what went over the wire: a command and its reply per attempt when
#: orchestrated, the events sent to each subscriber (redeliveries included) when
#: choreographed. ``fail`` is 1 + the index in :attr:`Results.fail_names` of the fail entry
#: that started the instance's recovery, 0 for none.
COLUMNS = {
    "outcome": "b",
    "latency_ms": "d",
    "anomaly_flags": "B",
    "retries": "h",
    "compensations": "h",
    "window_ms": "f",
    "start_ms": "d",
    "messages": "H",
    "fail": "B",
}

#: JSON keys of the anomaly counts (DESIGN.md), in the order of :data:`ANOMALIES`.
ANOMALY_KEYS = ("duplicate_effects", "hanging", "late_leaks", "empty_compensations")
#: What :meth:`Results.rate` accepts besides an end state and an anomaly.
COMPENSATION = "compensation"
RATE_DIGITS = 6
MS_DIGITS = 3
#: A traced instance as a chunk holds it: slot, start, events, spans, anomalies.
Traced = tuple[int, float, "list[TraceEvent] | None", "list[Span] | None", tuple[str, ...]]


class Rate(NamedTuple):
    """A proportion and its confidence interval."""

    value: float
    low: float
    high: float


class Window(NamedTuple):
    """The instances arriving in one window of simulated time, and how many had an outcome."""

    start_ms: float
    runs: int
    hits: int

    @property
    def rate(self) -> float:
        """``hits / runs``; NaN for a window without arrivals."""
        return self.hits / self.runs if self.runs else math.nan


@dataclass(slots=True)
class ServiceStats:
    """Load on one service, summed over its attempts."""

    name: str
    capacity: int | None
    attempts: int = 0
    busy_ms: float = 0.0
    wait_ms: float = 0.0

    def add(self, other: ServiceStats) -> None:
        self.attempts += other.attempts
        self.busy_ms += other.busy_ms
        self.wait_ms += other.wait_ms


def empty_columns(n: int) -> dict[str, array[Any]]:
    """Zeroed buffers for the per-instance arrays of ``n`` instances, cheap to fill one item at
    a time; ``numpy.array`` turns each into the array of the same name in :class:`Results`.

    >>> {name: len(column) for name, column in empty_columns(3).items()}["window_ms"]
    3
    """
    return {name: array(code, bytes(n * array(code).itemsize)) for name, code in COLUMNS.items()}


def _wilson(k: int, n: int, confidence: float) -> Rate:
    """``k`` of ``n`` with the interval ``scipy.stats.binomtest(k, n).proportion_ci`` gives
    (``method="wilson"``, Newcombe 1998), computed here: simulating never loads scipy."""
    if not 0 <= confidence <= 1:
        raise ValueError(f"expected a confidence level in [0, 1], got {confidence!r}")
    p = k / n
    if confidence == 1:
        return Rate(p, 0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + 0.5 * confidence)
    denom = 2 * (n + z**2)
    center, delta = (2 * n * p + z**2) / denom, z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return Rate(p, 0.0 if k == 0 else center - delta, 1.0 if k == n else center + delta)


def _round(value: float, digits: int) -> float | None:
    """A float fit for stable JSON: rounded, and None where it is not finite."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"mean": math.nan, "p50": math.nan, "p95": math.nan, "p99": math.nan}
    p50, p95, p99 = np.percentile(values, (50, 95, 99))
    return {"mean": float(values.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _rounded(summary: dict[str, float]) -> dict[str, float | None]:
    return {key: _round(value, MS_DIGITS) for key, value in summary.items()}


@dataclass(slots=True, eq=False)
class Results:
    """Per-instance results of :func:`sagasim.sim.simulate` and what follows from them.

    ``outcome`` indexes :data:`sagasim.machine.OUTCOMES`; ``anomaly_flags`` holds the bits of
    :data:`sagasim.machine.participants.ANOMALIES`; ``compensations`` counts compensation attempts;
    ``window_ms`` is the inconsistency window (NaN where no compensation ran or no effect
    landed); ``start_ms`` is the arrival time (0 without arrivals). ``horizon_ms`` is the span
    of a shared run (0 when instances were independent).
    """

    saga: str
    runs: int
    seed: int
    outcome: np.ndarray
    latency_ms: np.ndarray
    anomaly_flags: np.ndarray
    retries: np.ndarray
    compensations: np.ndarray
    window_ms: np.ndarray
    start_ms: np.ndarray
    messages: np.ndarray
    fail: np.ndarray
    services: dict[str, ServiceStats] = field(default_factory=dict)
    shared: bool = False
    horizon_ms: float = 0.0
    traces: list[InstanceTrace] = field(default_factory=list)
    #: The saga's fail names (``fail`` entries, and ``max_visits``), which ``fail`` indexes.
    fail_names: tuple[str, ...] = ()
    #: What a trace file draws around the actions: sub-sagas and maps, and the choices.
    containers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    decisions: frozenset[str] = frozenset()
    #: Which engine ran: ``"simpy"`` (the reference) or ``"fast"`` (:mod:`sagasim.sim.fast`).
    engine: str = "simpy"
    #: Shared resources, locks and crashes (:mod:`sagasim.sim.shared`); None for other models.
    concurrency: Concurrency | None = None

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.outcomes.items())
        return f"<Results {self.saga}: {self.runs} runs, {counts}>"

    # --- counts and rates
    @property
    def fails(self) -> dict[str, dict[str, int]]:
        """Instances per end state for each fail name (empty for a saga without fail entries).

        >>> from sagasim.model import Branch, Choice, Fail, Saga, Step
        >>> from sagasim.sim import simulate
        >>> saga = Saga(name="s", steps=(Step(name="a", effects=False), Choice(name="c", branches=(
        ...     Branch(when="go", probability=0.5),
        ...     Branch(when="stop", default=True, steps=(Fail(name="stopped"),))))))
        >>> simulate(saga, runs=1_000, seed=1).fails["stopped"]["compensated"]
        495
        """
        return {
            name: {
                outcome: int(np.count_nonzero((self.fail == k + 1) & (self.outcome == i)))
                for i, outcome in enumerate(OUTCOMES)
            }
            for k, name in enumerate(self.fail_names)
        }

    @property
    def outcomes(self) -> dict[str, int]:
        """Instances per end state: every key of DESIGN.md, summing to ``runs``."""
        counts = np.bincount(self.outcome, minlength=len(OUTCOMES))
        return {name: int(counts[i]) for i, name in enumerate(OUTCOMES)}

    @property
    def compensated(self) -> np.ndarray:
        """Per instance: whether at least one compensation attempt started."""
        return np.asarray(self.compensations > 0)

    @property
    def anomalies(self) -> dict[str, int]:
        """Instances with each anomaly, keyed as :data:`sagasim.machine.participants.ANOMALIES`."""
        return {name: int(self._indicator(name).sum()) for name in ANOMALIES}

    def _indicator(self, what: str) -> np.ndarray:
        if what in OUTCOMES:
            return np.asarray(self.outcome == OUTCOMES.index(what))
        if what == COMPENSATION:
            return self.compensated
        if what in ANOMALIES:
            return np.asarray(self.anomaly_flags & (1 << ANOMALIES.index(what)) != 0)
        expected = ", ".join((*OUTCOMES, COMPENSATION, *ANOMALIES))
        raise ValueError(f"expected one of {expected}, got {what!r}")

    def rate(self, outcome: str, confidence: float = 0.95) -> Rate:
        """The fraction of instances with ``outcome`` (an end state, ``"compensation"`` or an
        anomaly) and its Wilson interval at ``confidence``.

        >>> from sagasim.model import Saga, Step
        >>> from sagasim.sim import simulate
        >>> r = simulate(Saga(name="s", steps=(Step(name="a", reject=0.5),)), runs=400)
        >>> r.rate("committed", confidence=0.99)
        Rate(value=0.5, low=0.43613..., high=0.56386...)
        """
        return _wilson(self.count(outcome), self.runs, confidence)

    def count(self, what: str) -> int:
        """Instances with ``what``: an end state, ``"compensation"`` or an anomaly."""
        return int(self._indicator(what).sum())

    @property
    def compensation_rate(self) -> Rate:
        """The headline figure: instances in which a compensation ran, with a 95% interval."""
        return self.rate(COMPENSATION)

    @property
    def stuck_rate(self) -> Rate:
        return self.rate("stuck")

    @property
    def leaked_rate(self) -> Rate:
        return self.rate("leaked")

    # --- times
    def latency(self, outcome: str | None = None) -> dict[str, float]:
        """Mean, p50, p95 and p99 end-to-end latency (ms) of all instances or of one outcome;
        NaN where no instance ended that way."""
        values = self.latency_ms if outcome is None else self.latency_ms[self._indicator(outcome)]
        return _summary(values)

    def inconsistency_window(self) -> dict[str, float]:
        """From the first effect landing to the end, over instances that compensated (ms)."""
        values = self.window_ms[~np.isnan(self.window_ms)].astype(np.float64)
        summary = _summary(values)
        summary["max"] = float(values.max()) if values.size else math.nan
        return summary

    def service_stats(self) -> dict[str, dict[str, float | int | None]]:
        """Per service: attempts, utilisation (busy time over capacity and the run's span, for
        a shared run of a service with a capacity; None otherwise) and mean queue wait."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name, s in sorted(self.services.items()):
            utilisation = None
            if self.shared and s.capacity is not None and self.horizon_ms > 0:
                utilisation = s.busy_ms / (s.capacity * self.horizon_ms)
            out[name] = {
                "capacity": s.capacity,
                "attempts": s.attempts,
                "utilisation": utilisation,
                "mean_queue_wait_ms": s.wait_ms / s.attempts if s.attempts else 0.0,
            }
        return out

    def per_instance(self, what: str) -> dict[str, float]:
        """Mean and maximum of ``"retries"``, ``"compensations"`` or ``"messages"`` per
        instance."""
        if what not in ("retries", "compensations", "messages"):
            raise ValueError(f"expected 'retries', 'compensations' or 'messages', got {what!r}")
        values = getattr(self, what)
        return {"mean": float(values.mean()), "max": float(values.max())}

    def compensation_phase(self) -> dict[str, float]:
        """From the first compensation attempt starting to the end (ms), over the *traced*
        instances in which a compensation ran (``simulate(..., trace_limit=...)``): how long
        undoing takes. ``instances`` says how many were measured; the rest is NaN without one.

        >>> from sagasim.model import Compensation, Saga, Step
        >>> from sagasim.model import Constant
        >>> from sagasim.sim import simulate
        >>> saga = Saga(name="s", steps=(
        ...     Step(name="a", compensation=Compensation(name="undo_a",
        ...                                              latency=Constant(value_ms=7))),
        ...     Step(name="b", reject=1.0),
        ... ))
        >>> simulate(saga, runs=10, trace_limit=10).compensation_phase()
        {'mean': 7.0, 'p50': 7.0, 'p95': 7.0, 'p99': 7.0, 'instances': 10}
        """
        durations = [
            trace.start_ms + trace.latency_ms - min(s.start_ms for s in spans)
            for trace in self.traces
            if (spans := [s for s in trace.spans if s.compensation])
        ]
        summary: dict[str, float] = _summary(np.array(durations, dtype=np.float64))
        summary["instances"] = len(durations)
        return summary

    def windows(self, width_ms: float, outcome: str = COMPENSATION) -> list[Window]:
        """The instances arriving in each window of ``width_ms`` from 0 to the last arrival,
        and how many of them had ``outcome`` (default: a compensation ran); the windows'
        ``runs`` sum to :attr:`runs`. ``pandas.DataFrame(results.windows(...))`` is a table.

        >>> from sagasim.model import Arrivals, Saga, Step
        >>> from sagasim.sim import simulate
        >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.5),),
        ...             arrivals=Arrivals(rate_per_s=10))
        >>> first = simulate(saga, runs=100).windows(5_000, "committed")[0]
        >>> first.start_ms, first.runs > first.hits > 0
        (0.0, True)
        """
        starts, counts, hits = self._binned(width_ms, outcome)
        return [
            Window(float(start), int(n), int(k))
            for start, n, k in zip(starts, counts, hits, strict=True)
        ]

    def rate_over_time(
        self, window_ms: float, outcome: str = COMPENSATION
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rate of ``outcome`` among instances starting in each window of ``window_ms``:
        ``(window starts, rates)``, NaN for windows without arrivals. Shows an outage's spike.

        >>> from sagasim.model import Arrivals, Saga, Step
        >>> from sagasim.sim import simulate
        >>> saga = Saga(name="s", steps=(Step(name="a", reject=0.5),),
        ...             arrivals=Arrivals(rate_per_s=10))
        >>> starts, rates = simulate(saga, runs=100).rate_over_time(5_000, "committed")
        >>> starts[:2].tolist(), len(rates) == len(starts)
        ([0.0, 5000.0], True)
        """
        starts, counts, hits = self._binned(window_ms, outcome)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
        return starts, rates

    def _binned(self, width_ms: float, outcome: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window starts, arrivals and instances with ``outcome`` per window of ``width_ms``."""
        if not width_ms > 0:
            raise ValueError(f"expected a positive window, got {width_ms!r} ms")
        bins = (self.start_ms // width_ms).astype(np.int64)
        n = int(bins.max()) + 1
        counts = np.bincount(bins, minlength=n)
        hits = np.bincount(bins, weights=self._indicator(outcome), minlength=n).astype(np.int64)
        return np.arange(n) * float(width_ms), counts, hits

    # --- outputs
    def to_dict(self) -> dict[str, Any]:
        """DESIGN.md's ``simulate`` JSON, plus rates, latency by outcome, windows, services and
        per-instance retries and compensations; floats rounded so the text is stable."""
        counts = self.outcomes
        anomalies = self.anomalies
        data = {
            "saga": self.saga,
            "runs": self.runs,
            "seed": self.seed,
            "outcomes": counts,
            "compensation_rate": self._rate_dict(COMPENSATION),
            "latency_ms": _rounded(self.latency()),
            "anomalies": {key: anomalies[name] for key, name in zip(ANOMALY_KEYS, ANOMALIES)},
            "rates": {name: self._rate_dict(name) for name in OUTCOMES},
            "latency_by_outcome": {
                name: _rounded(self.latency(name)) if counts[name] else None for name in OUTCOMES
            },
            "inconsistency_window_ms": _rounded(self.inconsistency_window()),
            "services": {
                name: {
                    k: _round(v, RATE_DIGITS if k == "utilisation" else MS_DIGITS)
                    if isinstance(v, float)
                    else v
                    for k, v in s.items()
                }
                for name, s in self.service_stats().items()
            },
            "retries_per_instance": _rounded(self.per_instance("retries")),
            "compensations_per_instance": _rounded(self.per_instance("compensations")),
            "messages_per_instance": _rounded(self.per_instance("messages")),
        } | ({"fails": self.fails} if self.fail_names else {})
        if self.engine != "simpy":  # SimPy's JSON stays as it was, byte for byte
            data["engine"] = self.engine
        if self.concurrency is not None:  # only models with resources or a coordinator
            self.concurrency.report(data, self.runs)
        return data

    def _rate_dict(self, name: str) -> dict[str, Any]:
        r = self.rate(name)
        return {
            "value": _round(r.value, RATE_DIGITS),
            "ci95": [_round(r.low, RATE_DIGITS), _round(r.high, RATE_DIGITS)],
        }

    def _rows(self) -> list[tuple[str, str]]:
        rows = [("runs", f"{self.runs:,} (seed {self.seed})")]
        if self.engine != "simpy":
            rows.append(("engine", self.engine))
        for name, count in self.outcomes.items():
            r = self.rate(name)
            rows.append((name, f"{count:,}  {r.value:.4%}  [{r.low:.4%}, {r.high:.4%}]"))
        for name, by_outcome in self.fails.items():
            hits = sum(by_outcome.values())
            r = _wilson(hits, self.runs, 0.95)
            rows.append((f"fail {name}", f"{hits:,}  {r.value:.4%}  [{r.low:.4%}, {r.high:.4%}]"))
        comp = self.compensation_rate
        rows.append(("compensation rate", f"{comp.value:.4%}  [{comp.low:.4%}, {comp.high:.4%}]"))
        lat = self.latency()
        shown = "  ".join(f"{key} {lat[key]:.1f}" for key in ("mean", "p50", "p95", "p99"))
        rows.append(("latency ms", shown))
        window = self.inconsistency_window()
        if not math.isnan(window["mean"]):
            rows.append(("inconsistency ms", f"mean {window['mean']:.1f}  p99 {window['p99']:.1f}"))
        retries, comps = self.per_instance("retries"), self.per_instance("compensations")
        rows.append(("retries/instance", f"mean {retries['mean']:.3f}  max {retries['max']:.0f}"))
        rows.append(("compensations/inst", f"mean {comps['mean']:.3f}  max {comps['max']:.0f}"))
        sent = self.per_instance("messages")
        rows.append(("messages/instance", f"mean {sent['mean']:.2f}  max {sent['max']:.0f}"))
        rows.append(
            ("anomalies", "  ".join(f"{k} {v:,}" for k, v in self.anomalies.items()) or "none")
        )
        if self.concurrency is not None:
            rows.extend(self.concurrency.rows(self.runs))
        for name, s in self.service_stats().items():
            util = s["utilisation"]
            load = f"utilisation {util:.1%}  " if isinstance(util, float) else ""
            rows.append(
                (f"service {name}", f"{load}mean queue wait {s['mean_queue_wait_ms']:.1f} ms")
            )
        return rows

    def to_text(self) -> str:
        """A table for people."""
        rows = self._rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"simulate {self.saga}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        cells = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        return f"<table><caption>simulate {escape(self.saga)}</caption>{cells}</table>"

    def to_pandas(self) -> Any:
        """One row per instance; needs pandas (``pip install 'sagasim[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "Results.to_pandas needs pandas: pip install 'sagasim[pandas]'"
            ) from err
        columns: dict[str, Any] = {
            "start_ms": self.start_ms,
            "outcome": pd.Categorical.from_codes(self.outcome.astype(np.int64), OUTCOMES),
            "latency_ms": self.latency_ms,
            "compensated": self.compensated,
            "compensations": self.compensations,
            "retries": self.retries,
            "inconsistency_window_ms": self.window_ms,
        }
        for name in ANOMALIES:
            columns[name] = self._indicator(name)
        if self.fail_names:  # the fail name per instance, missing where none applied
            columns["fail"] = pd.Categorical.from_codes(
                self.fail.astype(np.int64) - 1, self.fail_names
            )
        return pd.DataFrame(columns, index=pd.RangeIndex(self.runs, name="instance"))

    def write_trace(self, path: str | os.PathLike[str]) -> None:
        """Write the traced instances: ``.jsonl`` one event a line, ``.json`` the Chrome
        trace-event format (one track per instance; open it in Perfetto or chrome://tracing)."""
        write_traces(self.saga, self.traces, path, self.containers, self.decisions)


def merge(parts: Sequence[Results]) -> Results:
    """Join the results of chunks of one simulation, in order.

    >>> from sagasim.model import Saga, Step
    >>> from sagasim.sim import simulate
    >>> r = simulate(Saga(name="s", steps=(Step(name="a", reject=0.5),)), runs=10)
    >>> merge([r, r]).runs
    20
    """
    if not parts:
        raise ValueError("expected at least one Results to merge, got none")
    first = parts[0]
    services: dict[str, ServiceStats] = {}
    for part in parts:
        for name, s in part.services.items():
            total = services.setdefault(name, ServiceStats(name=name, capacity=s.capacity))
            total.add(s)
    traces = [trace for part in parts for trace in part.traces]

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(part, name) for part in parts])

    return Results(
        saga=first.saga,
        runs=sum(p.runs for p in parts),
        seed=first.seed,
        **{name: joined(name) for name in COLUMNS},
        services=services,
        shared=first.shared,
        horizon_ms=max(p.horizon_ms for p in parts),
        traces=traces,
        fail_names=first.fail_names,
        containers=first.containers,
        decisions=first.decisions,
        engine=first.engine,
        concurrency=None
        if first.concurrency is None
        else Concurrency.merged([p.concurrency for p in parts if p.concurrency is not None]),
    )


def assemble(
    saga: str,
    seed: int,
    columns: dict[str, array[Any]],
    services: dict[str, ServiceStats],
    traced: Sequence[
        tuple[int, float, list[TraceEvent] | None, list[Span] | None, tuple[str, ...]]
    ],
    *,
    first: int,
    horizon_ms: float | None,
    fail_names: tuple[str, ...] = (),
    containers: dict[str, tuple[str, ...]] | None = None,
    decisions: frozenset[str] = frozenset(),
    engine: str = "simpy",
) -> Results:
    """The :class:`Results` of one chunk from its column buffers and its traced instances
    ``(slot, start, events, spans, anomalies)``; ``horizon_ms`` None: independent instances;
    ``engine``: which engine ran it."""
    shared = horizon_ms is not None
    traces = [
        InstanceTrace(
            instance=first + slot,
            start_ms=start if shared else 0.0,
            events=tuple(events or ()),
            spans=tuple(spans or ()),
            outcome=OUTCOMES[columns["outcome"][slot]],
            anomalies=anomalies,
            latency_ms=columns["latency_ms"][slot],
        )
        for slot, start, events, spans, anomalies in traced
    ]
    arrays = {name: np.array(column) for name, column in columns.items()}
    return Results(
        saga,
        len(columns["outcome"]),
        seed,
        **arrays,
        services=services,
        shared=shared,
        horizon_ms=horizon_ms or 0.0,
        traces=traces,
        fail_names=fail_names,
        containers=containers or {},
        decisions=decisions,
        engine=engine,
        concurrency=None,
    )
