"""Plots: each figure's labels, legend and artists match the data it was given."""

from __future__ import annotations

import io as stdio
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import FillBetweenPolyCollection, PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import AxesImage, imread
from matplotlib.patches import Rectangle
from scipy import stats

from sagasim import io, plot
from sagasim.exceptions import UsageError
from sagasim.experiments import SweepResult, sweep
from sagasim.machine import OUTCOMES
from sagasim.model import Saga
from sagasim.plot.style import SPAN_COLORS
from sagasim.sim import Results, simulate

MODELS = Path(__file__).resolve().parent.parent / "models"
RUNS = 2_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def order() -> Saga:
    return io.load(MODELS / "order_fulfillment.yaml")


@pytest.fixture(scope="module")
def under_load() -> Saga:
    return io.load(MODELS / "order_fulfillment_under_load.yaml")


@pytest.fixture(scope="module")
def rejects(order: Saga) -> SweepResult:
    return sweep(order, {"process_payment.reject": [0.0, 0.1, 0.2]}, runs=RUNS, seed=1)


@pytest.fixture(scope="module")
def fragile(order: Saga) -> SweepResult:
    """Releases that fail 30% of the time with 1 to 3 attempts: some instances end stuck."""
    saga = io.apply_overrides(order, ["release_inventory.failure=0.3"])
    return sweep(saga, {"release_inventory.retry.attempts": [1, 2, 3]}, runs=RUNS, seed=2)


@pytest.fixture(scope="module")
def grid(order: Saga) -> SweepResult:
    vary = {"process_payment.reject": [0.0, 0.2], "recommend_upsell.failure": [0.0, 0.2, 0.4]}
    return sweep(order, vary, runs=500, seed=3)


@pytest.fixture(scope="module")
def traced(order: Saga) -> Results:
    return simulate(order, runs=RUNS, seed=4, trace_limit=200)


@pytest.fixture(scope="module")
def loaded(under_load: Saga) -> Results:
    """About 70 s of arrivals at 50/s: the first 10 s of the payments outage (60 s to 90 s)."""
    return simulate(under_load, runs=3_500, seed=5, trace_limit=3_500)


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def bands(ax: Axes) -> list[FillBetweenPolyCollection]:
    return [c for c in ax.collections if isinstance(c, FillBetweenPolyCollection)]


def band_limits(band: FillBetweenPolyCollection, x: Iterable[float]) -> list[tuple[float, float]]:
    """The lowest and highest y of the band's outline at each x."""
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    return [
        (float(vertices[np.isclose(vertices[:, 0], v), 1].min()),
         float(vertices[np.isclose(vertices[:, 0], v), 1].max()))
        for v in x
    ]  # fmt: skip


def assert_png(figure: Figure, size: tuple[int, int]) -> None:
    buffer = stdio.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(PNG_MAGIC)
    buffer.seek(0)
    assert imread(buffer).shape[:2] == size


# --- sweeps ------------------------------------------------------------------------------------


def test_sweep_rates_draws_points_band_and_exact_curve(rejects: SweepResult) -> None:
    figure = plot.sweep_rates(rejects)
    (ax,) = figure.axes
    assert ax.get_xlabel() == "process_payment.reject (probability)"
    assert ax.get_ylabel() == "compensation rate (%)"
    assert legend_texts(ax) == ["simulated", "95% interval (Wilson)", "exact (analyze)"]
    simulated, exact = ax.get_lines()
    rows = rejects.rows()
    assert list(simulated.get_xdata()) == [0.0, 0.1, 0.2]
    assert np.allclose(simulated.get_ydata(), [row["compensation_rate"] * 100 for row in rows])
    curve = rejects.exact_curve
    assert curve is not None
    assert np.array_equal(exact.get_xdata(), curve.x)
    assert np.allclose(exact.get_ydata(), curve.compensation_probability * 100)
    (band,) = bands(ax)
    expected = [(row["ci_low"] * 100, row["ci_high"] * 100) for row in rows]
    assert np.allclose(band_limits(band, [0.0, 0.1, 0.2]), expected)
    assert_png(figure, (600, 1050))


def test_sweep_rates_puts_stuck_on_its_own_axis(fragile: SweepResult) -> None:
    figure = plot.sweep_rates(fragile)
    left, right = figure.axes
    assert right.get_ylabel() == "stuck rate (%)"
    assert left.get_xlabel() == "release_inventory.retry.attempts (attempts)"
    assert legend_texts(left) == [
        "compensation: simulated",
        "stuck: simulated",
        "compensation: 95% interval (Wilson)",
        "stuck: 95% interval (Wilson)",
        "compensation: exact (analyze)",
        "stuck: exact (analyze)",
    ]
    rows = fragile.rows()
    assert rows[0]["stuck"] > rows[2]["stuck"] > 0  # more attempts, fewer stuck instances
    (band,) = bands(right)
    expected = [(row["stuck_ci_low"] * 100, row["stuck_ci_high"] * 100) for row in rows]
    assert np.allclose(band_limits(band, [1, 2, 3]), expected)
    simulated, exact = right.get_lines()
    assert np.allclose(simulated.get_ydata(), [row["stuck_rate"] * 100 for row in rows])
    assert np.allclose(exact.get_ydata(), [row["exact_stuck"] * 100 for row in rows])


def test_sweep_rates_without_stuck_has_one_axis_and_draws_into_a_given_one(
    rejects: SweepResult, grid: SweepResult
) -> None:
    figure = Figure()
    ax = figure.add_subplot(1, 2, 2)
    assert plot.sweep_rates(rejects, ax=ax) is figure
    assert len(figure.axes) == 1 and len(ax.get_lines()) == 2
    with pytest.raises(UsageError, match="sweep_rates draws one-parameter sweeps, got 2"):
        plot.sweep_rates(grid)


def test_sweep_heatmap_cells_match_the_grid(grid: SweepResult, rejects: SweepResult) -> None:
    figure = plot.sweep_heatmap(grid)
    ax, colorbar = figure.axes
    assert ax.get_xlabel() == "recommend_upsell.failure (probability)"
    assert ax.get_ylabel() == "process_payment.reject (probability)"
    assert colorbar.get_ylabel() == "compensation rate (%)"
    (image,) = [i for i in ax.get_images() if isinstance(i, AxesImage)]
    assert np.allclose(image.get_array(), grid.grid("compensation_rate") * 100)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.2", "0.4"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.2"]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 6
    first = grid.rows()[0]
    half = (first["ci_high"] - first["ci_low"]) * 50
    assert texts[0] == f"{first['compensation_rate'] * 100:.2f}%\n±{half:.2g}"
    with pytest.raises(UsageError, match="sweep_heatmap draws two-parameter sweeps, got 1"):
        plot.sweep_heatmap(rejects)


# --- one simulation --------------------------------------------------------------------------


def test_outcome_bars_stack_the_outcomes_present(traced: Results, order: Saga) -> None:
    fragile = simulate(
        io.apply_overrides(
            order, ["release_inventory.failure=0.5", "release_inventory.retry.attempts=1"]
        ),
        runs=RUNS,
        seed=6,
    )
    designs = {"as designed": traced, "fragile release": fragile}
    present = [n for n in OUTCOMES if any(r.outcomes[n] for r in designs.values())]
    assert present == ["committed", "compensated", "stuck"]
    figure = plot.outcome_bars(designs)
    (ax,) = figure.axes
    assert len(ax.patches) == len(designs) * len(present)
    assert len(ax.containers) == len(present)
    assert legend_texts(ax) == present
    assert ax.get_ylabel() == "share of instances (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        f"as designed\n{RUNS:,} runs",
        f"fragile release\n{RUNS:,} runs",
    ]
    for name, container in zip(present, ax.containers):
        heights = [bar.get_height() for bar in container]
        assert np.allclose(heights, [r.outcomes[name] / r.runs * 100 for r in designs.values()])
        colors = {bar.get_facecolor()[:3] for bar in container}
        assert len(colors) == 1
        assert np.allclose(colors.pop(), to_rgb(plot.OUTCOME_COLORS[name]))
    assert_png(figure, (600, int(min(3.0 + 1.3 * 2, 10.0) * 150)))


def test_outcome_bars_of_one_run(traced: Results) -> None:
    (ax,) = plot.outcome_bars(traced).axes
    present = [n for n, k in traced.outcomes.items() if k]
    assert len(ax.patches) == len(present)
    assert legend_texts(ax) == present
    assert ax.get_xticklabels()[0].get_text() == f"order_fulfillment\n{RUNS:,} runs"


def test_latency_distribution_marks_percentiles_per_outcome(traced: Results) -> None:
    figure = plot.latency_distribution(traced)
    hist, ecdf = figure.axes
    present = [n for n, k in traced.outcomes.items() if k]
    assert hist.get_xlabel() == ecdf.get_xlabel() == "end-to-end latency (ms)"
    assert hist.get_ylabel() == "instances"
    assert ecdf.get_ylabel() == "fraction of instances (ECDF)"
    assert legend_texts(hist) == present
    labels = legend_texts(ecdf)
    for name, label in zip(present, labels):
        values = traced.latency_ms[traced.outcome == OUTCOMES.index(name)]
        p50 = np.percentile(values, 50)
        assert label.startswith(f"{name} (n={values.size:,}): p50 {p50:,.0f} ms, p95 ")
    steps = ecdf.get_lines()[0 : 2 * len(present) : 2]
    markers = ecdf.get_lines()[1 : 2 * len(present) : 2]
    for name, step, marker in zip(present, steps, markers):
        values = np.sort(traced.latency_ms[traced.outcome == OUTCOMES.index(name)])
        assert np.array_equal(step.get_xdata(), values)
        assert list(marker.get_ydata()) == [0.5, 0.95, 0.99]
        assert np.allclose(marker.get_xdata(), np.percentile(values, (50, 95, 99)))
    assert ecdf.get_xscale() == "log"  # rejected orders end in ms, shipped ones in seconds
    assert len(hist.patches) == 2 * len(present)  # an outline and a fill per outcome
    assert_png(figure, (600, 1350))


def test_latency_distribution_into_one_axes_draws_the_ecdf(traced: Results) -> None:
    figure = Figure()
    ax = figure.add_subplot()
    assert plot.latency_distribution(traced, ax=ax) is figure
    assert len(figure.axes) == 1 and ax.get_ylabel() == "fraction of instances (ECDF)"


# --- traces and time ---------------------------------------------------------------------------


def test_timeline_draws_every_attempt_of_the_chosen_instances(traced: Results, order: Saga) -> None:
    figure = plot.timeline(traced, instances=12, saga=order, outcomes={"compensated"})
    (ax,) = figure.axes
    chosen = [t for t in traced.traces if t.outcome == "compensated"][:12]
    assert len(chosen) == 12
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"#{t.instance} compensated" for t in chosen]
    bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bars) == sum(len(t.spans) for t in chosen)
    compensations = sum(s.compensation for t in chosen for s in t.spans)
    purple = to_rgb(SPAN_COLORS["compensation"])
    assert sum(np.allclose(b.get_facecolor()[0][:3], purple) for b in bars) == compensations
    assert ax.get_xlabel() == "time since the instance started (ms)"
    assert legend_texts(ax) == [
        "forward attempt",
        "retry",
        "compensation",
        "failed attempt",
        "end (outcome colour)",
    ]


def test_timeline_shades_outages_on_the_shared_clock(loaded: Results, under_load: Saga) -> None:
    (ax,) = plot.timeline(loaded, instances=10, saga=under_load, start_ms=59_800).axes
    assert all(t.get_text().startswith("#") for t in ax.get_yticklabels())
    assert ax.get_xlabel() == "simulation time (s)"
    assert legend_texts(ax)[-1] == "payments outage"
    (outage,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert outage.get_x() == 60.0 and outage.get_width() == 30.0
    with pytest.raises(UsageError, match=r"^timeline needs traced instances"):
        plot.timeline(simulate(under_load, runs=10))


def test_rate_over_time_bands_are_wilson_intervals(loaded: Results, under_load: Saga) -> None:
    figure = plot.rate_over_time(loaded, 5_000, saga=under_load, baseline=0.06)
    (ax,) = figure.axes
    assert ax.get_xlabel() == "arrival time (s)"
    assert ax.get_ylabel() == "compensation rate (%)"
    assert legend_texts(ax) == [
        "95% interval (Wilson)",
        "compensation rate per 5 s window",
        "baseline",
        "payments outage",
    ]
    starts, rates = loaded.rate_over_time(5_000)
    step, baseline = ax.get_lines()
    assert list(baseline.get_ydata()) == [6.0, 6.0]
    assert np.allclose(step.get_xdata()[:-1], starts / 1000)
    counts = np.bincount((loaded.start_ms // 5_000).astype(int), minlength=len(starts))
    full = counts >= 10
    assert np.allclose(step.get_ydata()[:-1][full], rates[full] * 100)
    assert np.isnan(step.get_ydata()[:-1][~full]).all()
    vertices = np.concatenate([p.vertices for p in bands(ax)[0].get_paths()])
    for k in np.flatnonzero(full):
        hits = round(rates[k] * counts[k])
        ci = stats.binomtest(hits, counts[k]).proportion_ci(method="wilson")
        at = vertices[np.isclose(vertices[:, 0], starts[k] / 1000)][:, 1]
        assert np.isclose(at, ci.low * 100).any() and np.isclose(at, ci.high * 100).any()
    during = rates[(starts >= 62_000) & (starts < 68_000)]
    assert during.min() > 0.8 > rates[starts < 55_000].max()  # the outage shows
    assert_png(figure, (600, 1050))


def test_rate_over_time_needs_arrivals(traced: Results) -> None:
    with pytest.raises(UsageError, match=r"^rate_over_time needs a saga with arrivals"):
        plot.rate_over_time(traced, 1_000)


def test_wilson_matches_scipy() -> None:
    hits, n = np.array([0, 3, 50, 99]), np.array([10, 40, 100, 100])
    low, high = plot.wilson(hits, n)
    for k, m, lo, hi in zip(hits, n, low, high):
        ci = stats.binomtest(int(k), int(m)).proportion_ci(method="wilson")
        assert np.isclose(lo, ci.low) and np.isclose(hi, ci.high)


def test_no_figure_is_left_open_in_pyplot(rejects: SweepResult, traced: Results) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot.sweep_rates(rejects)
    plot.outcome_bars(traced)
    plot.latency_distribution(traced)
    plot.timeline(traced, instances=3)
    assert plt.get_fignums() == before
