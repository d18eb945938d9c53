"""interop.designer: Seata's saga designer JSON converted to the engine state language as Seata's
DesignerJsonTransformer converts it, checked on Seata's own designer file against its engine
twin, and every malformed graph refused at its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sagasim.exceptions import SagaDefinitionError
from sagasim.interop.designer import is_designer, to_engine
from sagasim.interop.seata import from_seata
from sagasim.model import Branch, Choice, Compensation, Fail, Step

DESIGNER = Path(__file__).parent / "data/real/seata/designer_simple_statelang_with_script.json"
SHARED = Path("/work/shared/real-definitions/seata")  # where the real files were taken from
STRUCTURE = ("Type", "Next", "CompensateState", "Choices", "Catch", "Default")


def _structure(machine: dict[str, Any], rename: dict[str, str]) -> dict[str, Any]:
    """The states' names and the fields that make the graph, with state names renamed."""

    def name(value: Any) -> Any:
        return rename.get(value, value) if isinstance(value, str) else value

    shape: dict[str, Any] = {"StartState": name(machine["StartState"])}
    for state_name, state in machine["States"].items():
        fields: dict[str, Any] = {}
        for key in STRUCTURE:
            if key not in state:
                continue
            value = state[key]
            if key in ("Choices", "Catch"):
                value = [{**item, "Next": name(item["Next"])} for item in value]
            elif key != "Type":
                value = name(value)
            fields[key] = value
        shape[name(state_name)] = fields
    return shape


def _graph() -> dict[str, Any]:
    """Start -> Pay (compensated by Refund, its failures caught to Undo) -> Check (a Choice) ->
    Done, or Failed by default."""
    return {
        "nodes": [
            {"id": "s", "stateId": "Start", "stateType": "Start", "x": 0, "y": 0, "size": "72*72",
             "stateProps": {"StateMachine": {"Name": "order", "Version": "1"}}},
            {"id": "p", "stateId": "Pay", "stateType": "ServiceTask", "x": 0, "y": 100,
             "size": "110*48", "stateProps": {"ServiceName": "bank", "ServiceMethod": "pay"}},
            {"id": "r", "stateId": "Refund", "stateType": "Compensation", "x": -200, "y": 100,
             "size": "110*48", "stateProps": {"ServiceName": "bank", "ServiceMethod": "refund"}},
            {"id": "c", "stateId": "PayCatch", "stateType": "Catch", "x": 50, "y": 110,
             "size": "39*39"},
            {"id": "u", "stateId": "Undo", "stateType": "CompensationTrigger", "x": 200,
             "y": 100, "size": "110*48"},
            {"id": "k", "stateId": "Check", "stateType": "Choice", "x": 0, "y": 200,
             "size": "80*72"},
            {"id": "d", "stateId": "Done", "stateType": "Succeed", "x": 0, "y": 300,
             "size": "72*72"},
            {"id": "f", "stateId": "Failed", "stateType": "Fail", "x": 200, "y": 300,
             "size": "72*72"},
        ],
        "edges": [
            {"source": "s", "target": "p"},
            {"source": "p", "target": "r", "type": "Compensation"},
            {"source": "p", "target": "k"},
            {"source": "c", "target": "u", "stateProps": {"Exceptions": ["java.lang.Throwable"]}},
            {"source": "u", "target": "f"},
            {"source": "k", "target": "d", "stateProps": {"Expression": "[ok]", "Default": False}},
            {"source": "k", "target": "f", "stateProps": {"Expression": "", "Default": True}},
        ],
    }  # fmt: skip


#: The states of Seata's simple_statelang_with_script.json (the engine twin), their graph only.
TWIN: dict[str, Any] = {
    "StartState": "FirstState",
    "FirstState": {"Type": "ServiceTask", "Next": "ScriptState"},
    "ScriptState": {
        "Type": "ScriptTask",
        "Catch": [{"Exceptions": ["java.lang.Throwable"], "Next": "Fail"}],
        "Next": "ChoiceState",
    },
    "ChoiceState": {
        "Type": "Choice",
        "Choices": [
            {"Expression": "[a] == 1", "Next": "SecondState"},
            {"Expression": "[a] == 2", "Next": "ThirdState"},
        ],
        "Default": "Fail",
    },
    "SecondState": {
        "Type": "ServiceTask",
        "Catch": [
            {"Exceptions": ["org.apache.seata.saga.engine.mock.DemoException"], "Next": "Fail"}
        ],
        "Next": "Succeed",
    },
    "ThirdState": {"Type": "ServiceTask", "Next": "Succeed"},
    "Succeed": {"Type": "Succeed"},
    "Fail": {"Type": "Fail"},
}
#: The designer names its Choice, Succeed and Fail nodes Choice1, Succeed1 and Fail1.
RENAME = {"Choice1": "ChoiceState", "Succeed1": "Succeed", "Fail1": "Fail"}


def test_seatas_designer_file_gives_the_states_of_its_engine_twin() -> None:
    designer = json.loads(DESIGNER.read_text(encoding="utf-8"))
    assert is_designer(designer)
    got = to_engine(designer)
    assert list(got) == ["Name", "Comment", "Version", "StartState", "States"]
    assert (got["Name"], got["Comment"], got["Version"]) == (
        "designerSimpleScriptTaskStateMachine",
        "带ScriptTask的测试状态机定义",
        "0.0.1",
    )
    expected = copy.deepcopy(TWIN)
    # the one difference of the two files themselves: the engine file's SecondState catches
    # DemoException, and the designer file has no Catch node on SecondState
    del expected["SecondState"]["Catch"]
    assert _structure(got, RENAME) == expected
    # the other fields are the nodes' stateProps, and each label is a Comment
    assert got["States"]["FirstState"] == {
        "Comment": "FirstState",
        "ServiceName": "demoService",
        "ServiceMethod": "foo",
        "Input": [{"fooInput": "$.[a]"}],
        "Output": {"fooResult": "$.#root"},
        "Type": "ServiceTask",
        "Next": "ScriptState",
    }
    assert got["States"]["Fail1"] == {
        "Comment": "Fail",
        "ErrorCode": "",
        "Message": "",
        "Type": "Fail",
    }


def test_the_twin_is_the_engine_file_and_the_designer_file_is_seatas() -> None:
    engine_file = SHARED / "simple_statelang_with_script.json"
    for name in ("simple_statelang_with_script.json", DESIGNER.name):
        if not (SHARED / name).exists():
            pytest.skip(f"{SHARED / name} is not here")
    engine = json.loads(engine_file.read_text(encoding="utf-8"))
    assert not is_designer(engine)
    assert _structure(engine, {}) == TWIN
    assert DESIGNER.read_bytes() == (SHARED / DESIGNER.name).read_bytes()


def test_compensation_catch_and_choice_edges() -> None:
    graph = _graph()
    before = copy.deepcopy(graph)
    machine = to_engine(graph)
    assert graph == before  # the input is left alone
    assert machine["Name"] == "order" and machine["StartState"] == "Pay"
    states = machine["States"]
    assert list(states) == ["Pay", "Refund", "Undo", "Check", "Done", "Failed"]  # no Start, Catch
    assert states["Pay"] == {
        "ServiceName": "bank",
        "ServiceMethod": "pay",
        "Type": "ServiceTask",
        "CompensateState": "Refund",
        "Next": "Check",
        "Catch": [{"Exceptions": ["java.lang.Throwable"], "Next": "Undo"}],
    }
    assert states["Refund"]["Type"] == "ServiceTask"
    assert states["Undo"] == {"Type": "CompensationTrigger", "Next": "Failed"}
    assert states["Check"] == {
        "Type": "Choice",
        "Choices": [{"Expression": "[ok]", "Next": "Done"}],
        "Default": "Failed",
    }
    assumed: list[str] = []
    saga = from_seata(machine, assumed=assumed)  # what the designer drew is a saga sagasim reads
    refund = Compensation(name="refund", service="bank")
    assert saga.steps == (
        Step(name="pay", service="bank", compensation=refund),
        Choice(  # the Succeed it leads to ends the flow anyway: no succeed entry
            name="check",
            branches=(
                Branch(when="[ok]", probability=0.5),
                Branch(when="otherwise", steps=(Fail(name="failed"),), default=True),
            ),
        ),
    )
    assert assumed == [
        "check: branches 0.5/0.5 ([ok] | otherwise): assumed equal, set with --set check.0=P"
    ]


def test_labels_props_and_edges_without_props_as_seata_has_them() -> None:
    graph = _graph()
    nodes = graph["nodes"]
    nodes[1]["label"] = "charge the card"
    nodes[1]["stateProps"]["Type"] = "Stale"  # the stateType wins
    nodes[7]["stateProps"] = {"Comment": "props win over the label"}
    nodes[7]["label"] = "Failed"
    del graph["edges"][3]["stateProps"]  # a Catch edge without props adds nothing
    del graph["edges"][5]["stateProps"]  # neither does a Choice edge
    states = to_engine(graph)["States"]
    assert states["Pay"]["Comment"] == "charge the card" and states["Pay"]["Type"] == "ServiceTask"
    assert states["Pay"]["Catch"] == [] and states["Check"]["Choices"] == []
    assert states["Failed"] == {"Comment": "props win over the label", "Type": "Fail"}


def test_a_catch_belongs_to_the_task_it_is_placed_on() -> None:
    graph = _graph()
    graph["nodes"].append(
        {"id": "q", "stateId": "Ship", "stateType": "ScriptTask", "x": 500, "y": 500,
         "size": "110*48"}
    )  # fmt: skip
    graph["nodes"][3].update(x=540, y=520)  # moved from Pay onto Ship
    states = to_engine(graph)["States"]
    assert "Catch" not in states["Pay"]
    assert states["Ship"]["Catch"] == [{"Exceptions": ["java.lang.Throwable"], "Next": "Undo"}]


def test_is_designer() -> None:
    assert is_designer(_graph())
    assert is_designer({"nodes": [], "edges": []})
    assert not is_designer({"nodes": [{"id": "a"}], "edges": []})
    assert not is_designer({"nodes": [], "edges": {}})
    assert not is_designer({"StartState": "A", "States": {}, "nodes": [], "edges": []})
    assert not is_designer([{"nodes": []}])


def _without_state_id(graph: dict[str, Any]) -> None:
    del graph["nodes"][2]["stateId"]


def _edge_to_nowhere(graph: dict[str, Any]) -> None:
    graph["edges"][2]["target"] = "missing"


def _edge_from_nowhere(graph: dict[str, Any]) -> None:
    del graph["edges"][4]["source"]


def _two_starts(graph: dict[str, Any]) -> None:
    graph["nodes"].append({"id": "s2", "stateId": "Start2", "stateType": "Start"})


def _no_start(graph: dict[str, Any]) -> None:
    del graph["nodes"][0]
    del graph["edges"][0]


def _start_without_edge(graph: dict[str, Any]) -> None:
    del graph["edges"][0]


def _catch_on_nothing(graph: dict[str, Any]) -> None:
    graph["nodes"][3].update(x=1000, y=1000)


def _catch_without_size(graph: dict[str, Any]) -> None:
    del graph["nodes"][3]["size"]


def _same_state_id(graph: dict[str, Any]) -> None:
    graph["nodes"][6]["stateId"] = "Pay"


def _two_next(graph: dict[str, Any]) -> None:
    graph["edges"].append({"source": "p", "target": "d"})


def _two_defaults(graph: dict[str, Any]) -> None:
    graph["edges"].append({"source": "k", "target": "d", "stateProps": {"Default": True}})


def _edge_into_catch(graph: dict[str, Any]) -> None:
    graph["edges"][4]["target"] = "c"


def _props_not_a_mapping(graph: dict[str, Any]) -> None:
    graph["nodes"][1]["stateProps"] = ["ServiceName"]


@pytest.mark.parametrize(
    ("spoil", "path", "words"),
    [
        (_without_state_id, "nodes[2].stateId", "expected a non-empty state name, got nothing"),
        (_edge_to_nowhere, "edges[2].target", "no node has it), got 'missing'"),
        (_edge_from_nowhere, "edges[4].source", "expected the id of a node, got nothing"),
        (_two_starts, "nodes[8].stateType", "expected one Start node, got a second"),
        (_no_start, "nodes", "expected a Start node"),
        (_start_without_edge, "nodes[0]", "expected an edge from the Start node"),
        (_catch_on_nothing, "nodes[3]", "placed on a ServiceTask or ScriptTask, got one on none"),
        (_catch_without_size, "nodes[3].size", "expected a size such as '110*48', got nothing"),
        (_same_state_id, "nodes[6].stateId", "got 'Pay' again (first at nodes[1])"),
        (_two_next, "edges[7]", "one Next edge out of 'Pay', got a second (first at edges[2])"),
        (_two_defaults, "edges[7]", "one Default edge out of 'Check', got a second"),
        (_edge_into_catch, "edges[4].target", "into a state, got one into the Catch node"),
        (_props_not_a_mapping, "nodes[1].stateProps", "got a list"),
    ],
)
def test_a_malformed_graph_is_refused_at_its_path(spoil: Any, path: str, words: str) -> None:
    graph = _graph()
    spoil(graph)
    with pytest.raises(SagaDefinitionError) as caught:
        to_engine(graph, file="order.json")
    assert caught.value.path == path and caught.value.file == "order.json"
    assert words in caught.value.message
    assert str(caught.value).startswith(f"order.json: {path}: ")


@pytest.mark.parametrize(
    ("data", "path"),
    [([], ""), ({"nodes": {}, "edges": []}, "nodes"), ({"nodes": [], "edges": [3]}, "edges[0]")],
)
def test_not_a_graph(data: Any, path: str) -> None:
    with pytest.raises(SagaDefinitionError) as caught:
        to_engine(data)
    assert caught.value.path == path
