"""export (graph model): choices, fail, succeed, goto, maps, sub-sagas and self-compensation
written as Step Functions definitions, state by state, on the shipped models and small DSL
sagas; the sub-sagas' own files and the CLI that writes them; the trip back through the
importer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from sagasim import io
from sagasim.cli import main
from sagasim.exceptions import SagaDefinitionError
from sagasim.interop import from_asl, load_any, structural, to_asl, to_asl_files
from sagasim.io.dsl import (
    branch,
    choice,
    compensation,
    exponential,
    fail,
    goto,
    map_items,
    parallel,
    saga,
    step,
    sub_saga,
    succeed,
)
from sagasim.model import Saga, SubSaga, validate

from .graph_strategies import graph_sagas

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "models" / "graph"
CATCH_ALL = ["States.ALL"]


def states_of(s: Saga) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(json.dumps(to_asl(s)))
    states: dict[str, Any] = definition["States"]
    return states


def catch(state: dict[str, Any]) -> str | None:
    """Where a state's one Catch goes (None: it has none)."""
    catchers = state.get("Catch")
    if catchers is None:
        return None
    assert len(catchers) == 1 and catchers[0]["ErrorEquals"] == CATCH_ALL
    target: str = catchers[0]["Next"]
    return target


def chain(states: dict[str, Any], start: str | None) -> list[str]:
    """The states a Catch into ``start`` runs, following Next to the end."""
    found = []
    while start is not None:
        found.append(start)
        start = states[start].get("Next")
    return found


# --- the shipped models, construct by construct ---------------------------------------------


def test_a_choice_is_a_jsonata_choice_with_its_probabilities_and_a_default() -> None:
    states = states_of(io.load(GRAPH / "order_with_stock_check.yaml"))
    assert states["StockLevel"] == {
        "Type": "Choice",
        "QueryLanguage": "JSONata",
        "Choices": [
            {
                "Condition": "{% stock >= quantity %}",
                "Next": "ReserveInventory",
                "Comment": "probability 0.9",
            }
        ],
        "Default": "OutOfStock",
    }
    assert states["OutOfStock"] == {"Type": "Fail", "Error": "out_of_stock"}
    assert states["CheckStock"]["Next"] == "StockLevel"
    assert states["ReserveInventory"]["Next"] == "ChargeCard"  # the branch rejoins


def test_a_self_compensating_step_catches_into_its_own_cancel_first() -> None:
    states = states_of(io.load(GRAPH / "order_with_stock_check.yaml"))
    own = chain(states, catch(states["ChargeCard"]))
    assert own == ["RefundCard", "ReleaseInventory", "Compensated"]
    assert states["RefundCard"]["Comment"] == "undoes charge_card"
    assert states["Compensated"] == {"Type": "Fail", "Error": "SagaCompensated"}
    assert chain(states, catch(states["ShipOrder"])) == own  # the pivot undoes the same
    assert catch(states["ReserveInventory"]) == "Compensated"
    assert "Retry" in states["RefundCard"] and "Catch" not in states["RefundCard"]


def test_a_loop_is_a_next_back_and_ends_are_fail_and_succeed_states() -> None:
    states = states_of(io.load(GRAPH / "shipment_polling.yaml"))
    ready = states["LabelReady"]
    assert [(r["Condition"], r["Next"], r["Comment"]) for r in ready["Choices"]] == [
        ("{% ready %}", "Labelled", "probability 0.6"),
        ("{% cancelled %}", "CarrierCancelled", "probability 0.02"),
    ]
    assert ready["Default"] == "WaitABit"
    assert states["WaitABit"]["Next"] == "PollLabel"  # goto: poll_label
    assert states["Labelled"] == {"Type": "Succeed"}
    assert states["CarrierCancelled"] == {"Type": "Fail", "Error": "carrier_cancelled"}
    assert "Committed" not in states  # nothing falls off the end: the choice ends it all
    assert chain(states, catch(states["WaitABit"])) == ["CancelCarrier", "Compensated"]


def test_a_map_is_an_inline_map_with_its_items_and_concurrency() -> None:
    states = states_of(io.load(GRAPH / "bulk_order.yaml"))
    packing = states["PackItems"]
    assert packing["Type"] == "Map"
    assert packing["Comment"] == "items 1,2,2,3,5"
    assert packing["MaxConcurrency"] == 2
    body = packing["ItemProcessor"]
    assert body["ProcessorConfig"] == {"Mode": "INLINE"}
    assert body["StartAt"] == "PackItem"
    assert list(body["States"]) == ["PackItem"]  # nothing to undo inside: no Catch
    assert body["States"]["PackItem"]["End"] is True and "Catch" not in body["States"]["PackItem"]
    assert catch(packing) == "ReleaseLot"
    assert packing["Next"] == "ShipOrder"


def test_a_later_failure_undoes_every_packed_item_through_an_undo_map() -> None:
    states = states_of(io.load(GRAPH / "bulk_order.yaml"))
    assert chain(states, catch(states["ShipOrder"])) == [
        "UndoPackItems",
        "ReleaseLot",
        "Compensated",
    ]
    undo = states["UndoPackItems"]
    assert (undo["Type"], undo["Comment"], undo["ResultPath"]) == ("Map", "undoes pack_items", None)
    assert undo["ItemProcessor"]["StartAt"] == "UnpackItem"
    assert undo["ItemProcessor"]["States"]["UnpackItem"]["End"] is True


def test_a_sub_saga_starts_the_child_machine_and_its_cancel_joins_the_chain() -> None:
    trip = io.load(GRAPH / "trip_with_hotel.yaml")
    states = states_of(trip)
    hotel = states["BookHotel"]
    assert hotel["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert hotel["Parameters"] == {
        "StateMachineArn": "arn:aws:states:REGION:ACCOUNT:stateMachine:hotel_booking",
        "Input.$": "$",
    }
    assert catch(hotel) == "CancelFlight"
    assert chain(states, catch(states["ChargeTraveller"])) == [
        "CancelHotelBooking",
        "CancelFlight",
        "Compensated",
    ]
    assert "ReserveRoom" not in states  # the child's states are in its own file
    files = to_asl_files(trip, "trip")
    assert list(files) == ["trip.asl.json", "hotel_booking.asl.json"]
    assert files["trip.asl.json"] == to_asl(trip)
    child = trip.steps[1]
    assert isinstance(child, SubSaga)
    assert files["hotel_booking.asl.json"] == to_asl(child.saga)


# --- small sagas, one convention each -------------------------------------------------------


def test_a_choice_without_default_writes_every_branch_as_a_rule() -> None:
    s = saga(
        "s",
        step("look", effects=False),
        choice(
            "which",
            branch("a", step("x", compensation="undo_x"), probability=0.25),
            branch("b", probability=0.75),
        ),
        step("after"),
    )
    which = states_of(s)["Which"]
    assert "Default" not in which
    assert [(r["Condition"], r["Next"]) for r in which["Choices"]] == [
        ("{% a %}", "X"),
        ("{% b %}", "After"),  # an empty branch goes straight to the join
    ]
    assert [r["Comment"] for r in which["Choices"]] == ["probability 0.25", "probability 0.75"]


def test_a_fail_name_used_twice_is_one_state_and_a_goto_is_the_next_before_it() -> None:
    s = saga(
        "s",
        step("poll", effects=False),
        choice(
            "state",
            branch("broken", fail("gave_up"), probability=0.1),
            branch("lost", fail("gave_up"), probability=0.1),
            branch("waiting", step("wait", effects=False), goto("poll"), default=True),
        ),
    )
    states = states_of(s)
    rules = states["State"]["Choices"]
    assert [r["Next"] for r in rules] == ["GaveUp", "GaveUp"]
    assert [n for n, st in states.items() if st["Type"] == "Fail"] == ["GaveUp", "Compensated"]
    assert states["Wait"]["Next"] == "Poll"
    assert structural(s).steps[1].branches[0].when == "broken or lost"  # type: ignore[union-attr]


def test_max_visits_is_said_in_the_comment_after_what_is_there() -> None:
    s = saga(
        "s",
        step("book", compensation="cancel", max_visits=3),
        step("check", effects=False, max_visits=2),
        choice("again", branch("yes", goto("book"), probability=0.3), branch("no", default=True)),
        step("pay", kind="pivot"),
    )
    states = states_of(s)
    assert states["Book"]["Comment"] == "max_visits 3"
    assert states["Check"]["Comment"] == "read-only: nothing to undo; max_visits 2"
    assert states["Again"]["Choices"][0]["Next"] == "Book"
    assert structural(s).step("book").max_visits == 3


def test_a_map_of_a_count_has_no_concurrency_and_undoes_inside_its_body() -> None:
    body = [step("take"), step("pack", compensation="unpack"), step("label")]
    s = saga("s", map_items("items_loop", *body, items=4), step("ship", kind="pivot"))
    loop = states_of(s)["ItemsLoop"]
    assert loop["Comment"] == "items 4" and "MaxConcurrency" not in loop
    inner = loop["ItemProcessor"]["States"]
    assert catch(inner["Take"]) is None and catch(inner["Pack"]) is None  # nothing to undo yet
    assert chain(inner, catch(inner["Label"])) == ["Unpack", "ItemsLoopItemFailed"]
    assert inner["ItemsLoopItemFailed"] == {"Type": "Fail", "Error": "ItemCompensated"}
    undo = states_of(s)["UndoItemsLoop"]["ItemProcessor"]
    assert undo["StartAt"] == "UnpackAfterItemsLoop"  # the copy outside the body's chain


def test_a_parallel_branch_may_hold_a_choice_whose_empty_branch_ends_it() -> None:
    s = saga(
        "s",
        parallel(
            [step("a", compensation="undo_a")],
            [
                step("b", compensation="undo_b"),
                choice("c", branch("x", probability=0.5), branch("y", step("d"), default=True)),
            ],
        ),
        step("e"),
    )
    states = states_of(s)
    second = states["Parallel1"]["Branches"][1]["States"]
    assert second["C"]["Choices"][0]["Next"] == "Parallel1Branch2Done"
    assert second["Parallel1Branch2Done"] == {"Type": "Succeed"}
    assert chain(second, catch(second["D"])) == ["UndoB", "Parallel1Branch2Failed"]
    assert chain(states, catch(states["E"])) == ["UndoParallel1", "Compensated"]
    undo = states["UndoParallel1"]["Branches"]
    assert [b["StartAt"] for b in undo] == ["UndoA", "UndoBAfterParallel1"]


def test_a_branch_undoes_only_what_its_own_way_did() -> None:
    s = saga(
        "s",
        step("start", compensation="unstart"),
        choice(
            "way",
            branch("a", step("x", compensation="undo_x"), step("x2"), probability=0.5),
            branch("b", step("y", compensation="undo_y"), step("y2"), default=True),
        ),
        step("end"),
    )
    states = states_of(s)
    assert chain(states, catch(states["X2"])) == ["UndoX", "Unstart", "Compensated"]
    assert chain(states, catch(states["Y2"])) == ["UndoY", "Unstart", "Compensated"]
    # two ways meet again: after them, only what came before the choice is surely done
    assert chain(states, catch(states["End"])) == ["Unstart", "Compensated"]


def test_a_sub_saga_without_compensation_and_what_is_dropped() -> None:
    child = saga("child", step("c1", compensation="undo_c1"), step("c2"))
    s = saga(
        "s",
        step("a", compensation="undo_a", latency=exponential("20ms"), failure=0.1),
        sub_saga("run_child", child),
        step("last", compensation=compensation("undo_last")),
    )
    states = states_of(s)
    assert catch(states["RunChild"]) == "UndoA"
    assert states["Last"]["Comment"] == (
        "its compensation undo_last is left out: no failure leads to it"
    )
    shape = structural(s)
    assert shape.step("a").failure == 0.0 and shape.step("last").compensation is None
    sub = shape.steps[1]
    assert isinstance(sub, SubSaga) and sub.model == "child.yaml"
    assert sub.saga.step("c2").compensation is None  # the child's own last step, as ever


def test_structural_keeps_what_the_definition_carries() -> None:
    s = io.load(GRAPH / "shipment_polling.yaml")
    shape = structural(s)
    ready = shape.steps[2]
    assert [(b.when, b.probability, b.default) for b in ready.branches] == [  # type: ignore[union-attr]
        ("ready", 0.6, False),
        ("cancelled", 0.02, False),
        ("otherwise", None, True),  # the default has no condition of its own
    ]
    assert len(shape.steps) == 3  # the final succeed is where the saga ends anyway
    assert shape.step("poll_label").latency == structural(s).step("book_carrier").latency
    packing = structural(io.load(GRAPH / "bulk_order.yaml")).steps[1]
    assert (packing.items, packing.concurrency) == ((1, 2, 2, 3, 5), 2)  # type: ignore[union-attr]


# --- what cannot be written -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "message"),
    [
        (
            saga(
                "s",
                step("a"),
                choice(
                    "c",
                    branch("x", step("p", kind="pivot"), probability=0.5),
                    branch("y", default=True),
                ),
                step("z"),
            ),
            r"^steps\[1\]: expected the pivot outside choices, got p in c",
        ),
        (
            saga(
                "s",
                step("out"),
                choice("c", branch("x", fail("out"), probability=0.5), branch("y", default=True)),
            ),
            r"^steps\[1\]\.choice\.branches\[0\]\.steps\[0\]\.fail\.name: expected names whose "
            r"state names differ, got 'out'",
        ),
        (
            saga(
                "s",
                step("a"),
                choice(
                    "c",
                    branch("x", fail("no"), probability=0.5),
                    branch("y", succeed("ok"), default=True),
                ),
                step("z"),
            ),
            r"^steps\[2\]: expected a way into Z, got none",
        ),
        (
            saga(
                "s",
                map_items("m", step("a"), fail("bad"), items=2),
                choice("c", branch("x", fail("bad"), probability=0.5), branch("y", default=True)),
            ),
            r"^steps: expected fail bad in one scope",
        ),
        (
            saga("s", step("a"), choice("c", branch("only", step("b"), default=True))),
            r"^steps\[1\]\.choice\.branches: expected a branch of c besides the default",
        ),
    ],
    ids=[
        "pivot-in-choice",
        "fail-named-like-a-step",
        "entry-nothing-reaches",
        "fail-in-two-scopes",
        "choice-of-a-default-alone",
    ],
)
def test_what_cannot_be_written_is_refused_in_one_line(s: Saga, message: str) -> None:
    with pytest.raises(SagaDefinitionError, match=message) as err:
        to_asl(s)
    assert "\n" not in str(err.value)


def test_child_files_are_named_once_and_never_collide() -> None:
    leaf = saga("leaf", step("l1", compensation="undo_l1"), step("l2"))
    mid = saga("mid", step("m1"), sub_saga("run_leaf", leaf))
    # the same child twice (built without the model's rules, which want names unique)
    s = Saga(name="top", steps=(sub_saga("first", mid), sub_saga("second", leaf), step("t")))
    assert list(to_asl_files(s, "top")) == ["top.asl.json", "mid.asl.json", "leaf.asl.json"]
    other = saga("leaf", step("different"))
    clash = Saga(name="top", steps=(sub_saga("first", leaf), sub_saga("second", other)))
    with pytest.raises(SagaDefinitionError, match="expected one child saga named leaf"):
        to_asl_files(clash, "top")
    with pytest.raises(SagaDefinitionError, match=r"not named like the file leaf\.asl\.json"):
        to_asl_files(saga("s", sub_saga("first", leaf)), "leaf")


# --- the CLI ---------------------------------------------------------------------------------


def test_export_writes_each_child_beside_the_output_and_asks_before_overwriting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "trip.asl.json"
    model = "models/graph/trip_with_hotel.yaml"
    assert main(["export", model, "-o", str(out)]) == 0
    child = tmp_path / "hotel_booking.asl.json"
    assert capsys.readouterr().out == f"wrote {out}\nwrote {child}\n"
    hotel = to_asl(io.load(GRAPH / "hotel.yaml"))
    assert json.loads(child.read_text()) == json.loads(json.dumps(hotel))
    child.write_text("{}")
    assert main(["export", model, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().endswith(f"{child}: exists; pass --force to overwrite it")
    assert len(captured.err.strip().splitlines()) == 1 and child.read_text() == "{}"
    assert main(["export", model, "-o", str(out), "--force"]) == 0
    capsys.readouterr()
    assert json.loads(child.read_text()) == json.loads(json.dumps(hotel))
    assert main(["export", model]) == 0  # to stdout: the top definition alone
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(to_asl(io.load(model))))


def test_export_of_a_saga_without_children_writes_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "order.asl.json"
    assert main(["export", "models/graph/bulk_order.yaml", "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["order.asl.json"]


# --- the trip back through the importer -----------------------------------------------------

#: Models whose trip needs the importer to read a convention it does not read yet.
GRAPH_MODELS = [
    pytest.param(p, id=p.stem) for p in sorted(GRAPH.glob("*.yaml")) if io.load(p).is_graph
]


def through_files(s: Saga, folder: Path, stem: str) -> Saga:
    for name, definition in to_asl_files(s, stem).items():
        (folder / name).write_text(json.dumps(definition, indent=2))
    return load_any(folder / f"{stem}.asl.json", assumed=[])


@pytest.mark.parametrize("path", GRAPH_MODELS)
def test_every_graph_model_survives_the_trip_through_asl_as_its_structure(
    path: Path, tmp_path: Path
) -> None:
    s = io.load(path)
    back = through_files(s, tmp_path, s.name)
    assert back == structural(s)
    assert structural(back) == back


@pytest.mark.parametrize("path", GRAPH_MODELS)
def test_asl_to_model_to_asl_is_stable(path: Path, tmp_path: Path) -> None:
    s = io.load(path)
    first = through_files(s, tmp_path, s.name)
    again = tmp_path / "again"
    again.mkdir()
    second = through_files(first, again, s.name)
    assert second == first
    assert to_asl_files(second, s.name) == to_asl_files(first, s.name)


SMALL = {
    "choice-with-fail": saga(
        "s",
        step("look", effects=False),
        choice(
            "enough",
            branch("stock > 0", step("hold", compensation="unhold"), probability=0.8),
            branch("otherwise", fail("empty"), default=True),
        ),
        step("pay", compensation="refund"),
        step("ship", kind="pivot"),
    ),
    "two-ways-meet": saga(
        "s",
        step("start", compensation="unstart"),
        choice(
            "way",
            branch("a", step("x", compensation="undo_x"), step("x2"), probability=0.5),
            branch("b", step("y", compensation="undo_y"), step("y2"), default=True),
        ),
        step("end"),
    ),
    "read-only-loop-and-succeed": saga(
        "s",
        step("book", compensation="cancel"),
        step("poll", effects=False),
        choice(
            "ready",
            branch("yes", succeed("ready_now"), probability=0.5),
            branch("no", step("wait", effects=False), goto("poll"), default=True),
        ),
    ),
    "map-and-group": saga(
        "s",
        step("reserve", compensation="release"),
        map_items("each", step("take", effects=False), items=[1, 3], concurrency=2),
        parallel([step("a", compensation="undo_a"), step("b")], [step("c", effects=False)]),
        step("ship", kind="pivot"),
    ),
    "saga-pattern": saga(
        "s",
        step("reserve", compensation="cancel", compensate_on_failure=True),
        step("pay", compensation="refund", compensate_on_failure=True),
        step("ship", kind="pivot"),
    ),
    "bounded-loop": saga(
        "s",
        step("try_book", compensation="unbook", max_visits=2),
        choice(
            "again",
            branch("retry", goto("try_book"), probability=0.3),
            branch("done", default=True),
        ),
        step("pay", kind="pivot"),
    ),
}
#: Small sagas whose trip needs the importer to read a convention it does not read yet.


@pytest.mark.parametrize(
    "name",
    [pytest.param(name) for name in SMALL],
)
def test_small_graph_sagas_survive_the_trip_as_their_structure(name: str) -> None:
    s = SMALL[name]
    back = from_asl(json.loads(json.dumps(to_asl(s))), name=s.name, assumed=[])
    assert back == structural(s)
    assert structural(back) == back
    assert to_asl(back) == to_asl(structural(s))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_sagas(max_entries=4))
def test_any_graph_saga_is_written_or_refused_in_one_line(s: Saga) -> None:
    s = replace(s, compensation_order="reverse")
    try:
        files = to_asl_files(s, "top")
    except SagaDefinitionError as err:
        assert "\n" not in str(err)
        return
    assert json.loads(json.dumps(files))["top.asl.json"] == to_asl(s)
    validate(structural(s))  # what the definition carries is a model
