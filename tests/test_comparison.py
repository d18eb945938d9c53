"""compare: both forms of one saga, checked and simulated on the same workload and seed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from sagasim import io
from sagasim.cli import main
from sagasim.experiments import compare
from sagasim.experiments.comparison import MEANS, RATES
from sagasim.model import Arrivals, Broker, Compensation, Constant, Saga, Service, Step

MODELS = Path(__file__).parent.parent / "models"
ORDER = io.load(MODELS / "order_fulfillment.yaml")
TEN_MS = Constant(value_ms=10.0)
#: Two steps with constant latencies: a reserve that can be undone, then a pivot.
PAY = Saga(
    name="pay",
    steps=(
        Step(name="reserve", latency=TEN_MS, compensation=Compensation(name="release")),
        Step(name="charge", kind_declared="pivot", latency=TEN_MS, reject=0.3),
    ),
)


@pytest.mark.statistical
def test_a_perfect_broker_changes_the_messages_not_the_outcomes() -> None:
    result = compare(ORDER, runs=20_000, seed=4)
    assert result.same_end_states is True
    assert result.orchestration.reachable == ("committed", "compensated")
    for what in ("committed", "compensated", "compensation", "latency_mean"):
        assert not result.difference(what).significant, what
    # A command and a reply per attempt, against one event per subscriber.
    messages = result.difference("messages_per_instance")
    assert messages.significant and messages.value < -4


def test_a_lossy_broker_makes_stuck_reachable_and_frequent_only_choreographed() -> None:
    saga = replace(ORDER, broker=Broker(loss=0.01))
    result = compare(saga, runs=5_000, seed=1)
    assert result.same_end_states is False
    assert "stuck" not in (result.orchestration.reachable or ())
    assert "stuck" in (result.choreography.reachable or ())
    report = result.choreography.report
    assert report is not None and not report.consistent
    stuck = result.difference("stuck")
    assert stuck.orchestration == 0 and stuck.choreography > 0.02 and stuck.significant


def test_messages_and_latency_are_exact_with_constant_times() -> None:
    hop = Broker(latency=Constant(value_ms=2.0))
    result = compare(replace(PAY, broker=hop), runs=2_000, seed=3)
    undone = result.orchestration.results.rate("compensated").value
    rejected = result.choreography.results.rate("compensated").value
    # Orchestrated: a command and a reply per attempt (two steps, and the release after a
    # reject); choreographed: reserve.done → charge, and charge.failed → reserve after a reject.
    messages = result.difference("messages_per_instance")
    assert messages.orchestration == pytest.approx(4 + 2 * undone)
    assert messages.choreography == pytest.approx(1 + rejected)
    # The same hops in time: 2 ms each, and the undo takes no time of its own.
    latency = result.difference("latency_mean")
    assert latency.value == pytest.approx(2.0 * (1 + rejected))
    assert latency.significant  # a difference of constants is no noise


def test_both_forms_run_the_same_workload() -> None:
    loaded = replace(
        PAY,
        arrivals=Arrivals(rate_per_s=90.0),
        services=(Service(name="reserve", capacity=1),),
    )
    result = compare(loaded, runs=2_000, seed=5, check_states=False)
    for form in (result.orchestration, result.choreography):
        stats = form.results.service_stats()["reserve"]
        assert stats["capacity"] == 1 and stats["mean_queue_wait_ms"] > 1.0
        assert form.results.shared and form.report is None
    assert result.same_end_states is None


def test_the_model_s_own_coordination_does_not_matter() -> None:
    traced = compare(PAY, runs=500, seed=2, trace_limit=3)
    assert [len(f.results.traces) for f in (traced.orchestration, traced.choreography)] == [3, 3]
    choreographed = traced.choreography.results.traces[0]
    assert any(" → " in event for _, event in choreographed.timeline)  # messages, traced
    one = compare(PAY, runs=500, seed=2).to_dict()
    other = compare(replace(PAY, coordination="choreography"), runs=500, seed=2).to_dict()
    assert one == other
    assert one["orchestration"]["simulate"]["runs"] == 500


def test_a_form_too_large_to_check_is_still_simulated() -> None:
    saga = replace(ORDER, broker=Broker(duplicate=0.05, reorder=0.1))
    result = compare(saga, runs=300, seed=0, max_states=2_000)
    assert result.orchestration.report is not None
    assert result.choreography.report is None
    assert result.choreography.check_note == "not checked: more than 2,000 states"
    assert result.same_end_states is None
    assert result.choreography.results.anomalies["duplicate_effect"] > 0
    text = result.to_text()
    assert "not checked: more than 2,000 states" in text and "unknown" in text


def test_every_difference_is_in_the_json_text_and_frame() -> None:
    result = compare(replace(PAY, broker=Broker(duplicate=0.2)), runs=1_000, seed=6)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(data["differences"]) == {*RATES, *MEANS}
    dup = data["differences"]["duplicate_effect"]
    assert dup["orchestration"] == 0 and dup["choreography"] > 0.1 and dup["significant"]
    assert data["orchestration"]["reachable"] == ["committed", "compensated"]
    reachable = set(data["choreography"]["reachable"])
    assert {"committed", "compensated", "duplicate_effect"} <= reachable
    frame = result.to_pandas()
    assert list(frame.index) == [*RATES, *MEANS]
    assert bool(frame.loc["duplicate_effect", "significant"])
    assert "duplicate effect" in result.to_text() and "<table>" in result._repr_html_()
    with pytest.raises(ValueError, match="expected one of"):
        result.difference("latency_median")


def test_the_command_prints_the_table_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    model = str(MODELS / "order_fulfillment.yaml")
    assert main(["compare", model, "--runs", "400", "--set", "broker.loss=0.01"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("compare order_fulfillment: 400 runs of each form, seed 0")
    assert "NOT consistent" in text and "broker (choreography only): latency mean 0 ms, loss 0.01"
    assert main(["compare", model, "--runs", "300", "--no-check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["orchestration"]["check"] is None and data["same_end_states"] is None
    assert data["choreography"]["simulate"]["runs"] == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "0"], "--runs: expected a positive number of runs, got 0"),
        (["--max-states", "0"], "expected a positive integer"),
        (["--set", "broker.loss=2"], "--set broker.loss=2: expected a probability in [0, 1]"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["compare", str(MODELS / "order_fulfillment.yaml"), *args])
    except SystemExit as stop:  # argparse's own errors
        code = int(stop.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
