"""Real definitions (tests/data/real, unchanged copies with their sources and licences) import as
the sagas they describe, and then validate, check, analyze, simulate and draw; those with no saga
meaning, or that Seata itself rejects, are refused in one line.

Each imported saga is pinned by its *shape*: entries in order, a step as ``name / compensation``
with ``(own)`` for ``compensate_on_failure``, ``(read-only)``, ``xN`` attempts and ``maxN``
visits; a choice as its name and ``(when, probability, shape)`` per branch.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from sagasim.analysis import analyze
from sagasim.exceptions import SagaDefinitionError
from sagasim.interop import load_any
from sagasim.io import apply_overrides
from sagasim.model.saga import Choice, Entry, Fail, Goto, Map, Parallel, Step, SubSaga, Succeed
from sagasim.sim import simulate
from sagasim.verify import check
from sagasim.viz import draw

from .test_graph_oracle import possible

REAL = Path(__file__).parent / "data" / "real"
THIRD, HALF, QUARTER = 1 / 3, 0.5, 0.25


def shape(entries: tuple[Entry, ...]) -> list[Any]:
    out: list[Any] = []
    for e in entries:
        if isinstance(e, Step):
            text = e.name + (f" / {e.compensation.name}" if e.compensation else "")
            text += " (own)" if e.compensate_on_failure else ""
            text += " (read-only)" if not e.effects else ""
            text += f" x{e.retry.attempts}" if e.retry.attempts != 1 else ""
            text += f" max{e.max_visits}" if e.max_visits else ""
            out.append(text)
        elif isinstance(e, Choice):
            ways = [(b.when, b.probability, shape(b.steps)) for b in e.branches]
            out.append({f"? {e.name}": ways})
        elif isinstance(e, (Fail, Succeed)):
            out.append(f"{type(e).__name__.lower()} {e.name}")
        elif isinstance(e, Goto):
            out.append(f"goto {e.target}")
        elif isinstance(e, Parallel):
            out.append({"parallel": [shape(b) for b in e.branches]})
        elif isinstance(e, Map):
            out.append({f"map {e.name} items={e.items}": shape(e.steps)})
        elif isinstance(e, SubSaga):
            out.append({f"saga {e.name}": shape(e.saga.steps)})
    return out


SEATA_CHOICE = [
    ("[a] == 1", THIRD, ["second_state"]),
    ("[a] == 2", THIRD, ["third_state"]),
    ("otherwise", None, ["fail fail"]),
]
COMPENSATED_CHOICE = [
    ("[a] == 1", THIRD, ["second_state / compensate_second_state"]),
    ("[a] == 2", THIRD, ["third_state"]),
    ("otherwise", None, ["fail fail"]),
]
IDEMPOTENCY = "previous_or_concurrent_execution_succeeded_in_progress_or_failed"
STATUS = "$.idempotencyTable.Item.executionstatus.S"
SHAPES: dict[str, list[Any]] = {
    "asl/saga-pattern-sam__statemachine.asl.json": [
        "reserve_flight / cancel_flight_reservation (own) x7",
        "reserve_car_rental / cancel_rental_reservation (own) x7",
        "process_payment / refund_payment (own) x7",
        "confirm_flight x7",
        "confirm_car_rental x7",
        "sending_sms_success",
    ],
    "asl/call-microservice-apigw__statemachine.asl.json": [
        "call_api",
        {
            "? call_successful": [
                ("$.StatusCode == 200", HALF, ["notify_success"]),
                ("otherwise", None, ["notify_failure"]),
            ]
        },
    ],
    "asl/chain-of-responsibility__atm_dispenser_chained.asl.json": [
        "dispense50 x4",
        "dispense20 x4",
        "dispense10 x4",
        "dispense1 x4",
    ],
    "asl/common-error-handling__common_error_option1.asl.json": [
        "number_lambda",
        "odd_lambda",
        "even_lambda",
    ],
    "asl/emit-and-wait__statemachine.asl.json": ["emit_phase_1", "emit_phase_2", "emit_phase_3"],
    "asl/inventory-management-sam__create-purchase-order-statemachine.asl.json": [
        "send_purchase_order_email",
        {
            "? manual_approval_choice_state": [
                ('$.Status == "Approved"', HALF, ["update_inventory"]),
                ('$.Status == "Rejected"', HALF, ["rejected_pass_state (read-only)"]),
            ]
        },
    ],
    "asl/lambda-orchestration-sam__statemachine.asl.json": [
        "check_stock_price",
        "generate_buy_sell_recommendation",
        "request_human_approval",
        {
            "? buy_or_sell": [
                ('$.recommended_type == "buy"', HALF, ["buy_stock"]),
                ('$.recommended_type == "sell"', HALF, ["sell_stock"]),
            ]
        },
        "report_result",
    ],
    "asl/idempotent-workflow__statemachine.asl.json": [
        "create_idempotency_settings_key_and_ttl x7",
        "create_and_lock_idempotency_record x11 max3",
        {
            "? create_and_lock_idempotency_record_outcome": [
                (
                    "caught DynamoDb.TransactionCanceledException",
                    HALF,
                    [
                        "get_idempotency_record_from_dynamo_db (read-only) x11",
                        {
                            f"? {IDEMPOTENCY}": [
                                (
                                    f'{STATUS} == "SUCCEEDED" and '
                                    "$.idempotencyTable.Item.executionresult.S is present",
                                    QUARTER,
                                    ["de_serialize_previous_results (read-only)"],
                                ),
                                (
                                    f'{STATUS} == "FAILED"',
                                    QUARTER,
                                    ["goto create_and_lock_idempotency_record"],
                                ),
                                (
                                    f'{STATUS} == "IN_PROGRESS"',
                                    QUARTER,
                                    [
                                        "still_in_progress_wait_for_10s (read-only)",
                                        "goto get_idempotency_record_from_dynamo_db",
                                    ],
                                ),
                                (
                                    "otherwise",
                                    None,
                                    ["fail undefined_execution_state_in_idempotency_record"],
                                ),
                            ]
                        },
                    ],
                ),
                (
                    "succeeded",
                    None,
                    [
                        {
                            "parallel": [
                                [
                                    "here (read-only)",
                                    "goes (read-only)",
                                    "your (read-only)",
                                    "workflow (read-only)",
                                    "which_can_fail_occasionally x7",
                                ]
                            ]
                        },
                        "save_execution_results x11",
                    ],
                ),
            ]
        },
    ],
    "seata/simple_statelang.json": ["first_state", "second_state"],
    "seata/simple_statelang_param_assignment.json": [
        "first_state",
        {"? choice_state": SEATA_CHOICE},
    ],
    "seata/simple_statelang_with_catches.json": ["first_state", {"? choice_state": SEATA_CHOICE}],
    "seata/simple_statelang_with_choice.json": [
        "first_state",
        {
            "? choice_state": [
                ("[a] == 2", HALF, ["third_state"]),
                ("[a] == 1 or otherwise", None, ["second_state"]),
            ]
        },
    ],
    "seata/simple_statelang_with_choice_no_default.json": [
        "first_state",
        {
            "? choice_state": [
                ("[a] == 1", HALF, ["second_state"]),
                ("[a] == 2", HALF, ["third_state"]),
            ]
        },
    ],
    "seata/simple_statelang_with_compensation.json": [
        "first_state / compensate_first_state",
        {"? choice_state": COMPENSATED_CHOICE},
    ],
    "seata/simple_statelang_with_compensation_for_recovery.json": [
        "first_state / compensate_first_state",
        {"? choice_state": COMPENSATED_CHOICE},
    ],
    "seata/simple_statelang_with_complex_params.json": [
        "first_state",
        {
            "? choice_state": [
                ("[complexParameterMethodResult].age > 0", THIRD, ["second_state"]),
                ("[complexParameterMethodResult].age <= 0", THIRD, []),
                ("otherwise", None, ["fail fail"]),
            ]
        },
        "third_state",
    ],
    "seata/simple_statelang_with_recover_strategy.json": [
        "first_state",
        {
            "? choice_state": [
                ("[a] == 1", HALF, []),
                ("[a] == 2 or otherwise", None, ["fail fail"]),
            ]
        },
        "second_state",
    ],
    "seata/simple_statelang_with_script.json": [
        "first_state",
        "script_state (read-only)",
        {"? choice_state": SEATA_CHOICE},
    ],
    "seata/designer_simple_statelang_with_script.json": [
        "first_state",
        "script_state (read-only)",
        {
            "? choice1": [
                ("[a] == 1", THIRD, ["second_state"]),
                ("[a] == 2", THIRD, ["third_state"]),
                ("otherwise", None, ["fail fail1"]),
            ]
        },
    ],
}
REFUSED = {
    "asl/either-or-parallel-pattern__statemachine.asl.json": (
        134,
        "States.Wait Either For Process Completion Or Timeout.Catch[1]: expected a Catch on Wait "
        "Either For Process Completion Or Timeout that recovers, got one that leads on into the "
        "saga from a Fail inside it",
    ),
    "seata/simple_statemachine.json": (
        115,
        "States.SecondMatchState.StateMachineName: expected a state machine named "
        "'simpleTestSubStateMachine' in",
    ),
    "seata/simple_statemachine_with_multiple_infinite_loop.json": (
        7,
        "States.FirstState: expected a way from FirstState to an end, got a loop with no way out",
    ),
    "seata/simple_statemachine_with_non_existed_name.json": (
        20,
        "States.ChoiceState.Choices[1].Next: expected the name of a state in States (ChoiceState,"
        " FirstState, SecondState), got 'ThirdState'",
    ),
}


def test_every_real_file_is_either_imported_or_refused_here() -> None:
    files = {str(p.relative_to(REAL)) for p in REAL.glob("*/*.json")}
    assert files == set(SHAPES) | set(REFUSED)
    assert len(SHAPES) / len(files) >= 0.8  # 19 of 23; the other four are refused below


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_real_file_imports_as_the_saga_it_describes(name: str) -> None:
    assert shape(load_any(REAL / name).steps) == SHAPES[name]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_real_file_without_saga_meaning_is_refused_in_one_line(name: str) -> None:
    line, message = REFUSED[name]
    with pytest.raises(SagaDefinitionError) as caught:
        load_any(REAL / name)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{REAL / name}:{line}: {message}")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_real_file_checks_analyzes_simulates_and_draws(name: str, tmp_path: Path) -> None:
    saga = load_any(REAL / name)
    report = check(saga)
    results = simulate(saga, runs=200, seed=1)
    assert possible(results.outcomes) <= possible(report.end_states)
    exact = analyze(saga, sensitivity=False)
    assert math.isclose(sum(exact.outcomes.values()), 1.0, abs_tol=1e-9)
    draw(saga, tmp_path / "saga.dot")
    text = (tmp_path / "saga.dot").read_text()
    assert all(step.name in text for step in saga.all_steps())


def test_the_saga_pattern_keeps_its_own_cancels_and_retries() -> None:
    saga = load_any(REAL / "asl/saga-pattern-sam__statemachine.asl.json")
    flight = saga.step("reserve_flight")
    assert flight.compensate_on_failure
    assert flight.retry.attempts == 7 and flight.retry.backoff == "exponential"
    assert (flight.retry.delay_ms, flight.retry.multiplier) == (2000.0, 2.0)
    assert flight.compensation is not None
    assert flight.compensation.retry.attempts == 7  # the first of its two rules


@pytest.mark.statistical
def test_the_saga_pattern_agrees_across_check_analyze_and_simulate() -> None:
    saga = load_any(REAL / "asl/saga-pattern-sam__statemachine.asl.json")
    saga = apply_overrides(
        saga,
        [
            "reserve_car_rental.reject=0.1",
            "process_payment.reject=0.2",
            "confirm_flight.failure=0.3",
        ],
    )
    exact = analyze(saga, sensitivity=False)
    report = check(saga)
    results = simulate(saga, runs=20_000, seed=5)
    assert possible(results.outcomes) <= possible(report.end_states)
    # rejected at the car or the payment, or confirm_flight out of its 7 attempts
    assert exact.outcomes["compensated"] == pytest.approx(1 - 0.9 * 0.8 * (1 - 0.3**7), abs=1e-9)
    for outcome, p in exact.outcomes.items():
        hits = results.outcomes.get(outcome, 0)
        ci = stats.binomtest(hits, results.runs).proportion_ci(0.999, method="wilson")
        assert ci.low <= p <= ci.high, outcome


# --- sub-machines by name --------------------------------------------------------------------


def machine(name: str, states: dict[str, Any], start: str) -> dict[str, Any]:
    return {"Name": name, "StartState": start, "States": states}


def write(folder: Path, file: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_text(json.dumps(data, indent=2))
    return folder / file


def parent(calls: str) -> dict[str, Any]:
    return machine(
        "trip",
        {
            "Flight": {"Type": "ServiceTask", "CompensateState": "Cancel", "Next": "Hotel"},
            "Cancel": {"Type": "ServiceTask"},
            "Hotel": {"Type": "SubStateMachine", "StateMachineName": calls, "Next": "Pay"},
            "Pay": {"Type": "ServiceTask"},
        },
        "Flight",
    )


HOTEL = machine(
    "hotel",
    {
        "Book": {"Type": "ServiceTask", "CompensateState": "Unbook"},
        "Unbook": {"Type": "ServiceTask"},
    },
    "Book",
)


def test_a_sub_machine_is_found_by_name_in_the_same_folder(tmp_path: Path) -> None:
    write(tmp_path, "hotel.json", HOTEL)
    saga = load_any(write(tmp_path, "trip.json", parent("hotel")))
    assert shape(saga.steps) == ["flight / cancel", {"saga hotel": ["book / unbook"]}, "pay"]


def test_a_sub_machine_is_found_in_a_lookup_folder_and_not_without_it(tmp_path: Path) -> None:
    write(tmp_path / "lib", "hotel.json", HOTEL)
    trip = write(tmp_path / "app", "trip.json", parent("hotel"))
    assert shape(load_any(trip, lookup=[tmp_path / "lib"]).steps)[1] == {
        "saga hotel": ["book / unbook"]
    }
    with pytest.raises(SagaDefinitionError, match="expected a state machine named 'hotel' in"):
        load_any(trip)


def test_an_ambiguous_or_recursive_sub_machine_is_refused_in_one_line(tmp_path: Path) -> None:
    write(tmp_path / "a", "hotel.json", HOTEL)
    write(tmp_path / "a", "hotel_copy.json", HOTEL)
    trip = write(tmp_path / "a", "trip.json", parent("hotel"))
    with pytest.raises(
        SagaDefinitionError, match=r"expected one state machine named 'hotel', got 2"
    ):
        load_any(trip)
    itself = write(tmp_path / "b", "trip.json", parent("trip"))
    with pytest.raises(SagaDefinitionError) as caught:
        load_any(itself)
    assert "expected a sub-machine that does not call itself, got the cycle" in str(caught.value)
    assert str(caught.value).startswith(f"{itself}:")


# --- the command line ------------------------------------------------------------------------


def sagasim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sagasim", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)


def test_import_lists_its_assumptions_and_rates_override_them(tmp_path: Path) -> None:
    source = REAL / "asl/call-microservice-apigw__statemachine.asl.json"
    done = sagasim("import", str(source))
    assert done.returncode == 0
    assert "assumed: call_successful: branches 0.5/0.5 ($.StatusCode == 200 | otherwise)" in (
        done.stderr
    )
    assert "--set call_successful.0=P" in done.stderr
    rates = tmp_path / "rates.yaml"
    rates.write_text("call_successful.0: 0.9\ncall_api.reject: 0.25\n")
    out = sagasim("analyze", str(source), "--rates", str(rates), "--json", "--no-sensitivity")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outcomes"]["committed"] == pytest.approx(0.75)
    rates.write_text("call_api.rejcet: 0.25\n")
    bad = sagasim("analyze", str(source), "--rates", str(rates))
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().splitlines()[-1].startswith(f"{rates}:1: call_api.rejcet: unknown key")
    )
    rates.write_text("- 0.25\n")
    listed = sagasim("analyze", str(source), "--rates", str(rates))
    assert listed.returncode == 2
    assert listed.stderr.strip().splitlines()[-1] == (
        f"{rates}:1: expected a mapping of PATH: VALUE, such as reserve_flight.failure: 0.02,"
        " got a list"
    )


def test_import_writes_the_sub_sagas_beside_the_model_and_never_overwrites(tmp_path: Path) -> None:
    write(tmp_path, "hotel.json", HOTEL)
    trip = write(tmp_path, "trip.json", parent("hotel"))
    out = tmp_path / "out"
    out.mkdir()
    done = sagasim("import", str(trip), "-o", str(out / "trip.yaml"))
    assert done.returncode == 0, done.stderr
    assert (out / "hotel.yaml").exists()
    again = sagasim("check", str(out / "trip.yaml"), "--json")
    assert again.returncode in (0, 1), again.stderr
    (out / "hotel.yaml").write_text("# mine\n")
    refused = sagasim("import", str(trip), "-o", str(out / "trip2.yaml"))
    assert refused.returncode == 2
    assert (out / "hotel.yaml").read_text() == "# mine\n"


def test_draw_reads_the_original_file(tmp_path: Path) -> None:
    source = REAL / "seata/simple_statelang_with_compensation.json"
    done = sagasim("draw", str(source), "-o", str(tmp_path / "saga.dot"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "saga.dot").read_text()
    assert "compensate_first_state" in text and "choice_state" in text
