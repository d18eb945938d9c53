"""asl, seata: the constructs the importers once refused (Map, Wait, Choice, loops, a Catch that
leads on, several Retry rules, ScriptTask, Loop, SubStateMachine) read as the structure they
mean, with what a definition cannot carry listed as an assumption.

Each case is one of tests/data/refusals.yaml's bases with the construct in it, as the refusal
case it was; what the importers still refuse is tested in test_importers.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from sagasim.interop import from_asl, from_seata, load_any
from sagasim.model import (
    Branch,
    Choice,
    Compensation,
    Constant,
    Fail,
    Goto,
    Map,
    Retry,
    Saga,
    Step,
    SubSaga,
)

DATA = Path(__file__).resolve().parent / "data"
BASES: dict[str, Any] = yaml.safe_load((DATA / "refusals.yaml").read_text())["bases"]
ALL = ["States.ALL"]


def based(base: str, states: dict[str, Any]) -> dict[str, Any]:
    """A base with the states given replaced or added (None: removed)."""
    data = copy.deepcopy(BASES[base])
    merged = data["States"] | states
    data["States"] = {name: state for name, state in merged.items() if state is not None}
    return data


def asl(states: dict[str, Any]) -> tuple[Saga, list[str]]:
    assumed: list[str] = []
    return from_asl(based("asl", states), name="x", assumed=assumed), assumed


def seata(states: dict[str, Any]) -> tuple[Saga, list[str]]:
    assumed: list[str] = []
    return from_seata(based("seata", states), assumed=assumed), assumed


def undo(name: str) -> Compensation:
    return Compensation(name=name)


A = Step(name="a", compensation=undo("undo_a"))


# --- Step Functions -------------------------------------------------------------------------------


def test_a_map_is_a_map_of_its_item_processor() -> None:
    body = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Task", "Next": "Q"},
            "Q": {"Type": "Task", "Catch": [{"ErrorEquals": ALL, "Next": "UndoP"}], "End": True},
            "UndoP": {"Type": "Task", "Next": "ItemFailed"},
            "ItemFailed": {"Type": "Fail"},
        },
    }
    catch = [{"ErrorEquals": ALL, "Next": "UndoA"}]
    item_map = {"Type": "Map", "Catch": catch, "Next": "C"}
    states = {"C": {"Type": "Task", "Catch": catch, "End": True}, "UndoB": None}
    saga, assumed = asl(
        states
        | {"B": item_map | {"Comment": "items 1,2,5", "MaxConcurrency": 2, "ItemProcessor": body}}
    )
    item = (Step(name="p", compensation=undo("undo_p")), Step(name="q"))
    assert saga.steps == (
        A,
        Map(name="b", items=(1, 2, 5), steps=item, concurrency=2),  # undone item by item
        Step(name="c"),
    )
    assert assumed == []
    # The older Iterator, and no count in the Comment: all at once, 3 items, assumed.
    saga, assumed = asl(states | {"B": item_map | {"Iterator": body}})
    assert saga.steps[1] == Map(name="b", items=3, steps=item)
    assert assumed == ["b: 3 items (assumed: set with --set b.items=N)"]


def test_a_wait_is_a_read_only_step_taking_its_seconds() -> None:
    before_wait = {"Type": "Task", "Catch": [{"ErrorEquals": ALL, "Next": "Failed"}], "Next": "W"}
    saga, assumed = asl({"A": before_wait, "W": {"Type": "Wait", "Seconds": 5, "Next": "B"}})
    assert [getattr(entry, "name", None) for entry in saga.steps] == ["a", "w", "b", "c"]
    assert saga.steps[1] == Step(name="w", effects=False, latency=Constant(value_ms=5000.0))
    assert saga.step("b").compensation == undo("undo_b")  # the chains read as before
    assert assumed == []
    saga, assumed = asl(
        {"A": before_wait, "W": {"Type": "Wait", "TimestampPath": "$.t", "Next": "B"}}
    )
    assert saga.steps[1] == Step(name="w", effects=False)
    assert assumed == [
        "w: waits for a time the input gives: latency 0 (set with --set w.latency=...)"
    ]


def test_of_two_retry_rules_the_first_is_the_policy_and_the_other_is_listed() -> None:
    rules = [{"ErrorEquals": ["Timeout"]}, {"ErrorEquals": ALL, "MaxAttempts": 9}]
    catch = [{"ErrorEquals": ALL, "Next": "Failed"}]
    saga, assumed = asl({"A": {"Type": "Task", "Retry": rules, "Catch": catch, "Next": "B"}})
    # ASL's defaults for the first rule: 3 retries 1 s apart, doubling.
    assert saga.step("a").retry == Retry(
        attempts=4, backoff="exponential", delay_ms=1000.0, multiplier=2.0
    )
    assert assumed == [
        "a: 2 Retry rules, one retry policy: the first one's (the others, for States.ALL, are not"
        " read)"
    ]


def test_a_first_step_undoing_itself_compensates_on_failure() -> None:
    catch = [{"ErrorEquals": ALL, "Next": "UndoA"}]
    saga, assumed = asl({"A": {"Type": "Task", "Catch": catch, "Next": "B"}})
    # The first failure starts with its own undo (the AWS saga pattern), so each chain does: B's
    # runs only UndoA (B undoes nothing of its own), C's starts with UndoB, C's own.
    assert saga.steps == (
        Step(name="a", compensation=undo("undo_a"), compensate_on_failure=True),
        Step(name="b"),
        Step(name="c", compensation=undo("undo_b"), compensate_on_failure=True),
    )
    assert assumed == []


def test_a_loop_with_a_way_out_is_a_goto_bounded_where_it_has_effects() -> None:
    saga, assumed = asl(
        {
            "C": {"Type": "Task", "Catch": [{"ErrorEquals": ALL, "Next": "UndoB"}], "Next": "More"},
            "More": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.again", "BooleanEquals": True, "Next": "A"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    assert saga.steps == (
        Step(name="a", compensation=undo("undo_a"), max_visits=3),
        Step(name="b", compensation=undo("undo_b")),
        Step(name="c"),
        Choice(  # the trailing Succeed is where the flow ends anyway: no succeed entry
            name="more",
            branches=(
                Branch(when="$.again == true", steps=(Goto(target="a"),), probability=0.5),
                Branch(when="otherwise", default=True),
            ),
        ),
    )
    assert sorted(assumed) == [
        "a: a loop with effects comes back to it: at most 3 visits (assumed: set with --set"
        " a.max_visits=N)",
        "more: branches 0.5/0.5 ($.again == true | otherwise): assumed equal, set with --set"
        " more.0=P",
    ]


def test_a_choice_is_a_choice_whose_when_is_the_condition() -> None:
    assumed: list[str] = []
    saga = load_any(DATA / "asl_choice.asl.json", assumed=assumed)
    assert saga.steps == (
        Step(name="reserve_flight"),
        Choice(
            name="check_availability",
            branches=(
                Branch(when="$.hotel.available == true", probability=0.5),
                Branch(when="otherwise", steps=(Fail(name="booking_failed"),), default=True),
            ),
        ),
        Step(name="reserve_hotel"),
    )
    assert assumed[1:] == [
        "check_availability: branches 0.5/0.5 ($.hotel.available == true | otherwise): assumed"
        " equal, set with --set check_availability.0=P"
    ]


def test_a_catch_leading_on_is_a_branch_after_its_state() -> None:
    catch = [
        {"ErrorEquals": ["Card.Declined"], "Next": "Notify"},
        {"ErrorEquals": ALL, "Next": "UndoB"},
    ]
    saga, assumed = asl(
        {
            "C": {"Type": "Task", "Catch": catch, "End": True},
            "Notify": {"Type": "Task", "Comment": "read-only", "End": True},
        }
    )
    assert saga.steps == (
        A,
        Step(name="b", compensation=undo("undo_b")),  # the other catcher still recovers
        Step(name="c"),
        Choice(
            name="c_outcome",
            branches=(
                Branch(
                    when="caught Card.Declined",
                    steps=(Step(name="notify", effects=False),),
                    probability=0.5,
                ),
                Branch(when="succeeded", default=True),
            ),
        ),
    )
    assert assumed[0] == (
        "c_outcome: C's Catch leads on into the saga (to Notify): read as a branch after it, not a"
        " failure"
    )


# --- Seata ----------------------------------------------------------------------------------------


def test_a_seata_choice_is_a_choice_and_rules_to_one_state_are_one_branch() -> None:
    rules = [
        {"Expression": "[ok] == true", "Next": "B"},
        {"Expression": "[big] == true", "Next": "B"},
    ]
    saga, assumed = seata(
        {
            "A": {"Type": "ServiceTask", "CompensateState": "UndoA", "Next": "Pick"},
            "Pick": {"Type": "Choice", "Choices": rules, "Default": "Other"},
            "Other": {"Type": "ServiceTask", "IsForUpdate": False, "Next": "Done"},
        }
    )
    assert saga.steps == (
        A,
        Choice(
            name="pick",
            branches=(
                Branch(
                    when="[ok] == true or [big] == true", steps=(Step(name="b"),), probability=0.5
                ),
                Branch(when="otherwise", steps=(Step(name="other", effects=False),), default=True),
            ),
        ),
    )
    assert assumed == [
        "pick: branches 0.5/0.5 ([ok] == true or [big] == true | otherwise): assumed equal, set"
        " with --set pick.0=P"
    ]


def test_a_seata_loop_is_a_map_of_its_task() -> None:
    loop = {"Parallel": 2, "Collection": "$.[items]"}
    task = {"Type": "ServiceTask", "Loop": loop, "Catch": [{"Next": "Trigger"}], "Next": "Done"}
    saga, assumed = seata(
        {"B": task | {"CompensateState": "UndoB"}, "UndoB": {"Type": "ServiceTask"}}
    )
    item = Step(name="b_item", compensation=undo("undo_b"))  # each item undone on its own
    assert saga.steps == (A, Map(name="b", items=3, steps=(item,), concurrency=2))
    assert assumed == ["b: 3 items (assumed: set with --set b.items=N)"]
    saga, _ = seata({"B": task | {"Loop": {"Collection": "$.[items]"}}})
    assert saga.steps[1] == Map(name="b", items=3, steps=(Step(name="b_item"),), concurrency=1)


def test_a_seata_catch_leading_on_is_a_branch_after_its_state() -> None:
    saga, assumed = seata(
        {
            "B": {
                "Type": "ServiceTask",
                "Catch": [
                    {"Exceptions": ["x.Declined"], "Next": "Handle"},
                    {"Exceptions": ["java.lang.Throwable"], "Next": "Trigger"},
                ],
                "Next": "Done",
            },
            "Handle": {"Type": "ServiceTask", "IsForUpdate": False, "Next": "Done"},
        }
    )
    assert saga.steps == (
        A,
        Step(name="b"),
        Choice(
            name="b_outcome",
            branches=(
                Branch(
                    when="caught x.Declined",
                    steps=(Step(name="handle", effects=False),),
                    probability=0.5,
                ),
                Branch(when="succeeded", default=True),
            ),
        ),
    )
    assert assumed[0] == (
        "b_outcome: B's Catch leads on into the saga (to Handle): read as a branch after it, not a"
        " failure"
    )


def test_a_script_task_is_a_read_only_step() -> None:
    script = {"Type": "ScriptTask", "ScriptType": "groovy", "ScriptContent": "1", "Next": "B"}
    saga, assumed = seata(
        {"A": {"Type": "ServiceTask", "CompensateState": "UndoA", "Next": "S"}, "S": script}
    )
    assert saga.steps == (A, Step(name="s", effects=False), Step(name="b"))
    assert assumed == []


def test_a_sub_state_machine_is_a_sub_saga_found_by_its_name(tmp_path: Path) -> None:
    parent = json.loads((DATA / "seata_substate.seata.json").read_text())
    (tmp_path / "purchase.seata.json").write_text(json.dumps(parent, indent=2))
    lib = tmp_path / "lib"
    lib.mkdir()
    payment = {
        "Name": "paymentStateMachine",
        "StartState": "Pay",
        "States": {
            "Pay": {"Type": "ServiceTask", "ServiceName": "bank", "CompensateState": "Refund"},
            "Refund": {"Type": "ServiceTask", "ServiceName": "bank"},
        },
    }
    (lib / "payment.seata.json").write_text(json.dumps(payment))
    saga = load_any(tmp_path / "purchase.seata.json", lookup=[lib])  # not found: test_importers
    child = Saga(
        name="paymentStateMachine",
        steps=(
            Step(
                name="pay", service="bank", compensation=Compensation(name="refund", service="bank")
            ),
        ),
    )
    inventory = Compensation(name="compensate_reduce_inventory", service="inventoryAction")
    assert saga.steps == (
        Step(name="reduce_inventory", service="inventoryAction", compensation=inventory),
        SubSaga(name="call_payment_machine", model="paymentStateMachine.yaml", saga=child),
    )
    # A CompensateState on the SubStateMachine is its user-defined compensation.
    machine = parent["States"]["CallPaymentMachine"]
    machine["CompensateState"] = "RefundAll"
    parent["States"]["RefundAll"] = {"Type": "ServiceTask", "ServiceName": "bank"}
    (tmp_path / "purchase.seata.json").write_text(json.dumps(parent, indent=2))
    sub = load_any(tmp_path / "purchase.seata.json", lookup=[lib]).steps[1]
    assert sub == SubSaga(
        name="call_payment_machine",
        model="paymentStateMachine.yaml",
        saga=child,
        compensation=Compensation(name="refund_all", service="bank"),
    )
