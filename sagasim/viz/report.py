"""A one-page HTML report of a saga: its diagram, what ``check`` proves, what ``analyze``
computes and what ``simulate`` shows, in one self-contained file.

The page carries everything inline (the diagram as SVG, the figures as base64 PNGs, the style
in a ``<style>`` element) and references nothing on the network, so it can be mailed, archived
or opened offline. The numbers come from the same functions as the CLI's commands.

Examples
--------
>>> import tempfile, pathlib
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="s", steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="pay", reject=0.1),
... ))
>>> with tempfile.TemporaryDirectory() as tmp:
...     page = report(saga, pathlib.Path(tmp) / "s.html", runs=200).read_text()
>>> "<svg" in page, page.count("data:image/png;base64,")
(True, 3)
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from matplotlib.figure import Figure

from .. import plot
from ..analysis.exact import Analysis, analyze
from ..exceptions import SagaSimError, UsageError
from ..model.saga import Saga
from ..sim.results import Results
from ..sim.run import simulate
from ..verify.verdicts import CheckReport, check
from .render import repr_svg

__all__ = ["report"]

#: Instances traced for the timeline figure.
TRACED_INSTANCES = 20
#: Sensitivities listed: the parameters that move the compensation probability most.
TOP_SENSITIVITIES = 5
PNG_DPI = 110

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1b2631; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.verdict { display: inline-block; padding: 0.2em 0.7em; border-radius: 4px; color: white; }
.consistent { background: #3b9b3b; } .inconsistent { background: #d62728; }
.trace { font-family: ui-monospace, monospace; font-size: 12px; }
.note { color: #5d6d7e; } .diagram svg { max-width: 100%; height: auto; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
"""


def report(saga: Saga, path: str | os.PathLike[str], *, runs: int = 20_000, seed: int = 0) -> Path:
    """Check, analyse and simulate ``saga`` (``runs`` instances from ``seed``) and write the
    results as a single self-contained HTML page to ``path``; returns the path.

    An analysis that cannot be done (too many states, say) is reported on the page with its
    reason rather than failing the report; the diagram needs Graphviz's ``dot``.
    """
    verdict = check(saga)
    try:
        analysis: Analysis | str = analyze(saga)
    except SagaSimError as err:
        analysis = str(err)
    results = simulate(saga, runs=runs, seed=seed, trace_limit=TRACED_INSTANCES)
    figures = [
        ("How instances ended", plot.outcome_bars(results)),
        ("End-to-end latency by outcome", plot.latency_distribution(results)),
        (
            f"The first {TRACED_INSTANCES} instances",
            plot.timeline(results, TRACED_INSTANCES, saga),
        ),
    ]
    body = [
        f"<h1>{escape(saga.name)}</h1>",
        f"<p>{escape(saga.description)}</p>" if saga.description else "",
        "<h2>Diagram</h2>",
        f"<div class='diagram'>{_inline_svg(repr_svg(saga))}</div>",
        _check_section(verdict),
        _analysis_section(analysis),
        _simulation_section(results),
        "<h2>Figures</h2>",
        *(f"<h3>{escape(title)}</h3>{_png(figure, title)}" for title, figure in figures),
    ]
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>sagasim report: {escape(saga.name)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    target = Path(path)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {target}: {err.strerror or err}") from err
    return target


def _inline_svg(svg: str) -> str:
    """The ``<svg>`` element alone: the XML declaration and the DOCTYPE (which names a DTD on
    the web) are not allowed, or needed, inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def _png(figure: Figure, title: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{escape(title)}' src='data:image/png;base64,{data}'>"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{lines}</table>"


def _check_section(verdict: CheckReport) -> str:
    word = "consistent" if verdict.consistent else "inconsistent"
    parts = [
        "<h2>What can happen: check</h2>",
        f"<p><span class='verdict {word}'>{word}</span> "
        f"{verdict.states:,} states, {verdict.transitions:,} transitions explored.</p>",
        _table(("end state", "reachable end states"), verdict.end_states.items()),
    ]
    if verdict.violations:
        parts.append("<h3>Counterexamples (the shortest trace to each bad end)</h3>")
        rows = (
            f"<tr><td>{escape(v.outcome)}</td><td class='trace'>"
            f"{escape(' → '.join(v.trace))}</td></tr>"
            for v in verdict.violations
        )
        parts.append(f"<table><tr><th>outcome</th><th>trace</th></tr>{''.join(rows)}</table>")
    if verdict.warnings:
        items = "".join(
            f"<li>[{escape(w.code)}] {escape(w.message)}</li>" for w in verdict.warnings
        )
        parts.append(f"<h3>Warnings</h3><ul>{items}</ul>")
    return "".join(parts)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:,.1f}"


def _analysis_section(analysis: Analysis | str) -> str:
    title = "<h2>How likely is it: analyze</h2>"
    if isinstance(analysis, str):
        return f"{title}<p class='note'>No exact analysis: {escape(analysis)}</p>"
    kind = "Exact" if analysis.exact else "Approximate"
    rows = [
        (name, f"{p:.6g}", _ms(analysis.expected_latency_ms[name]))
        for name, p in analysis.outcomes.items()
    ]
    rows.append(("all", "1", _ms(analysis.expected_latency_ms["all"])))
    rows.append(("compensation ran", f"{analysis.compensation_probability:.6g}", ""))
    rows += [
        (name, "see notes" if p is None else f"{p:.6g}", "")
        for name, p in analysis.anomalies.items()
    ]
    parts = [
        title,
        f"<p>{kind} values over {analysis.states:,} states.</p>",
        _table(("outcome", "probability", "expected latency (ms)"), rows),
    ]
    ranked = [s for s in analysis.sensitivity if s.d_compensation_probability or s.d_stuck]
    if ranked:
        parts.append("<h3>What drives compensation</h3>")
        parts.append(
            _table(
                ("parameter", "d P(compensation)", "d P(stuck)"),
                (
                    (s.parameter, f"{s.d_compensation_probability:+.4g}", f"{s.d_stuck:+.4g}")
                    for s in ranked[:TOP_SENSITIVITIES]
                ),
            )
        )
    parts += [f"<p class='note'>Note: {escape(note)}</p>" for note in analysis.notes]
    return "".join(parts)


def _simulation_section(results: Results) -> str:
    def rate(name: str) -> str:
        r = results.rate(name)
        return f"{r.value:.4%} [{r.low:.4%}, {r.high:.4%}]"

    outcome_rows = [(name, f"{n:,}", rate(name)) for name, n in results.outcomes.items()]
    outcome_rows.append(
        ("compensation ran", f"{int(results.compensated.sum()):,}", rate("compensation"))
    )
    latency_rows = [
        (name, *(_ms(v) for v in results.latency(None if name == "all" else name).values()))
        for name in ("all", *(n for n, count in results.outcomes.items() if count))
    ]
    return "".join(
        [
            "<h2>What it looks like: simulate</h2>",
            f"<p>{results.runs:,} instances, seed {results.seed}.</p>",
            _table(("outcome", "instances", "rate [95% interval]"), outcome_rows),
            _table(("latency (ms)", "mean", "p50", "p95", "p99"), latency_rows),
            _table(("anomaly", "instances"), ((k, f"{v:,}") for k, v in results.anomalies.items())),
        ]
    )
