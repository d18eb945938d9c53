"""Orchestration against choreography: one saga in both forms, side by side.

:func:`compare` takes a saga in either coordination and runs both forms: the orchestrated one
(a coordinator sends commands; the broker plays no part) and the choreographed one (services
react to events on the model's ``broker``). Each form is checked — which end states and
anomalies it can reach — and simulated on the same workload (the saga's arrivals, services and
outages) with the same seed. The table puts their end states, outcome and compensation rates,
latencies and messages per saga next to each other, with the difference and whether it is
more than noise: Fisher's exact test for a rate, Welch's t-test for a mean, at the 0.1% level.

Examples
--------
>>> from sagasim.model import Constant
>>> from sagasim.model import Broker, Compensation, Saga, Step
>>> saga = Saga(name="pay", broker=Broker(latency=Constant(value_ms=2), loss=0.01), steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.2),
... ))
>>> result = compare(saga, runs=2_000, seed=1)
>>> result.orchestration.reachable, result.choreography.reachable
(('committed', 'compensated'), ('committed', 'compensated', 'stuck'))
>>> result.orchestration.results.outcomes["stuck"], result.choreography.results.outcomes["stuck"]
(0, 21)
>>> round(result.difference("latency_mean").value, 1)  # a 2 ms hop, a second one to undo
2.4
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import stats

from ..exceptions import StateSpaceLimitError
from ..machine.orchestration import OUTCOMES
from ..machine.participants import ANOMALIES
from ..model.saga import Saga
from ..sim.results import COMPENSATION, Results
from ..sim.run import simulate
from ..verify.statespace import DEFAULT_MAX_STATES
from ..verify.verdicts import CheckReport, check

__all__ = ["Comparison", "Difference", "Form", "compare"]

Coordination = Literal["orchestration", "choreography"]
FORMS: tuple[Coordination, Coordination] = ("orchestration", "choreography")
#: A difference is reported as significant below this p-value (the 99.9% level of the tests).
ALPHA = 0.001
RATE_DIGITS, MS_DIGITS = 6, 3
#: What :meth:`Comparison.difference` compares: rates of instances, then means per instance.
RATES = (*OUTCOMES, COMPENSATION, *ANOMALIES)
MEANS = ("latency_mean", "messages_per_instance", "compensations_per_instance")


class Difference(NamedTuple):
    """Choreography minus orchestration for one figure, the test's p-value, and whether the
    difference is significant at the 0.1% level (a rate: Fisher's exact test; a mean: Welch's
    t-test; a difference of two constants is significant unless it is zero)."""

    orchestration: float
    choreography: float
    value: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


@dataclass(frozen=True, slots=True)
class Form:
    """One form of the saga: its model, what check found (None when its state space is larger
    than ``max_states``, or check was not asked for) and its simulated results."""

    coordination: Coordination
    saga: Saga
    results: Results
    report: CheckReport | None = None
    check_note: str = ""

    @property
    def reachable(self) -> tuple[str, ...] | None:
        """The end states and anomalies check found reachable, in DESIGN.md's order."""
        if self.report is None:
            return None
        found = [name for name, n in self.report.end_states.items() if n]
        return (*found, *(name for name, n in self.report.anomalies.items() if n))

    def check_summary(self) -> str:
        """One phrase: consistent or not, and how many states were explored."""
        if self.report is None:
            return self.check_note
        verdict = "consistent" if self.report.consistent else "NOT consistent"
        return f"{verdict}, {self.report.states:,} states"


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both forms of one saga, simulated on the same workload and seed."""

    saga: str
    runs: int
    seed: int
    orchestration: Form
    choreography: Form

    def __repr__(self) -> str:
        comp = self.difference(COMPENSATION)
        return (
            f"<Comparison {self.saga}: {self.runs} runs each, compensation "
            f"{comp.orchestration:.2%} orchestrated, {comp.choreography:.2%} choreographed>"
        )

    @property
    def same_end_states(self) -> bool | None:
        """Whether both forms reach the same end states and anomalies (None if unchecked)."""
        a, b = self.orchestration.reachable, self.choreography.reachable
        return None if a is None or b is None else a == b

    def difference(self, what: str) -> Difference:
        """Choreography minus orchestration for an end state, ``"compensation"`` or an anomaly
        (fractions of instances), or one of ``"latency_mean"`` (ms), ``"messages_per_instance"``
        and ``"compensations_per_instance"``."""
        a, b = self.orchestration.results, self.choreography.results
        if what in RATES:
            k, n, m, r = a.count(what), a.runs, b.count(what), b.runs
            p = float(stats.fisher_exact([[k, n - k], [m, r - m]]).pvalue)
            return Difference(k / n, m / r, m / r - k / n, p)
        if what not in MEANS:
            raise ValueError(f"expected one of {', '.join((*RATES, *MEANS))}, got {what!r}")
        column = {"latency_mean": "latency_ms"}.get(what, what.removesuffix("_per_instance"))
        x = np.asarray(getattr(a, column), dtype=np.float64)
        y = np.asarray(getattr(b, column), dtype=np.float64)
        mx, my = float(x.mean()), float(y.mean())
        if x.std() == 0 and y.std() == 0:  # two constants: the t-test has nothing to say
            return Difference(mx, my, my - mx, 1.0 if mx == my else 0.0)
        with warnings.catch_warnings():  # one constant sample: scipy fears a precision loss
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
        return Difference(mx, my, my - mx, 1.0 if math.isnan(p) else p)

    # --- outputs
    def to_dict(self) -> dict[str, Any]:
        """Both forms' ``check`` and ``simulate`` JSON, and every difference."""

        def form(f: Form) -> dict[str, Any]:
            report = None if f.report is None else f.report.to_dict()
            reachable = None if f.reachable is None else list(f.reachable)
            return {
                "check": report,
                "check_note": f.check_note or None,
                "reachable": reachable,
                "simulate": f.results.to_dict(),
            }

        differences = {}
        for what in (*RATES, *MEANS):
            d = self.difference(what)
            digits = RATE_DIGITS if what in RATES else MS_DIGITS
            differences[what] = {
                "orchestration": round(d.orchestration, digits),
                "choreography": round(d.choreography, digits),
                "difference": round(d.value, digits),
                "p_value": float(f"{d.p_value:.6g}"),
                "significant": d.significant,
            }
        return {
            "saga": self.saga,
            "runs": self.runs,
            "seed": self.seed,
            "same_end_states": self.same_end_states,
            "orchestration": form(self.orchestration),
            "choreography": form(self.choreography),
            "differences": differences,
        }

    def _rows(self) -> list[tuple[str, str, str, str]]:
        o, c = self.orchestration, self.choreography
        same = self.same_end_states
        rows = [
            ("check", o.check_summary(), c.check_summary(), ""),
            (
                "can end",
                _listed(o.reachable),
                _listed(c.reachable),
                "" if same is None else "same" if same else "differ",
            ),
        ]
        for what in RATES:
            d = self.difference(what)
            if d.orchestration or d.choreography or what in OUTCOMES or what == COMPENSATION:
                label = "compensation rate" if what == COMPENSATION else what.replace("_", " ")
                rows.append(
                    (
                        label,
                        _rate(o.results, what),
                        _rate(c.results, what),
                        f"{d.value * 100:+.2f} pp" + _star(d),
                    )
                )
        for what, label, unit in (
            ("latency_mean", "latency mean", " ms"),
            ("messages_per_instance", "messages/saga", ""),
            ("compensations_per_instance", "compensations/saga", ""),
        ):
            d = self.difference(what)
            rows.append(
                (
                    label,
                    f"{d.orchestration:.2f}{unit}",
                    f"{d.choreography:.2f}{unit}",
                    f"{d.value:+.2f}{unit}" + _star(d),
                )
            )
        for q in ("p95", "p99"):
            lo, lc = o.results.latency()[q], c.results.latency()[q]
            rows.append((f"latency {q}", f"{lo:.2f} ms", f"{lc:.2f} ms", f"{lc - lo:+.2f} ms"))
        return rows

    def to_text(self) -> str:
        """The side-by-side table for people."""
        head = ("", *FORMS, "difference")
        rows = [head, *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            f"compare {self.saga}: {self.runs:,} runs of each form, seed {self.seed}",
            *(
                "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                for row in rows
            ),
            f"  broker (choreography only): {_broker(self.choreography.saga)}",
            "  * more than noise: p < 0.001 (Fisher's exact test for rates, Welch's t-test "
            "for means)",
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(h)}</th>" for h in ("", *FORMS, "difference"))
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self._rows()
        )
        caption = f"compare {self.saga}: {self.runs:,} runs of each form, seed {self.seed}"
        return f"<table><caption>{escape(caption)}</caption><tr>{head}</tr>{body}</table>"

    def to_pandas(self) -> Any:
        """One row per figure of :meth:`difference`; needs pandas."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "Comparison.to_pandas needs pandas: pip install 'sagasim[pandas]'"
            ) from err
        rows = {what: self.difference(what)._asdict() for what in (*RATES, *MEANS)}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame["significant"] = frame["p_value"] < ALPHA
        return frame.rename(columns={"value": "difference"})


def compare(
    saga: Saga,
    *,
    runs: int = 10_000,
    seed: int = 0,
    workers: int = 1,
    check_states: bool = True,
    max_states: int = DEFAULT_MAX_STATES,
    trace_limit: int = 0,
    progress: bool = False,
) -> Comparison:
    """Check and simulate ``saga`` orchestrated and choreographed, on the same workload and
    seed. ``check_states=False`` skips check; a form whose state space is larger than
    ``max_states`` is simulated but not checked (its ``check_note`` says so). The first
    ``trace_limit`` instances of each form are traced (``form.results.traces``)."""
    forms = []
    for coordination in FORMS:
        form_saga = replace(saga, coordination=coordination)
        report, note = None, "not checked"
        if check_states:
            try:
                report = check(form_saga, max_states=max_states)
            except StateSpaceLimitError:
                note = f"not checked: more than {max_states:,} states"
        results = simulate(
            form_saga, runs, seed, workers=workers, trace_limit=trace_limit, progress=progress
        )
        forms.append(Form(coordination, form_saga, results, report, "" if report else note))
    return Comparison(saga.name, runs, seed, forms[0], forms[1])


def _listed(names: tuple[str, ...] | None) -> str:
    return "unknown" if names is None else ", ".join(names)


def _rate(results: Results, what: str) -> str:
    r = results.rate(what)
    return f"{r.value:.2%} [{r.low:.2%}, {r.high:.2%}]"


def _star(d: Difference) -> str:
    return " *" if d.significant else ""


def _broker(saga: Saga) -> str:
    b = saga.broker
    faults = [
        f"{name} {value:g}"
        for name, value in (("loss", b.loss), ("duplicate", b.duplicate), ("reorder", b.reorder))
        if value
    ]
    if b.loss and b.redelivery.attempts != 1:
        tries = "unbounded" if b.redelivery.attempts is None else b.redelivery.attempts
        faults.append(f"redelivery attempts {tries}")
    mean = b.latency.mean_ms
    return f"latency mean {mean:g} ms" + (", " + ", ".join(faults) if faults else ", no faults")
