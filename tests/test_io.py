"""io: every refused model gets its exact one-line error; every model survives the round trip."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagasim.exceptions import SagaDefinitionError
from sagasim.io import apply_overrides
from sagasim.io import format as io
from sagasim.model import (
    Action,
    Arrivals,
    Compensation,
    Constant,
    Empirical,
    Exponential,
    Latency,
    LogNormal,
    Normal,
    Outage,
    Parallel,
    Retry,
    Saga,
    Service,
    Step,
    Uniform,
)

from .bad_inputs import BAD_INPUTS, GOOD_MODEL, BadInput
from .strategies import sagas

MODELS = sorted(Path(__file__).resolve().parent.parent.glob("models/**/*.yaml"))


def write(tmp_path: Path, source: str | bytes, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(source if isinstance(source, bytes) else source.encode())
    return path


# --- refused models -------------------------------------------------------------------------------


def test_the_table_has_at_least_thirty_distinct_cases() -> None:
    assert len({case.id for case in BAD_INPUTS}) == len(BAD_INPUTS) >= 30
    assert len({case.source for case in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input_gets_its_exact_error_line(tmp_path: Path, case: BadInput) -> None:
    path = write(tmp_path, case.source)
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(path)
    assert str(caught.value) == f"{path}:{case.error}"
    assert caught.value.file == str(path)
    assert caught.value.line == int(case.error.split(":")[0])
    assert "\n" not in str(caught.value)


def test_loads_names_the_string_and_from_dict_names_no_file() -> None:
    with pytest.raises(SagaDefinitionError, match=r"^<string>:2: steps: expected at least one"):
        io.loads("saga: s\nsteps: []\n")
    with pytest.raises(SagaDefinitionError) as caught:
        io.from_dict({"saga": "s", "steps": [{"name": "a", "failure": 2}]})
    assert str(caught.value) == "steps[0].failure: expected a probability in [0, 1], got 2.0"
    assert (caught.value.file, caught.value.line) == (None, None)


def test_an_error_without_its_own_line_takes_the_nearest_parent_line() -> None:
    # steps[0].compensation.name has no line of its own: the compensation is a bare string.
    text = "saga: s\nsteps:\n  - name: a\n\n    compensation: send\n"
    with pytest.raises(SagaDefinitionError) as caught:
        io.loads(text, file="m.yaml")
    assert caught.value.line == 5
    assert caught.value.path == "steps[0].compensation.name"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("", "1: expected a mapping with keys 'saga' and 'steps', got an empty document"),
        (
            "# only a comment\n",
            "1: expected a mapping with keys 'saga' and 'steps', got an empty document",
        ),
        (
            "saga: s\nsteps: [{name: a}]\n---\nsaga: t\n",
            "3: expected valid YAML, got a syntax error at column 1: expected a single document"
            " in the stream, but found another document",
        ),
        (
            "saga: s\nsteps: [{name: a\x07}]\n",
            "2: expected printable text, got the character '\\x07'",
        ),
        (
            "saga: s\nsteps: [{name: a}]\nx: *nowhere\n",
            "3: expected valid YAML, got a syntax error at column 4: found undefined alias"
            " 'nowhere'",
        ),
        ("saga: s\nsteps: [{name: a}]\n[1, 2]: x\n", "3: expected a plain key, got a list"),
        (
            "saga: !!binary aGVsbG8=\nsteps: [{name: a}]\n",
            "1: saga: expected plain YAML data, got the tag '!!binary'",
        ),
        (
            "saga: s\nsteps: [{name: a, failure: !!float abc}]\n",
            "2: steps[0].failure: expected a number, got 'abc'",
        ),
        (
            "saga: s\nsteps: !custom [{name: a}]\n",
            "2: steps: expected plain YAML data, got the tag '!custom'",
        ),
    ],
)
def test_yaml_level_refusals(tmp_path: Path, source: str, error: str) -> None:
    path = write(tmp_path, source)
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(path)
    assert str(caught.value) == f"{path}:{error}"


def test_files_over_one_megabyte_are_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, "saga: s\nsteps: [{name: a}]\n" + "#" * (1 << 20))
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(path)
    assert str(caught.value) == f"{path}: expected at most 1048576 bytes, got more"
    with pytest.raises(SagaDefinitionError, match=r"^<string>: expected at most 1048576 bytes"):
        io.loads(path.read_text())


def test_an_unreadable_file_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(tmp_path / "missing.yaml")
    assert (
        str(caught.value)
        == f"{tmp_path / 'missing.yaml'}: expected a readable file, got No such file or directory"
    )


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfsaga: s\nsteps: [{name: caf\xc3\xa9}]\n")
    assert io.load(path).steps[0].name == "café"


def test_python_tags_construct_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "hacked"
    source = f"saga: !!python/object/apply:os.system ['touch {marker}']\nsteps: [{{name: a}}]\n"
    with pytest.raises(SagaDefinitionError, match="expected plain YAML data"):
        io.loads(source)
    assert not marker.exists()


# --- YAML 1.2 scalars -------------------------------------------------------------------------


def test_yes_no_on_off_stay_strings_and_only_true_false_are_booleans() -> None:
    saga = io.loads(
        "saga: s\ndescription: yes\nsteps:\n"
        "  - {name: on, service: off, effects: FALSE}\n"
        "  - {name: n, compensation: no, idempotent: True}\n"
    )
    assert saga.description == "yes"
    on, n = saga.steps
    assert isinstance(on, Step) and isinstance(n, Step)
    assert (on.name, on.service, on.effects) == ("on", "off", False)
    assert n.compensation == Compensation(name="no")
    assert n.idempotent is True


def test_numbers_follow_yaml_1_2() -> None:
    saga = io.loads("saga: s\nsteps: [{name: a, failure: 1e-3, reject: .5}]\narrivals: {rate: 10}")
    step = saga.steps[0]
    assert isinstance(step, Step)
    assert (step.failure, step.reject) == (0.001, 0.5)
    assert saga.arrivals == Arrivals(rate_per_s=10.0)


def test_dumps_quotes_strings_other_yaml_readers_would_misread() -> None:
    saga = Saga(name="1e3", description="yes", steps=(Step(name="on", service="010"),))
    text = io.dumps(saga)
    assert "'yes'" in text and "'on'" in text and "'1e3'" in text and "'010'" in text
    assert io.loads(text) == saga


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("15ms", 15.0),
        ("0ms", 0.0),
        ("1.5s", 1500.0),
        ("2min", 120000.0),
        ("0.25ms", 0.25),
        ("1.005s", 1005.0),
        ("0.1s", 100.0),
        ("007s", 7000.0),
        ("1.5min", 90000.0),
    ],
)
def test_parse_duration(text: str, ms: float) -> None:
    assert io.parse_duration(text) == ms


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (15, "expected a duration with a unit (ms, s, min), got 15"),
        ("15", "expected a duration with a unit (ms, s, min), got '15'"),
        ("15 ms", "expected a duration with a unit (ms, s, min), got '15 ms'"),
        ("1e3ms", "expected a duration with a unit (ms, s, min), got '1e3ms'"),
        (".5s", "expected a duration with a unit (ms, s, min), got '.5s'"),
        ("5h", "expected a duration with a unit (ms, s, min), got '5h'"),
        (None, "expected a duration with a unit (ms, s, min), got null"),
        (True, "expected a duration with a unit (ms, s, min), got true"),
        ("-5ms", "expected a non-negative duration, got '-5ms'"),
    ],
)
def test_parse_duration_refuses(value: object, error: str) -> None:
    with pytest.raises(SagaDefinitionError) as caught:
        io.parse_duration(value, "steps[1].timeout")
    assert str(caught.value) == f"steps[1].timeout: {error}"


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.0, "0ms"),
        (15.0, "15ms"),
        (0.25, "0.25ms"),
        (999.0, "999ms"),
        (1000.0, "1s"),
        (1500.0, "1.5s"),
        (60000.0, "1min"),
        (90000.0, "90s"),
        (120000.0, "2min"),
        (1e-7, "0.0000001ms"),
    ],
)
def test_durations_are_written_in_the_largest_exact_unit(ms: float, text: str) -> None:
    step = Step(name="a", timeout_ms=ms)
    assert io.to_dict(Saga(name="s", steps=(step,)))["steps"][0]["timeout"] == text


# --- the round trip -----------------------------------------------------------------------------


def test_the_good_model_loads_to_the_expected_objects() -> None:
    saga = io.loads(GOOD_MODEL)
    assert saga.name == "order_fulfillment"
    assert saga.services == (
        Service(name="payments", capacity=20, outages=(Outage(start_ms=60000.0, end_ms=90000.0),)),
        Service(name="shipping"),
    )
    assert saga.arrivals == Arrivals(rate_per_s=50.0)
    upsell = saga.step("recommend_upsell")
    assert upsell.retry == Retry(
        attempts=3,
        backoff="exponential",
        delay_ms=50.0,
        jitter=True,
        max_delay_ms=400.0,
        multiplier=3.0,
    )
    assert upsell.latency == Uniform(low_ms=5.0, high_ms=40.0)
    assert saga.step("validate_order").latency == LogNormal.from_p99(median_ms=15.0, p99_ms=80.0)
    release = saga.action("release_inventory")
    assert release.retry == Retry(attempts=None, delay_ms=100.0)
    assert release.latency == Empirical(samples_ms=(4.0, 6.0, 11.0))
    assert isinstance(saga.steps[3], Parallel) and len(saga.steps[3].branches) == 2
    assert saga.step("trigger_delivery").latency == Exponential(mean_ms=2000.0)


def _round_trip(saga: Saga, base: Path | None = None) -> None:
    """A sub-saga is written as its file name: reading it back needs the folder it is in."""
    data = io.to_dict(saga)
    assert io.from_dict(data, base=base) == saga
    assert io.to_dict(io.from_dict(data, base=base)) == data
    assert io.loads(io.dumps(saga), base=base) == saga


@pytest.mark.parametrize("path", MODELS, ids=[path.name for path in MODELS])
def test_every_model_file_survives_the_round_trip(path: Path) -> None:
    _round_trip(io.load(path), base=path.parent)


def test_the_good_model_survives_the_round_trip() -> None:
    _round_trip(io.loads(GOOD_MODEL))


DURATIONS = st.floats(0, 1e9, allow_nan=False) | st.sampled_from([0.0, 1000.0, 1500.0, 60000.0])
POSITIVE = st.floats(1e-6, 1e9)
LATENCIES: st.SearchStrategy[Latency] = st.one_of(
    st.builds(Constant, value_ms=DURATIONS),
    st.tuples(DURATIONS, DURATIONS).map(lambda lh: Uniform(low_ms=min(lh), high_ms=max(lh))),
    st.builds(Exponential, mean_ms=POSITIVE),
    st.builds(Normal, mu_ms=DURATIONS, sd_ms=DURATIONS),
    st.builds(LogNormal, median_ms=POSITIVE, sigma=st.floats(0, 5)),
    st.lists(DURATIONS, min_size=1, max_size=4).map(lambda s: Empirical(samples_ms=tuple(s))),
)
RETRIES = st.builds(
    Retry,
    attempts=st.none() | st.integers(1, 10),
    backoff=st.sampled_from(["fixed", "exponential"]),
    delay_ms=DURATIONS,
    multiplier=st.floats(1, 10),
    max_delay_ms=st.none() | DURATIONS,
    jitter=st.booleans(),
)


@st.composite
def any_numbers(draw: st.DrawFn) -> Saga:
    """A generated saga whose every number, distribution and optional part is drawn freely."""
    saga = draw(sagas())

    def vary(action: Action) -> dict[str, object]:
        return {
            "latency": draw(LATENCIES),
            "failure": draw(st.floats(0, 1)),
            "reject": draw(st.floats(0, 1)),
            "timeout_ms": draw(st.none() | DURATIONS),
            "retry": draw(RETRIES),
            "service": draw(st.none() | st.sampled_from(["payments", "on", "yes"])),
        }

    def step(step: Step) -> Step:
        undo = step.compensation
        return replace(step, **vary(step), compensation=undo and replace(undo, **vary(undo)))  # type: ignore[arg-type]

    entries = [
        step(e)
        if isinstance(e, Step)
        else Parallel(branches=tuple(tuple(map(step, b)) for b in e.branches))
        for e in saga.steps
    ]
    saga = replace(saga, steps=tuple(entries), description=draw(st.text(max_size=20)))
    called = sorted({saga.service_of(action) for action in saga.actions()})
    windows = st.tuples(DURATIONS, DURATIONS).map(
        lambda se: Outage(start_ms=min(se), end_ms=max(se))
    )
    services = draw(st.lists(st.sampled_from(called), unique=True, max_size=2))
    return replace(
        saga,
        services=tuple(
            Service(
                name=name,
                capacity=draw(st.none() | st.integers(1, 50)),
                outages=tuple(draw(st.lists(windows, max_size=2))),
            )
            for name in services
        ),
        arrivals=draw(st.none() | st.builds(Arrivals, rate_per_s=POSITIVE)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_numbers())
def test_any_saga_survives_the_round_trip_exactly(saga: Saga) -> None:
    _round_trip(saga)


# --- overrides ---------------------------------------------------------------------------------


def test_the_overrides_of_the_brief_land_where_they_should() -> None:
    saga = io.loads(GOOD_MODEL)
    new = apply_overrides(
        saga,
        [
            "process_payment.reject=0.1",
            "services.shipping.capacity=5",
            "release_inventory.failure=0.2",
            "reserve_inventory.retry.attempts=unbounded",
            "recommend_upsell.timeout=500ms",
            "arrivals.rate=10/s",
            "compensation_order=parallel",
            "trigger_delivery.latency.mean=2.5s",
            "description=yes",
            "services.payments.outages[0].end=2min",
        ],
    )
    assert new.step("process_payment").reject == 0.1
    assert new.service("shipping").capacity == 5
    assert new.action("release_inventory").failure == 0.2
    assert new.step("reserve_inventory").retry.attempts is None
    assert new.step("recommend_upsell").timeout_ms == 500.0
    assert new.arrivals == Arrivals(rate_per_s=10.0)
    assert new.compensation_order == "parallel"
    assert new.step("trigger_delivery").latency == Exponential(mean_ms=2500.0)
    assert new.description == "yes"
    assert new.service("payments").outages == (Outage(start_ms=60000.0, end_ms=120000.0),)
    for name in ("validate_order", "fraud_check", "hold_loyalty_points"):
        assert new.step(name) == saga.step(name)
    assert apply_overrides(saga, []) is saga


def test_overrides_reach_undeclared_services_plain_compensations_and_new_distributions() -> None:
    saga = io.loads("saga: s\nsteps:\n  - {name: pay, service: payments, compensation: refund}\n")
    new = apply_overrides(
        saga,
        [
            "services.payments.capacity=5",
            "refund.retry.attempts=unbounded",
            "pay.latency.dist=lognormal",
            "pay.latency.median=15ms",
            "pay.latency.sigma=0.5",
            "arrivals.rate=3000/min",
        ],
    )
    assert new.services == (Service(name="payments", capacity=5),)
    assert new.action("refund").retry.attempts is None
    assert new.step("pay").latency == LogNormal(median_ms=15.0, sigma=0.5)
    assert new.arrivals == Arrivals(rate_per_s=50.0)
    assert saga.step("pay").latency == Constant()  # the original is untouched


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "process_payment.rejct=0.1",
            "unknown key 'rejct' in process_payment (did you mean 'reject'?)",
        ),
        (
            "process_payment.zzz=0.1",
            "unknown key 'zzz' in process_payment (expected one of: compensate_on_failure,"
            " compensation, effects, failure, idempotent, kind, latency, max_visits, name, reads,"
            " reject, rejects_late, retry, service, timeout, writes)",
        ),
        (
            "release_inventory.retry.atempts=3",
            "unknown key 'atempts' in release_inventory.retry (did you mean 'attempts'?)",
        ),
        (
            "procss_payment.reject=0.1",
            "unknown step or compensation 'procss_payment' (did you mean 'process_payment'?)",
        ),
        ("nothing_like_it.reject=0.1", "unknown step or compensation 'nothing_like_it'"),
        ("process_payment.reject", "expected PATH=VALUE, got no '='"),
        ("=0.1", "expected PATH=VALUE, got no PATH"),
        ("process_payment.reject=1.5", "expected a probability in [0, 1], got 1.5"),
        ("process_payment.reject=often", "expected a number, got 'often'"),
        ("process_payment.timeout=300", "expected a duration with a unit (ms, s, min), got 300"),
        ("process_payment.retry.attempts=0", "expected a positive integer or 'unbounded', got 0"),
        (
            "process_payment.kind=pivott",
            "expected 'pivot' or 'retriable', got 'pivott' (did you mean 'pivot'?)",
        ),
        (
            "services.shiping.capacity=3",
            "services.shiping: expected a service that a step calls (inventory, inventory_admin,"
            " loyalty, orders, payments, recommender, risk, shipping), got 'shiping'",
        ),
        (
            "recommend_upsell.latency.mean=2s",
            "unknown key 'mean' in recommend_upsell.latency (expected one of: dist, high, low)",
        ),
        (
            "validate_order.latency.dist=exponential",
            "validate_order.latency.mean: expected a duration, got nothing (the key is missing)",
        ),
        (
            "validate_order.compensation.failure=0.1",
            "expected a step with a compensation, got validate_order without one",
        ),
        (
            "process_payment.reject.more=1",
            "expected the path to end at process_payment.reject, got more after it",
        ),
        (
            "services.payments.outages[3].end=2min",
            "expected an index below 1 after services.payments.outages, got [3]",
        ),
        (
            "broker.latency=5ms",
            "expected a distribution, got one value: set broker.latency.value=5ms for a "
            "constant, or broker.latency.dist=NAME and then its parameters",
        ),
        ("process_payment.reject={a: 1}", "expected a single value, got a mapping"),
        ("process_payment.reject=[1", "expected a YAML value, got '[1'"),
        (
            "process_payment.name=validate_order",
            "expected a unique name, got 'validate_order' again (first used at steps[0].name)",
        ),
        ("saga=", "expected a non-empty name, got null"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_assignment(assignment: str, message: str) -> None:
    with pytest.raises(SagaDefinitionError) as caught:
        apply_overrides(io.loads(GOOD_MODEL), ["arrivals.rate=20/s", assignment])
    assert str(caught.value) == f"--set {assignment}: {message}"
    assert caught.value.file is None and caught.value.path == f"--set {assignment}"


def test_json_schema_is_the_shipped_file() -> None:
    shipped = Path(io.__file__).with_name("schema.json")
    assert io.json_schema() == json.loads(shipped.read_text(encoding="utf-8"))
    assert io.json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("text", ["\x85", "a\u2028b", "x\r\ny", "tab\tand \\ backslash"])
def test_unusual_line_breaks_in_text_survive_the_round_trip(text: str) -> None:
    # found by the round-trip property: a plain scalar '\x85' (NEL) was read back as ' '
    saga = io.loads(f"saga: s\ndescription: {json.dumps(text)}\nsteps: [{{name: a}}]\n")
    assert saga.description == text
    assert io.loads(io.dumps(saga)) == saga
