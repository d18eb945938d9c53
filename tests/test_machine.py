"""The compiled machine: its states and transitions follow the model, the library class and
the transition table taken from it agree, and classes are built once per shape."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings

from sagasim.machine import Machine, compile_saga, core
from sagasim.machine.orchestration import RETRY_GUARD
from sagasim.model import Compensation, Parallel, Retry, Saga, Step

from .strategies import sagas

MODELS = sorted(Path(__file__).parent.parent.joinpath("models").rglob("*.yaml"))


def _expected_sequential(saga: Saga, machine: Machine) -> None:
    """Check a sequential saga's machine against the model, step by step."""
    steps = [e for e in saga.steps if isinstance(e, Step)]
    assert len(steps) == len(saga.steps)
    names = [s.name for s in steps]
    assert machine.initial == names[0]
    pivot = saga.pivot_index
    for i, step in enumerate(steps):
        assert machine.states[step.name].running == (step.name,)
        assert machine.states[step.name].phase == "forward"
        ok = machine.step(step.name, f"{step.name}.ok")
        assert ok.target == (names[i + 1] if i + 1 < len(names) else "committed")
        events = {t.event for t in machine.transitions if t.source == step.name}
        assert (f"{step.name}.reject" in events) == (step.reject > 0)
        assert (f"{step.name}.fail" in events) == (step.failure > 0)
        assert (f"{step.name}.timeout" in events) == (step.p_timeout > 0)
        retry_loops = {
            t.event for t in machine.table.get((step.name, f"{step.name}.fail"), ()) if t.is_retry
        }
        assert bool(retry_loops) == (step.failure > 0 and step.retry.attempts != 1)
        if step.reject > 0:
            failed = machine.step(step.name, f"{step.name}.reject")
            if pivot is not None and i > pivot:
                assert failed.target == "stuck"
            else:
                undo = [s.compensation.name for s in reversed(steps[:i]) if s.compensation]
                leak = any(s.effects and s.compensation is None for s in steps[:i])
                if undo and saga.compensation_order == "parallel":
                    assert set(machine.states[failed.target].running) == set(undo)
                elif undo:
                    assert machine.states[failed.target].running == (undo[0],)
                else:
                    assert failed.target == ("leaked" if leak else "compensated")


@settings(max_examples=80, deadline=None)
@given(sagas(parallel=False))
def test_sequential_machines_follow_the_model(saga: Saga) -> None:
    _expected_sequential(saga, compile_saga(saga))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_compiles_to_the_machine_it_describes(path: Path) -> None:
    from sagasim.io import load

    saga = core(load(path))  # a map's items are actions of their own
    machine = compile_saga(saga)
    assert set(machine.terminals.values()) <= {"committed", "compensated", "leaked", "stuck"}
    assert "committed" in machine.terminals.values()
    running = {a for info in machine.states.values() for a in info.running}
    every = {s.name for s in saga.all_steps()}
    assert every <= running  # every step runs in some state
    for step in saga.all_steps():
        if step.compensation is not None and not _after_pivot(saga, step):
            assert step.compensation.name in running
    if all(isinstance(e, Step) for e in saga.steps):
        _expected_sequential(saga, machine)


def _after_pivot(saga: Saga, step: Step) -> bool:
    pivot = saga.pivot_index
    if pivot is None:
        return False
    later = [
        s.name for e in saga.steps[pivot + 1 :] for s in Saga(name="x", steps=(e,)).all_steps()
    ]
    return step.name in later


def test_parallel_group_product_and_halting() -> None:
    saga = Saga(
        name="p",
        steps=(
            Parallel(
                branches=(
                    (
                        Step(name="a1", compensation=Compensation(name="u_a1")),
                        Step(name="a2", reject=0.1, compensation=Compensation(name="u_a2")),
                    ),
                    (Step(name="b1", reject=0.1, compensation=Compensation(name="u_b1")),),
                )
            ),
        ),
    )
    m = compile_saga(saga)
    assert m.initial == "a1__b1"
    assert m.step("a1__b1", "a1.ok").target == "a2__b1"
    assert m.step("a1__b1", "b1.ok").target == "a1"
    # b1 rejected while a1 runs: a1 is awaited, then compensated
    halting = m.step("a1__b1", "b1.reject").target
    assert m.states[halting].phase == "halting" and m.states[halting].running == ("a1",)
    assert m.states[m.step(halting, "a1.ok").target].running == ("u_a1",)
    # a2 rejected after b1 finished: both branches compensate concurrently
    after = m.step("a2", "a2.reject").target
    assert m.states[after].running == ("u_a1", "u_b1")


def test_parallel_compensation_order_starts_every_compensation_at_once() -> None:
    steps = tuple(Step(name=n, compensation=Compensation(name=f"undo_{n}")) for n in "abc")
    saga = Saga(
        name="pc", compensation_order="parallel", steps=(*steps, Step(name="d", reject=0.5))
    )
    m = compile_saga(saga)
    target = m.step("d", "d.reject").target
    assert set(m.states[target].running) == {"undo_a", "undo_b", "undo_c"}


def test_classes_are_cached_by_shape_not_numbers() -> None:
    base = Saga(name="c", steps=(Step(name="a", failure=0.1, retry=Retry(attempts=3)),))
    other = replace(base, steps=(Step(name="a", failure=0.4, retry=Retry(attempts=5)),))
    assert compile_saga(base) is compile_saga(other)
    once = replace(base, steps=(Step(name="a", failure=0.4),))
    assert compile_saga(once) is not compile_saga(base)


@settings(max_examples=40, deadline=None)
@given(sagas())
def test_the_library_machine_and_the_table_agree_on_random_walks(saga: Saga) -> None:
    machine = compile_saga(saga)
    for seed in range(5):
        rng = random.Random(seed)
        live = machine.instantiate(saga)
        state = machine.initial
        attempts = {a: 1 for a in machine.states[state].running}
        for _ in range(200):
            info = machine.states[state]
            if info.outcome:
                break
            action = rng.choice(info.running)
            kinds = sorted(
                {t.kind for t in machine.transitions if t.source == state and t.action == action}
            )
            kind = rng.choice(kinds)
            limit = saga.action(action).retry.attempts
            left = limit is None or attempts[action] < limit
            edge = machine.step(state, f"{action}.{kind}", retry_left=left)
            live.send(edge.event)
            (live_state,) = live.configuration
            assert live_state.id == edge.target
            target = machine.states[edge.target]
            attempts = {
                a: (attempts[a] + (edge.guard == RETRY_GUARD and a == action))
                if a in info.running
                else 1
                for a in target.running
            }
            state = edge.target
