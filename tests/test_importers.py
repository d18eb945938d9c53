"""importers, asl, seata: real engines' saga definitions read field by field, refused constructs
named with their state, and Step Functions definitions that survive the trip back."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from sagasim import io
from sagasim.exceptions import SagaDefinitionError, UsageError
from sagasim.interop import (
    detect_format,
    from_asl,
    from_seata,
    load_any,
    structural,
    to_asl,
    to_yaml_with_comments,
)
from sagasim.model import (
    Branch,
    Broker,
    Choice,
    Compensation,
    Constant,
    Fail,
    Parallel,
    Retry,
    Saga,
    Step,
)
from sagasim.verify import check, explore

from .strategies import sagas

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(ROOT.glob("models/**/*.yaml"))
#: Models whose structure a Step Functions definition cannot hold, and why. Every other model
#: loses only what ASL has no field for (latencies, rates, services, idempotent, rejects_late)
#: and the precision of its durations (whole seconds).
NOT_EXPRESSIBLE = {
    "pivot_too_early": "release_inventory undoes reserve_inventory, a step after the pivot: no"
    " failure leads to it, so no Catch chain can hold it",
}


def assert_same(actual: object, expected: object, where: str = "saga") -> None:
    """Equal field by field, recursively, naming the first field that differs."""
    if dataclasses.is_dataclass(expected) and type(actual) is type(expected):
        for f in dataclasses.fields(expected):
            assert_same(getattr(actual, f.name), getattr(expected, f.name), f"{where}.{f.name}")
    elif isinstance(expected, tuple) and isinstance(actual, tuple):
        assert len(actual) == len(expected), f"{where}: {len(actual)} items, not {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def retry(attempts: int | None, delay_ms: float, **fields: Any) -> Retry:
    return Retry(attempts=attempts, delay_ms=delay_ms, **fields)


# --- Step Functions: the files ------------------------------------------------------------------


def test_travel_booking_is_read_field_by_field() -> None:
    saga = load_any(DATA / "travel_booking.asl.json")
    cancel_flight = Compensation(
        name="cancel_flight",
        retry=retry(None, 5000.0, backoff="exponential", multiplier=1.5, max_delay_ms=300000.0),
    )
    cancel_hotel = Compensation(name="cancel_hotel", retry=retry(4, 2000.0))
    cancel_car = Compensation(
        name="cancel_car",
        retry=retry(None, 1000.0, backoff="exponential", max_delay_ms=60000.0, jitter=True),
    )
    expected = Saga(
        name="travel_booking",
        description="Book a trip: reserve a flight, a hotel room and a rental car, then confirm"
        " the booking. If a reservation fails, the ones made before it are cancelled in reverse"
        " order.",
        steps=(
            Step(
                name="reserve_flight",
                timeout_ms=10000.0,
                retry=retry(3, 1000.0, backoff="exponential", multiplier=2.0),
                compensation=cancel_flight,
            ),
            Step(name="reserve_hotel", compensation=cancel_hotel),
            Step(name="reserve_car", compensation=cancel_car),
            Step(name="confirm_booking", kind_declared="pivot"),
        ),
    )
    assert_same(saga, expected)
    assert [step.kind for step in saga.all_steps()] == ["compensatable"] * 3 + ["pivot"]
    for action in saga.actions():  # nothing measured yet: the defaults, for the user to fill
        assert (action.latency, action.failure, action.reject) == (Constant(), 0.0, 0.0)
        assert (action.service, action.idempotent, action.rejects_late) == (None, False, False)


def test_travel_booking_checks_consistent_then_shows_what_measured_rates_break() -> None:
    saga = load_any(DATA / "travel_booking.asl.json")
    as_imported = check(saga)
    assert as_imported.consistent
    # Nothing can fail before rates are measured: the only end is the commit.
    assert as_imported.end_states == {"committed": 1, "compensated": 0, "leaked": 0, "stuck": 0}
    # ASL cannot say whether the flight service is idempotent or rejects late work.
    assert [w.code for w in as_imported.warnings] == ["ambiguous-timeout"]
    assert as_imported.warnings[0].message.startswith("reserve_flight has a timeout")

    measured = io.apply_overrides(
        saga,
        [
            "reserve_flight.reject=0.05",
            "reserve_hotel.reject=0.04",
            "reserve_car.reject=0.06",
            "confirm_booking.reject=0.03",
            "cancel_flight.failure=0.03",
            "cancel_hotel.failure=0.01",
            "cancel_car.failure=0.02",
        ],
    )
    report = check(measured)
    # Exactly one thing is missing: cancel_hotel gives up after 4 attempts. The other two
    # cancellations retry 99999999 times (unbounded), so they cannot leave the saga stuck.
    assert not report.consistent
    assert [(v.outcome, v.trace) for v in report.violations] == [
        (
            "stuck",
            ("reserve_flight.ok", "reserve_hotel.ok", "reserve_car.reject")
            + ("cancel_hotel.fail",) * 4,
        )
    ]
    assert [w.code for w in report.warnings] == ["ambiguous-timeout", "fragile-compensation"]
    assert report.warnings[1].message.startswith("compensation cancel_hotel can fail and has 4")

    repaired = io.apply_overrides(measured, ["cancel_hotel.retry.attempts=unbounded"])
    assert check(repaired).consistent
    assert explore(repaired).outcomes_reachable() == {"committed", "compensated"}


def test_every_mapped_asl_construct_is_read_field_by_field() -> None:
    saga = load_any(DATA / "asl_everything.asl.json")
    restore_points = Compensation(name="restore_points", timeout_ms=3000.0)
    expected_steps = (
        # Retry with no field but ErrorEquals: ASL's defaults, 3 retries 1 s apart, doubling.
        Step(
            name="validate_order",
            effects=False,
            retry=retry(4, 1000.0, backoff="exponential", multiplier=2.0),
        ),
        Step(name="normalize", effects=False),  # a Pass state: a read-only step
        # Every Retry field; a Catch whose two catchers both end (one through a Pass state, which
        # undoes nothing).
        Step(
            name="reserve_stock",
            timeout_ms=5000.0,
            retry=retry(
                3, 1000.0, backoff="exponential", multiplier=3.0, max_delay_ms=10000.0, jitter=True
            ),
            compensation=Compensation(
                name="release_stock", timeout_ms=30000.0, retry=retry(6, 1000.0)
            ),
        ),
        # The next Catch leads to the same chain: nothing undoes this step.
        Step(name="notify_warehouse"),
        Parallel(
            branches=(
                (
                    # MaxAttempts 0: a single attempt. Undone inside the branch by RestorePoints
                    # and, after the group, by the same Task under another name.
                    Step(name="hold_points", compensation=restore_points),
                    Step(name="hold_coupon", compensation=Compensation(name="release_coupon")),
                ),
                (Step(name="fraud_check", effects=False),),
            )
        ),
        Step(name="charge_card", kind_declared="pivot"),
        Step(name="ship_order", kind_declared="retriable", retry=retry(None, 2000.0)),
        Step(name="send_receipt"),  # after the pivot: a Catch straight to Fail is fine
    )
    assert_same(saga.steps, expected_steps, "steps")
    assert saga.name == "asl_everything"
    assert saga.description.startswith("Every construct sagasim reads: Retry with every field")
    kinds = [step.kind for step in saga.all_steps()]
    assert kinds == [
        "read_only",
        "read_only",
        "compensatable",
        "uncompensatable",
        "compensatable",
        "compensatable",
        "read_only",
        "pivot",
        "retriable",
        "uncompensatable",
    ]


# --- Seata ---------------------------------------------------------------------------------------


def test_every_mapped_seata_construct_is_read_field_by_field() -> None:
    assumed: list[str] = []
    saga = load_any(DATA / "order.seata.json", assumed=assumed)
    expected = Saga(
        name="placeOrder",
        description="Check the customer's credit, reduce the inventory and the balance, create"
        " the order (the pivot) and notify the customer.",
        steps=(
            Step(name="check_credit", service="creditService", effects=False),
            Choice(  # the Default goes to a Fail; the trailing Succeed is not written
                name="credit_choice",
                branches=(
                    Branch(when="[creditOk] == true", probability=0.5),
                    Branch(when="otherwise", steps=(Fail(name="order_rejected"),), default=True),
                ),
            ),
            Step(
                name="reduce_inventory",
                service="inventoryAction",
                retry=retry(3, 500.0, backoff="exponential", multiplier=2.0),
                compensation=Compensation(
                    name="compensate_reduce_inventory",
                    service="inventoryAction",  # its own ServiceName, the same as its step's
                    retry=retry(6, 1000.0, backoff="exponential", multiplier=1.5),
                ),
            ),
            Step(
                name="reduce_balance",
                service="balanceAction",
                compensation=Compensation(
                    name="compensate_reduce_balance", service="refundService"
                ),
            ),
            Step(name="create_order", service="orderService", kind_declared="pivot"),
            Step(
                name="notify_customer",
                service="notificationService",
                kind_declared="retriable",
                retry=retry(11, 5000.0),
            ),
        ),
    )
    assert_same(saga, expected)
    assert [s.kind for s in saga.all_steps()] == [
        "read_only",
        "compensatable",
        "compensatable",
        "pivot",
        "retriable",
    ]
    assert saga.service_of(saga.action("compensate_reduce_inventory")) == "inventoryAction"
    assert [a.split(":")[0] for a in assumed] == [
        "order.seata.json",  # no latencies or failure rates
        "reduce_inventory",  # its Status
        "credit_choice",  # its probabilities
    ]
    assert assumed[2].startswith("credit_choice: branches 0.5/0.5 ([creditOk] == true | otherwise)")


# --- Refused constructs: the exact message, with the state's name ---------------------------------


def test_a_sub_machine_not_found_is_refused_naming_the_state() -> None:
    # asl_choice.asl.json and the sub-machine found: test_import_constructs.py
    with pytest.raises(SagaDefinitionError) as caught:
        load_any(DATA / "seata_substate.seata.json")
    assert str(caught.value) == (
        f"{DATA / 'seata_substate.seata.json'}:16: States.CallPaymentMachine.StateMachineName:"
        f" expected a state machine named 'paymentStateMachine' in {DATA}, got none (give its"
        " folder with --lookup DIR)"
    )


REFUSALS: dict[str, Any] = yaml.safe_load((DATA / "refusals.yaml").read_text())


def definition_of(case: dict[str, Any]) -> dict[str, Any]:
    """A case's definition: its base with the states it gives replaced (None: removed)."""
    if "definition" in case:
        return copy.deepcopy(case["definition"])
    data = copy.deepcopy(REFUSALS["bases"][case["base"]])
    states = data["States"] | copy.deepcopy(case["states"])
    data["States"] = {name: state for name, state in states.items() if state is not None}
    return data


@pytest.mark.parametrize("base", ["asl", "seata"])
def test_the_bases_of_the_refused_cases_read(base: str) -> None:
    data = REFUSALS["bases"][base]
    saga = from_asl(data, name=base) if base == "asl" else from_seata(data)
    assert [(s.name, s.compensation and s.compensation.name) for s in saga.all_steps()] == (
        [("a", "undo_a"), ("b", "undo_b"), ("c", None)]
        if base == "asl"
        else [("a", "undo_a"), ("b", None)]
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            id=case["id"],
            marks=[pytest.mark.xfail(strict=True, reason=case["gap"])] if "gap" in case else [],
        )
        for case in REFUSALS["cases"]
    ],
)
def test_refused_constructs_give_the_exact_error_naming_the_state(case: dict[str, Any]) -> None:
    seata = case.get("base") == "seata"
    file = "x.seata.json" if seata else "x.asl.json"
    with pytest.raises(SagaDefinitionError) as caught:
        (from_seata if seata else from_asl)(definition_of(case), file=file)
    assert str(caught.value) == f"{file}: {case['message']}"


# --- Files: detection, JSON errors, formats ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        *((str(model), "sagasim") for model in MODELS),
        (str(DATA / "travel_booking.asl.json"), "asl"),
        (str(DATA / "asl_everything.asl.json"), "asl"),
        (str(DATA / "asl_choice.asl.json"), "asl"),
        (str(DATA / "order.seata.json"), "seata"),
        (str(DATA / "seata_substate.seata.json"), "seata"),
    ],
)
def test_the_format_is_detected_from_content(path: str, expected: str) -> None:
    text = Path(path).read_text()
    data = json.loads(text) if path.endswith(".json") else io.parse_yaml(text)[0]
    assert detect_format(data) == expected


def test_old_seata_files_that_start_at_are_still_seata() -> None:
    data = {"StartAt": "A", "States": {"A": {"Type": "ServiceTask", "Next": "Done"}}}
    assert detect_format(data) == "seata"
    assert detect_format({"StartAt": "A", "States": {"A": {"Type": "Task", "End": True}}}) == "asl"
    assert detect_format([1, 2]) is None


def test_json_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.asl.json"
    path.write_text('{\n  "StartAt": "A",\n  "States": {,}\n}\n')
    with pytest.raises(SagaDefinitionError) as caught:
        load_any(path)
    assert str(caught.value) == (
        f"{path}:3: expected JSON, got a syntax error at column 14: Expecting property name"
        " enclosed in double quotes"
    )


def test_errors_in_tab_indented_json_still_have_lines(tmp_path: Path) -> None:
    path = tmp_path / "tabs.asl.json"
    path.write_text(
        '{\n\t"StartAt": "A",\n\t"States": {\n\t\t"A": {\n\t\t\t"Type": "Task",\n'
        '\t\t\t"Retry": [{"MaxAttempts": -1}],\n\t\t\t"End": true\n\t\t}\n\t}\n}\n'
    )
    with pytest.raises(SagaDefinitionError) as caught:
        load_any(path)
    assert str(caught.value) == (
        f"{path}:6: States.A.Retry[0].MaxAttempts: expected a non-negative integer, got -1"
    )


def test_unknown_content_and_formats_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"Comment": "x", "Steps": []}')
    with pytest.raises(SagaDefinitionError) as caught:
        load_any(path)
    assert str(caught.value) == (
        f"{path}:1: expected a sagasim model (with 'saga' and 'steps'), a Step Functions"
        " definition (with 'StartAt' and 'States') or a Seata state machine (with 'StartState'"
        " and 'States'), got a mapping with keys 'Comment', 'Steps'"
    )
    with pytest.raises(UsageError, match="unknown format 'bpmn'"):
        load_any(path, format="bpmn")
    model = ROOT / "models" / "money_transfer.yaml"
    with pytest.raises(
        SagaDefinitionError, match=r"money_transfer\.yaml:1: States: expected a map"
    ):
        load_any(model, format="seata")


def test_a_format_given_skips_detection(tmp_path: Path) -> None:
    path = tmp_path / "order.json"
    path.write_text((DATA / "order.seata.json").read_text())
    assert load_any(path, format="seata") == load_any(DATA / "order.seata.json")


def test_step_functions_definitions_in_yaml_are_read(tmp_path: Path) -> None:
    path = tmp_path / "travel_booking.asl.yaml"
    definition = json.loads((DATA / "travel_booking.asl.json").read_text())
    path.write_text(yaml.safe_dump(definition))
    assert load_any(path) == load_any(DATA / "travel_booking.asl.json")


# --- Writing: YAML with comments, overrides ------------------------------------------------------


@pytest.mark.parametrize("name", ["travel_booking.asl.json", "asl_everything.asl.json"])
def test_imported_models_are_written_with_a_comment_on_each_step(name: str) -> None:
    saga = load_any(DATA / name)
    text = to_yaml_with_comments(saga, f"{name} (AWS Step Functions)")
    assert text.startswith(f"# sagasim model imported from {name} (AWS Step Functions).\n")
    comments = [line.strip() for line in text.splitlines() if "measured latency/failure" in line]
    assert [c.split(":")[0] for c in comments] == [f"# {s.name}" for s in saga.all_steps()]
    assert io.loads(text) == saga


def test_the_comment_sits_above_its_step() -> None:
    text = to_yaml_with_comments(load_any(DATA / "travel_booking.asl.json"), "booking")
    lines = text.splitlines()
    at = lines.index("- name: reserve_hotel")
    assert lines[at - 1] == (
        "# reserve_hotel: measured latency/failure go here (latency, failure, reject; also for"
        " cancel_hotel)"
    )


@pytest.mark.parametrize(
    ("name", "step"),
    [("travel_booking.asl.json", "reserve_hotel"), ("order.seata.json", "reduce_inventory")],
)
def test_overrides_apply_to_imported_models(name: str, step: str) -> None:
    saga = load_any(DATA / name)
    first = saga.step(step)
    assert first.compensation is not None
    comp = first.compensation.name
    new = io.apply_overrides(
        saga,
        [
            f"{first.name}.failure=0.02",
            f"{first.name}.latency.dist=lognormal",
            f"{first.name}.latency.median=40ms",
            f"{first.name}.latency.p99=250ms",
            f"{comp}.failure=0.01",
            f"{comp}.retry.attempts=unbounded",
        ],
    )
    changed = new.step(first.name)
    assert changed.failure == 0.02
    assert (changed.latency.dist, changed.latency.median_ms) == ("lognormal", 40.0)  # type: ignore[union-attr]
    assert changed.compensation is not None
    assert (changed.compensation.failure, changed.compensation.retry.attempts) == (0.01, None)
    with pytest.raises(SagaDefinitionError, match=r"^--set nowhere.failure=1: unknown step"):
        io.apply_overrides(saga, ["nowhere.failure=1"])


# --- Exporting to Step Functions, and back ------------------------------------------------------


def through_json(definition: dict[str, Any]) -> Any:
    return json.loads(json.dumps(definition))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_survives_the_trip_through_asl_as_its_structure(path: Path) -> None:
    saga = io.load(path)
    if saga.coordination == "choreography":  # Step Functions orchestrates: the same steps so
        saga = replace(saga, coordination="orchestration", broker=Broker())
    if saga.is_graph:  # the graph model's trip: tests/test_export_graph.py
        return
    back = from_asl(through_json(to_asl(saga)), name=saga.name)
    assert_same(back, structural(saga))
    kept = [s.compensation is not None for s in structural(saga).all_steps()]
    if path.stem in NOT_EXPRESSIBLE:
        assert kept != [s.compensation is not None for s in saga.all_steps()]
    else:  # only what ASL has no field for is lost: every compensation makes it
        assert kept == [s.compensation is not None for s in saga.all_steps()]


def test_what_asl_cannot_express_is_said_in_the_definition() -> None:
    saga = io.load(ROOT / "models" / "flawed" / "pivot_too_early.yaml")
    assert NOT_EXPRESSIBLE["pivot_too_early"].startswith("release_inventory undoes")
    state = to_asl(saga)["States"]["ReserveInventory"]
    assert state["Comment"] == (
        "its compensation release_inventory is left out: no failure leads to it"
    )
    assert "ReleaseInventory" not in to_asl(saga)["States"]
    assert structural(saga).step("reserve_inventory").compensation is None


@pytest.mark.parametrize("name", ["travel_booking.asl.json", "asl_everything.asl.json"])
def test_asl_to_model_to_asl_to_model_is_the_same_model(name: str) -> None:
    saga = load_any(DATA / name)
    assert structural(saga) == saga  # nothing in it that ASL could not carry
    assert_same(from_asl(through_json(to_asl(saga)), name=saga.name), saga)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sagas(max_entries=5))
def test_any_reverse_order_saga_survives_the_trip_as_its_structure(saga: Saga) -> None:
    saga = replace(saga, compensation_order="reverse")
    back = from_asl(through_json(to_asl(saga)), name=saga.name)
    assert back == structural(saga)
    assert structural(back) == back


def test_the_exported_definition_has_the_usual_saga_shape() -> None:
    states = to_asl(io.load(ROOT / "models" / "travel_booking.yaml"))["States"]
    flight = states["ReserveFlight"]
    assert flight["Resource"] == "arn:aws:states:::lambda:invoke"
    assert flight["Parameters"] == {"FunctionName": "reserve_flight", "Payload.$": "$"}
    assert flight["Retry"] == [
        {
            "ErrorEquals": ["States.ALL"],
            "MaxAttempts": 2,
            "IntervalSeconds": 1,  # 200ms, rounded up to ASL's whole seconds
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL",
        }
    ]
    assert states["CancelFlight"]["Retry"][0] | {"ErrorEquals": []} == {
        "ErrorEquals": [],
        "MaxAttempts": 99999999,
        "IntervalSeconds": 1,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 30,
    }
    catches = {name: s["Catch"][0]["Next"] for name, s in states.items() if "Catch" in s}
    assert catches == {
        "ReserveFlight": "Compensated",
        "ReserveHotel": "CancelFlight",
        "ReserveCar": "CancelHotel",
        "ChargeCard": "CancelCar",
    }
    chain = {name: states[name]["Next"] for name in ("CancelCar", "CancelHotel", "CancelFlight")}
    assert chain == {
        "CancelCar": "CancelHotel",
        "CancelHotel": "CancelFlight",
        "CancelFlight": "Compensated",
    }
    assert states["ChargeCard"]["Comment"].startswith("pivot:")
    assert states["IssueTickets"]["Comment"].startswith("retriable:")
    assert (states["Compensated"]["Type"], states["Committed"]["Type"]) == ("Fail", "Succeed")


def test_structural_resets_what_asl_cannot_carry_and_rounds_durations_up() -> None:
    saga = structural(io.load(ROOT / "models" / "order_fulfillment_under_load.yaml"))
    upsell = saga.step("recommend_upsell")
    assert (upsell.latency, upsell.failure, upsell.service) == (Constant(), 0.0, None)
    assert (upsell.timeout_ms, upsell.rejects_late) == (1000.0, False)  # 300ms -> 1 s
    assert upsell.retry == retry(3, 1000.0, backoff="exponential", jitter=True)
    assert saga.step("process_payment").reject == 0.0
    assert (saga.services, saga.arrivals) == ((), None)
    assert saga.step("validate_order").effects is False  # carried by a Comment


def test_designs_step_functions_cannot_run_are_refused() -> None:
    saga = io.load(ROOT / "models" / "money_transfer.yaml")
    with pytest.raises(SagaDefinitionError, match=r"^compensation_order: expected reverse, got"):
        to_asl(replace(saga, compensation_order="parallel"))
    with pytest.raises(SagaDefinitionError, match=r"^coordination: expected orchestration, got"):
        to_asl(replace(saga, coordination="choreography"))
