"""The format of many instances at once (resources, reads, writes, isolation, instances,
coordinator): read, written back and built from Python alike, and the machine's crash edges."""

from __future__ import annotations

import pytest

from sagasim import io
from sagasim.io import dsl
from sagasim.machine import compile_saga
from sagasim.model import Coordinator, Resource, Saga, Step, Write

SEATS = """\
saga: seat_booking
resources:
  seats: {initial: 100}
  points: {isolation: semantic_lock, on_locked: fail}
isolation: {seats: version}
instances: 3
coordinator:
  {crash: 0.002, restart: {dist: exponential, mean: 4s}, recovery: forward, max_crashes: 2}
arrivals: {rate: 20/s}
steps:
  - {name: count_seats, effects: false, reads: [seats]}
  - name: book_seat
    writes: {seats: {mode: set, by: -1}, points: add}
    compensation: {name: release_seat, writes: {seats: set}}
  - {name: charge_card, kind: pivot, reject: 0.2}
"""


def test_every_key_is_read_into_the_model() -> None:
    saga = io.loads(SEATS)
    assert saga.resources == (
        Resource(name="seats", initial=100.0, isolation="version"),
        Resource(name="points", isolation="semantic_lock", on_locked="fail"),
    )
    assert saga.instances == 3
    assert saga.coordinator is not None
    assert (saga.coordinator.crash, saga.coordinator.recovery) == (0.002, "forward")
    assert (saga.coordinator.max_crashes, saga.coordinator.restart.mean_ms) == (2, 4000.0)
    book = saga.step("book_seat")
    assert book.writes == (
        Write(resource="seats", mode="set", by=-1.0),
        Write(resource="points", mode="add", by=1.0),
    )
    assert book.compensation is not None
    assert book.compensation.writes == (Write(resource="seats"),)
    assert saga.step("count_seats").reads == ("seats",)


def test_a_model_written_back_reads_as_the_same_model() -> None:
    saga = io.loads(SEATS)
    again = io.loads(io.dumps(saga))
    assert again == saga
    data = io.to_dict(saga)
    assert "isolation" not in data  # written per resource, the one way
    assert data["resources"]["seats"] == {"initial": 100, "isolation": "version"}
    assert data["coordinator"]["restart"] == {"dist": "exponential", "mean": "4s"}


def test_a_model_without_the_keys_writes_none_of_them() -> None:
    saga = io.loads("saga: s\nsteps: [{name: a}]\n")
    assert io.to_dict(saga) == {"saga": "s", "steps": [{"name": "a"}]}


def test_the_python_twin_equals_the_yaml_model() -> None:
    built = dsl.saga(
        "seat_booking",
        dsl.step("count_seats", effects=False, reads=["seats"]),
        dsl.step(
            "book_seat",
            writes={"seats": {"mode": "set", "by": -1}, "points": "add"},
            compensation=dsl.compensation("release_seat", writes={"seats": "set"}),
        ),
        dsl.step("charge_card", kind="pivot", reject=0.2),
        resources={"seats": {"initial": 100}, "points": {"on_locked": "fail"}},
        isolation={"seats": "version", "points": "semantic_lock"},
        instances=3,
        coordinator={
            "crash": 0.002,
            "restart": {"dist": "exponential", "mean": "4s"},
            "recovery": "forward",
            "max_crashes": 2,
        },
        arrivals="20/s",
    )
    assert built == io.loads(SEATS)


def test_conflicts_can_fail_a_step_only_where_instances_overlap() -> None:
    saga = io.loads(SEATS)
    book, count = saga.step("book_seat"), saga.step("count_seats")
    assert saga.can_conflict(book)  # a set write under version
    assert not saga.can_conflict(count)  # a read under version is never refused
    assert book.compensation is not None and not saga.can_conflict(book.compensation)
    assert "fail" in saga.possible_events(book)
    alone = Saga(
        name=saga.name, steps=saga.steps, resources=saga.resources, coordinator=saga.coordinator
    )
    assert not alone.can_conflict(book)  # one instance, no arrivals: nothing to conflict with
    assert "fail" not in alone.possible_events(book)


@pytest.mark.parametrize(
    ("isolation", "on_locked", "refused"),
    [
        ("none", "wait", False),
        ("reread", "wait", True),
        ("version", "wait", True),
        ("semantic_lock", "wait", False),  # it waits: the attempt is slower, never refused
        ("semantic_lock", "fail", True),
    ],
)
def test_which_countermeasures_can_refuse_a_write(
    isolation: str, on_locked: str, refused: bool
) -> None:
    saga = io.loads(
        "saga: s\ninstances: 2\n"
        f"resources: {{r: {{isolation: {isolation}, on_locked: {on_locked}}}}}\n"
        "steps: [{name: w, writes: {r: set}}]\n"
    )
    assert saga.can_conflict(saga.step("w")) is refused


def crash_edges(recovery: str) -> dict[str, str]:
    saga = io.loads(
        f"saga: s\ncoordinator: {{crash: 0.01, recovery: {recovery}}}\nsteps:\n"
        "  - {name: a, compensation: undo_a}\n"
        "  - {name: b, compensation: undo_b, failure: 0.1, retry: {attempts: 2}}\n"
        "  - {name: c, kind: pivot}\n"
        "  - {name: d}\n"
    )
    machine = compile_saga(saga)
    return {t.source: t.target for t in machine.transitions if t.event.endswith(".crash")}


def test_forward_recovery_re_runs_the_call_in_doubt() -> None:
    assert crash_edges("forward") == {s: s for s in ("a", "b", "c", "d", "undo_a")}


def test_backward_recovery_compensates_the_call_in_doubt_first() -> None:
    edges = crash_edges("backward")
    assert edges["a"] == "undo_a"  # a's own compensation, though a's outcome is unknown
    assert edges["b"] == "undo_b"  # b's, then a's
    assert edges["c"] == "undo_b"  # the pivot in doubt has not committed: undo what is owed
    assert edges["d"] == "d"  # past the pivot recovery can only go forward
    assert edges["undo_b"] == "undo_b" and edges["undo_a"] == "undo_a"  # driven to its end


def test_the_library_class_takes_the_crash_edges() -> None:
    saga = io.loads(
        "saga: s\ncoordinator: {crash: 0.01}\nsteps:\n"
        "  - {name: a, compensation: undo_a}\n  - {name: b}\n"
    )
    machine = compile_saga(saga)
    live = machine.instantiate(saga)
    live.send("a.ok")
    live.send("b.crash")
    assert [s.id for s in live.configuration] == ["undo_a"]


def test_no_crash_edges_without_a_crash_rate() -> None:
    saga = Saga(
        name="s",
        steps=io.loads("saga: s\nsteps: [{name: a}]\n").steps,
        coordinator=Coordinator(crash=0.0),
    )
    assert not any(t.event.endswith(".crash") for t in compile_saga(saga).transitions)


def test_numbers_given_in_python_as_ints_are_written_back() -> None:
    # ints, as people write them in Python (the YAML reader gives floats)
    book = Step(name="book", writes=(Write(resource="seats", by=-1),))
    saga = Saga(name="s", steps=(book,), resources=(Resource(name="seats", initial=5),))
    text = io.dumps(saga)
    assert "seats: {initial: 5}" in text and "by: -1" in text
    again = io.loads(text)
    assert again.resources[0].initial == 5 and again.step("book").writes[0].by == -1
