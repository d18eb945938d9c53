"""The DSL's builders of the graph model read like the YAML and build equal models."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagasim import io
from sagasim.exceptions import SagaDefinitionError
from sagasim.io.dsl import (
    branch,
    choice,
    fail,
    goto,
    map_items,
    saga,
    step,
    sub_saga,
    succeed,
)

MODELS = Path(__file__).resolve().parent.parent / "models" / "graph"


def test_a_choice_a_loop_and_an_end_equal_their_yaml() -> None:
    built = saga(
        "s",
        step("submit", compensation="cancel", compensate_on_failure=True),
        step("poll", effects=False),
        choice(
            "ready",
            branch("done", probability=0.6),
            branch("stop", fail("gave_up"), probability=0.1),
            branch("pending", step("wait", effects=False), goto("poll"), default=True),
        ),
        succeed("finished"),
    )
    text = """
saga: s
steps:
  - {name: submit, compensation: cancel, compensate_on_failure: true}
  - {name: poll, effects: false}
  - choice:
      name: ready
      branches:
        - {when: done, probability: 0.6, steps: []}
        - when: stop
          probability: 0.1
          steps: [{fail: {name: gave_up}}]
        - when: pending
          default: true
          steps: [{name: wait, effects: false}, {goto: poll}]
  - succeed: {name: finished}
"""
    assert io.loads(text) == built
    assert io.loads(io.dumps(built)) == built


def test_a_map_and_a_bounded_step_equal_their_yaml() -> None:
    built = saga(
        "bulk",
        map_items("pack", step("pack_item", compensation="unpack"), items=[1, 2], concurrency=2),
        step("again", max_visits=2, effects=False),
    )
    text = """
saga: bulk
steps:
  - map:
      name: pack
      items: {dist: empirical, samples: [1, 2]}
      concurrency: 2
      steps: [{name: pack_item, compensation: unpack}]
  - {name: again, effects: false, max_visits: 2}
"""
    assert io.loads(text) == built


def test_a_sub_saga_built_in_python_equals_the_file() -> None:
    hotel = io.load(MODELS / "hotel.yaml")
    trip = io.load(MODELS / "trip_with_hotel.yaml")
    built = sub_saga(
        "book_hotel", hotel, compensation=trip.steps[1].compensation, model="hotel.yaml"
    )  # type: ignore[union-attr]
    assert built == trip.steps[1]


def test_the_dsl_checks_the_graph_rules() -> None:
    with pytest.raises(SagaDefinitionError, match=r"summing to 1"):
        saga(
            "s", step("a"), choice("c", branch("x", probability=0.5), branch("y", probability=0.2))
        )
    with pytest.raises(SagaDefinitionError, match=r"max_visits on the step a"):
        saga("s", step("a"), choice("c", branch("x", goto("a"), probability=1.0)))
    with pytest.raises(SagaDefinitionError, match=r"expected a branch\(\.\.\.\), got 'x'"):
        choice("c", "x")  # type: ignore[arg-type]


def test_set_reaches_branches_map_sizes_and_the_steps_of_a_sub_saga() -> None:
    order = io.load(MODELS / "order_with_stock_check.yaml")
    by_index = io.apply_overrides(order, ["stock_level.0=0.7"])
    assert by_index.steps[1].probabilities == pytest.approx((0.7, 0.3))  # type: ignore[union-attr]
    default = io.apply_overrides(order, ["stock_level.otherwise=0.2"])  # the rest scales
    assert default.steps[1].probabilities == pytest.approx((0.8, 0.2))  # type: ignore[union-attr]
    bulk = io.apply_overrides(
        io.load(MODELS / "bulk_order.yaml"), ["pack_items.items=4", "pack_item.failure=0.1"]
    )
    assert bulk.steps[1].items == 4 and bulk.steps[1].steps[0].failure == 0.1  # type: ignore[union-attr]
    trip = io.apply_overrides(
        io.load(MODELS / "trip_with_hotel.yaml"),
        ["confirm_room.reject=0.5", "charge_traveller.reject=0.2"],
    )
    assert trip.steps[1].saga.step("confirm_room").reject == 0.5  # type: ignore[union-attr]
    assert trip.step("charge_traveller").reject == 0.2


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("stock_level.0=1.7", "--set stock_level.0=1.7: expected a probability in [0, 1], got 1.7"),
        (
            "stock_levle.0=0.5",
            "--set stock_levle.0=0.5: unknown step or compensation 'stock_levle' (did you mean"
            " 'stock_level'?)",
        ),
        (
            "stock_level.otherwise=2",
            "--set stock_level.otherwise=2: expected a probability in [0, 1], got 2",
        ),
    ],
)
def test_a_bad_branch_override_is_one_line(assignment: str, message: str) -> None:
    order = io.load(MODELS / "order_with_stock_check.yaml")
    with pytest.raises(SagaDefinitionError) as caught:
        io.apply_overrides(order, [assignment])
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "saga: s\nsteps:\n  - map: {name: m, items: 2, steps: [{name: a}]}\n  - {name: a_1}\n",
            "x.yaml:3: steps[0].map.name: expected no other entry named a_1, got one at"
            " steps[1].name: item 1 of this map runs its a as a_1",
        ),
        (
            "saga: s\nsteps:\n  - {name: a}\n  - goto: b\n",
            "x.yaml:4: steps[1].goto: expected the name of an entry of this step list or an"
            " enclosing one, got 'b'",
        ),
        (
            "saga: s\nsteps:\n  - parallel:\n    - [{name: a}, {succeed: {name: z}}]\n",
            "x.yaml:4: steps[0].parallel[0][1].succeed: expected succeed outside parallel groups"
            " (a parallel group cannot end the whole saga while others run), got it inside one",
        ),
        (
            "saga: s\nsteps:\n  - choice:\n      name: c\n      branches:\n"
            "        - {when: x, probability: 0.5}\n        - {when: y, probability: 0.2}\n",
            "x.yaml:5: steps[0].choice.branches: expected branch probabilities summing to 1 (or a"
            " default branch), got 0.7",
        ),
        (
            "saga: s\nsteps:\n  - choice:\n      name: c\n      branches:\n"
            "        - {when: x, default: true}\n        - {when: y, default: true}\n",
            "x.yaml:7: steps[0].choice.branches[1].default: expected at most one default branch,"
            " got a second one (first at branches[0])",
        ),
    ],
)
def test_a_graph_rule_broken_in_a_file_is_one_line_at_its_line(
    text: str, error: str, tmp_path: Path
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(path)
    assert str(caught.value) == f"{tmp_path}/{error}"


def test_a_sub_saga_that_includes_itself_or_is_missing_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("saga: a\nsteps:\n  - saga: {name: to_b, model: b.yaml}\n")
    (tmp_path / "b.yaml").write_text("saga: b\nsteps:\n  - saga: {name: to_a, model: a.yaml}\n")
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(tmp_path / "a.yaml")
    cycle = f"{tmp_path}/a.yaml → {tmp_path}/b.yaml → {tmp_path}/a.yaml"
    assert str(caught.value) == (
        f"{tmp_path}/b.yaml:3: steps[0].saga.model: expected a sub-saga that does not include"
        f" itself, got the cycle {cycle}"
    )
    (tmp_path / "c.yaml").write_text(
        "saga: c\nsteps:\n  - {name: x}\n  - saga: {name: s, model: no.yaml}\n"
    )
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(tmp_path / "c.yaml")
    assert str(caught.value) == (
        f"{tmp_path}/c.yaml:4: steps[1].saga.model: expected a readable sub-saga file, got"
        f" {tmp_path}/no.yaml (no such file)"
    )
