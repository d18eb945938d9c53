"""Each graph construct of the two engines, imported on its own: what it becomes, and what the
import says it assumed."""

from __future__ import annotations

from typing import Any

import pytest

from sagasim.exceptions import SagaDefinitionError
from sagasim.interop import from_asl, from_seata
from sagasim.model.latency import Constant
from sagasim.model.saga import Map, Saga, SubSaga

from .test_import_real import shape


def asl(states: dict[str, Any], start: str, **top: Any) -> tuple[Saga, list[str]]:
    assumed: list[str] = []
    saga = from_asl({"StartAt": start, "States": states, **top}, name="s", assumed=assumed)
    return saga, assumed


def test_jsonata_conditions_and_comment_probabilities_are_kept() -> None:
    saga, assumed = asl(
        {
            "Check": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Ok?"},
            "Ok?": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": "{% $states.input.stock > 0 %}",
                        "Next": "Reserve",
                        "Comment": "probability 0.9",
                    }
                ],
                "Default": "Sorry",
            },
            "Reserve": {"Type": "Task", "Resource": "x", "End": True},
            "Sorry": {"Type": "Fail", "Error": "OutOfStock"},
        },
        "Check",
        QueryLanguage="JSONata",
    )
    assert shape(saga.steps) == [
        "check",
        {
            "? ok": [
                ("$states.input.stock > 0", 0.9, []),
                ("otherwise", None, ["fail sorry"]),
            ]
        },
        "reserve",  # where the branches that go on meet
    ]
    assert not any(line.startswith("ok:") for line in assumed)  # nothing left to assume there


def test_a_wait_takes_its_seconds_and_a_pass_is_read_only() -> None:
    saga, assumed = asl(
        {
            "Hold": {"Type": "Wait", "Seconds": 2.5, "Next": "Note"},
            "Note": {"Type": "Pass", "Next": "Later"},
            "Later": {"Type": "Wait", "TimestampPath": "$.when", "End": True},
        },
        "Hold",
    )
    hold, note, later = saga.steps
    assert hold.latency == Constant(value_ms=2500.0) and not hold.effects
    assert not note.effects and not later.effects
    assert any(line.startswith("later: waits for a time the input gives") for line in assumed)


@pytest.mark.parametrize("key", ["ItemProcessor", "Iterator"])
def test_inline_and_distributed_maps_become_maps(key: str) -> None:
    body = {"StartAt": "Pack", "States": {"Pack": {"Type": "Task", "Resource": "x", "End": True}}}
    if key == "ItemProcessor":
        body["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    saga, assumed = asl(
        {"Each": {"Type": "Map", key: body, "MaxConcurrency": 4, "End": True}}, "Each"
    )
    (each,) = saga.steps
    assert isinstance(each, Map)
    assert (each.items, each.concurrency, shape(each.steps)) == (3, 4, ["pack"])
    assert "each: 3 items (assumed: set with --set each.items=N)" in assumed
    counted, _ = asl(
        {"Each": {"Type": "Map", key: body, "Comment": "items 1, 2, 5", "End": True}}, "Each"
    )
    assert counted.steps[0].items == (1, 2, 5)  # type: ignore[union-attr]


def test_a_callback_task_and_a_heartbeat_are_listed() -> None:
    saga, assumed = asl(
        {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "HeartbeatSeconds": 30,
                "End": True,
            }
        },
        "Ask",
    )
    assert saga.steps[0].timeout_ms == 30_000.0  # type: ignore[union-attr]
    assert any("callback task (.waitForTaskToken)" in line for line in assumed)
    assert any("HeartbeatSeconds read as its timeout" in line for line in assumed)


def test_a_nested_execution_is_a_sub_saga_found_by_its_arn() -> None:
    child = Saga(
        name="payment",
        steps=from_asl(
            {"StartAt": "Pay", "States": {"Pay": {"Type": "Task", "Resource": "x", "End": True}}},
            name="payment",
        ).steps,
    )
    asked: list[tuple[str, str]] = []

    def lookup(name: str, at: str) -> SubSaga:
        asked.append((name, at))
        return SubSaga(name=name, model=f"{name}.yaml", saga=child)

    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:Payment"
    states = {
        "Run": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": arn, "Input.$": "$"},
            "End": True,
        }
    }
    saga = from_asl({"StartAt": "Run", "States": states}, name="s", lookup=lookup)
    assert asked == [("Payment", "States.Run.Parameters.StateMachineArn")]
    assert shape(saga.steps) == [{"saga run": ["pay"]}]
    unnamed = {"Run": {**states["Run"], "Parameters": {"StateMachineArn": "${ChildArn}"}}}
    alone, assumed = asl(unnamed, "Run")
    assert shape(alone.steps) == ["run"]
    assert "run: a nested execution read as one step (its machine is not named in the file)" in (
        assumed
    )


def test_a_catch_that_leads_on_is_a_branch_after_its_state() -> None:
    saga, assumed = asl(
        {
            "Lock": {
                "Type": "Task",
                "Resource": "x",
                "Catch": [{"ErrorEquals": ["Busy"], "Next": "Read"}],
                "Next": "Work",
            },
            "Read": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem", "End": True},
            "Work": {"Type": "Task", "Resource": "x", "End": True},
        },
        "Lock",
    )
    assert shape(saga.steps) == [
        "lock",
        {
            "? lock_outcome": [
                ("caught Busy", 0.5, ["read (read-only)"]),
                ("succeeded", None, ["work"]),
            ]
        },
    ]
    assert any(line.startswith("lock_outcome: Lock's Catch leads on") for line in assumed)


def test_an_effectful_loop_is_bounded_and_a_read_only_one_is_not() -> None:
    saga, assumed = asl(
        {
            "Attempt": {"Type": "Task", "Resource": "x", "Next": "Poll"},
            "Poll": {"Type": "Task", "Resource": "x", "Comment": "read-only", "Next": "Done?"},
            "Done?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.s", "StringEquals": "retry", "Next": "Attempt"}],
                "Default": "Again?",
            },
            "Again?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.s", "StringEquals": "wait", "Next": "Poll"}],
                "Default": "End",
            },
            "End": {"Type": "Succeed"},
        },
        "Attempt",
    )
    assert saga.step("attempt").max_visits == 3
    assert saga.step("poll").max_visits is None
    assert any(line.startswith("attempt: a loop with effects comes back to it") for line in assumed)


def test_a_succeed_ending_a_parallel_branch_ends_only_that_branch() -> None:
    branch = {
        "StartAt": "A",
        "States": {"A": {"Type": "Task", "Resource": "x", "Next": "Ok"}, "Ok": {"Type": "Succeed"}},
    }
    saga, _ = asl({"Both": {"Type": "Parallel", "Branches": [branch], "End": True}}, "Both")
    assert shape(saga.steps) == [{"parallel": [["a"]]}]


def seata(states: dict[str, Any], start: str, **kw: Any) -> tuple[Saga, list[str]]:
    assumed: list[str] = []
    data = {"Name": "s", "StartState": start, "States": states}
    return from_seata(data, assumed=assumed, **kw), assumed


def test_a_seata_loop_is_a_map_of_its_task() -> None:
    loop = {"Parallel": 2, "Collection": "$.[items]", "CompletionCondition": "[done] > 3"}
    saga, assumed = seata(
        {
            "Pack": {"Type": "ServiceTask", "CompensateState": "Unpack", "Loop": loop},
            "Unpack": {"Type": "ServiceTask"},
        },
        "Pack",
    )
    (pack,) = saga.steps
    assert isinstance(pack, Map) and pack.concurrency == 2
    assert shape(pack.steps) == ["pack_item / unpack"]
    assert any("the Loop ends on '[done] > 3'" in line for line in assumed)


def test_a_seata_sub_machine_takes_its_user_defined_compensation() -> None:
    child = Saga(name="hotel", steps=seata({"Book": {"Type": "ServiceTask"}}, "Book")[0].steps)

    def lookup(name: str, at: str) -> SubSaga:
        return SubSaga(name="hotel", model="hotel.yaml", saga=child)

    saga, _ = seata(
        {
            "Hotel": {
                "Type": "SubStateMachine",
                "StateMachineName": "hotel",
                "CompensateState": "CancelHotel",
                "Next": "Pay",
            },
            "CancelHotel": {"Type": "ServiceTask", "ServiceName": "hotels"},
            "Pay": {"Type": "ServiceTask"},
        },
        "Hotel",
        lookup=lookup,
    )
    hotel = saga.steps[0]
    assert isinstance(hotel, SubSaga) and hotel.compensation is not None
    assert (hotel.compensation.name, hotel.compensation.service) == ("cancel_hotel", "hotels")


def test_seata_status_async_and_recover_strategy_are_listed() -> None:
    status = {
        "#root == true": "SU",
        "#root == false": "FA",
        "$Exception{java.lang.Exception}": "UN",
    }
    _, assumed = seata({"Call": {"Type": "ServiceTask", "Status": status, "IsAsync": True}}, "Call")
    assert any(line.startswith("call: Status maps results to FA/SU/UN") for line in assumed)
    assert any(line.startswith("call: IsAsync") for line in assumed)
    forward, notes = (
        from_seata(
            {
                "Name": "s",
                "StartState": "Call",
                "RecoverStrategy": "Forward",
                "States": {"Call": {"Type": "ServiceTask"}},
            },
            assumed=(found := []),
        ),
        found,
    )
    assert forward.description.endswith("(RecoverStrategy: Forward)")
    assert any(line.startswith("RecoverStrategy Forward") for line in notes)
    with pytest.raises(
        SagaDefinitionError, match="RecoverStrategy: expected Compensate or Forward"
    ):
        from_seata(
            {
                "Name": "s",
                "StartState": "C",
                "RecoverStrategy": "Sideways",
                "States": {"C": {"Type": "ServiceTask"}},
            }
        )


def test_a_notification_ending_one_recovery_undoes_nothing() -> None:
    saga, assumed = asl(
        {
            "Validate": {
                "Type": "Task",
                "Resource": "x",
                "Next": "Charge",
                "Catch": [{"ErrorEquals": ["Invalid"], "Next": "Failed"}],
            },
            "Charge": {
                "Type": "Task",
                "Resource": "x",
                "End": True,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "NotifyOps"}],
            },
            "NotifyOps": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail"},
        },
        "Validate",
    )
    assert shape(saga.steps) == ["validate", "charge"]
    assert any(
        line.startswith("notify_ops: runs after recovery and undoes no step") for line in assumed
    )


def test_a_task_without_a_catch_after_compensations_is_read_and_said() -> None:
    undo = {"Type": "Task", "Resource": "x", "Next": "Failed"}
    catch = [{"ErrorEquals": ["States.ALL"], "Next": "UndoA"}]
    saga, assumed = asl(
        {
            "A": {"Type": "Task", "Resource": "x", "Next": "B"},
            "B": {"Type": "Task", "Resource": "x", "Catch": catch, "Next": "C"},
            "C": {"Type": "Task", "Resource": "x", "End": True},
            "UndoA": undo,
            "Failed": {"Type": "Fail"},
        },
        "A",
    )
    assert shape(saga.steps) == ["a / undo_a", "b", "c"]
    assert any(
        line.startswith("c: no Catch, so its failure runs backward recovery") for line in assumed
    )
    assert not any(line.startswith("b: no Catch") for line in assumed)


def test_a_retry_on_a_group_is_not_read_and_said() -> None:
    branch = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "x", "End": True}}}
    retry = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]
    saga, assumed = asl(
        {"G": {"Type": "Parallel", "Branches": [branch], "Retry": retry, "End": True}}, "G"
    )
    assert shape(saga.steps) == [{"parallel": [["a"]]}]
    assert any(line.startswith("g: the Retry on a Parallel state is not read") for line in assumed)
