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
