"""check with many instances: interleavings over shared resources reach exactly the isolation
anomalies docs/concurrency.md defines, each countermeasure removes what its table says, traces
replay, and a brute-force explorer written plainly here (no symmetry reduction, explicit values
and versions) agrees with :func:`explore_instances` on generated sagas."""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sagasim.exceptions import StateSpaceLimitError
from sagasim.machine import compile_saga
from sagasim.machine.orchestration import next_attempts
from sagasim.model import (
    Arrivals,
    Branch,
    Choice,
    Compensation,
    Exponential,
    Resource,
    Retry,
    Saga,
    Step,
    Write,
    validate,
)
from sagasim.verify import check, explore_instances
from sagasim.verify.countermeasures import applied

from .test_cli import run

ANOMALIES = ("lost_update", "dirty_read", "stale_compensation")


def seat_booking(
    isolation: str = "none",
    mode: str = "set",
    instances: int = 2,
    on_locked: str = "wait",
    attempts: int = 1,
) -> Saga:
    """count_seats reads seats, book_seat writes it (compensation release_seat) with
    ``attempts`` attempts, charge_card is the pivot and can be declined."""
    seats = Resource(
        name="seats",
        initial=10,
        isolation=isolation,  # type: ignore[arg-type]
        on_locked=on_locked,  # type: ignore[arg-type]
    )
    saga = Saga(
        name="seat_booking",
        resources=(seats,),
        instances=instances,
        steps=(
            Step(name="count_seats", effects=False, reads=("seats",)),
            Step(
                name="book_seat",
                writes=(Write(resource="seats", mode=mode, by=-1),),  # type: ignore[arg-type]
                compensation=Compensation(name="release_seat"),
                retry=Retry(attempts=attempts),
            ),
            Step(name="charge_card", kind_declared="pivot", reject=0.2),
        ),
    )
    validate(saga)
    return saga


# --- the oracle: every instance apart, explicit values, versions and last reads ------------------


@dataclass(frozen=True)
class Instance:
    sid: str
    attempts: tuple[int, ...]
    last: tuple[tuple[float, int] | None, ...]  # per resource: (value, version) last read
    #: (step, resource, version written, value replaced, by, readers), one per write not undone
    records: tuple[tuple[str, int, int, float, float, frozenset[int]], ...]
    ended: bool


@dataclass(frozen=True)
class Value:
    value: float
    version: int
    log: tuple[int, ...]  # log[v - 1]: the instance whose write made version v
    writer: tuple[int, str] | None  # the instance and step whose step write is current
    holder: int | None  # who holds the semantic lock


State = tuple[tuple[Instance, ...], tuple[Value, ...], frozenset[tuple[str, str]]]


class Oracle:
    """docs/concurrency.md, as literally as it reads, over the compiled machine."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga
        self.machine = compile_saga(saga)
        self.actions = {a.name: a for a in saga.actions()}
        self.resources = saga.all_resources()
        self.index = {r.name: i for i, r in enumerate(self.resources)}
        self.undoes = {s.compensation.name: s for s in saga.all_steps() if s.compensation}
        self.mode = {w.resource: w.mode for a in saga.actions() for w in a.writes}
        alone = replace(saga, instances=1)
        self.own_fail = {name: alone.can_fail(a) for name, a in self.actions.items()}

    def start(self) -> State:
        sid = self.machine.initial
        first = Instance(
            sid,
            tuple(1 for _ in self.machine.states[sid].running),
            (None,) * len(self.resources),
            (),
            False,
        )
        values = tuple(Value(r.initial, 0, (), None, None) for r in self.resources)
        return ((first,) * self.saga.instances, values, frozenset())

    def touched(self, step: Step) -> set[int]:
        return {self.index[n] for n in step.reads} | {self.index[w.resource] for w in step.writes}

    def held(self, values: tuple[Value, ...], r: int, me: int) -> bool:
        return self.resources[r].isolation == "semantic_lock" and values[r].holder not in (None, me)

    def moves(self, state: State) -> Iterator[tuple[int, str, State]]:
        instances = state[0]
        deciding = [i for i, x in enumerate(instances) if self.decides(x)]
        for i in deciding or range(len(instances)):
            yield from self.moves_of(state, i)

    def decides(self, x: Instance) -> bool:
        return not x.ended and self.machine.states[x.sid].decision is not None

    def moves_of(self, state: State, i: int) -> Iterator[tuple[int, str, State]]:
        instances, values, found = state
        me = instances[i]
        if me.ended:
            return
        info = self.machine.states[me.sid]
        if info.decision is not None:
            for t in self.machine.transitions_from(me.sid):
                yield i, t.event, self.go(state, i, t.event, me.attempts, None)
            return
        for pos, name in enumerate(info.running):
            action = self.actions[name]
            step = action if isinstance(action, Step) else None
            for kind in self.saga.possible_events(action):
                if kind == "fail" and not self.own_fail[name]:
                    continue
                touched = self.touched(step) if step else set()
                waits = [r for r in touched if self.resources[r].on_locked == "wait"]
                if kind != "timeout" and any(self.held(values, r, i) for r in waits):
                    continue
                if kind == "ok" and step is not None:
                    refused = any(
                        self.held(values, r, i)
                        for r in touched
                        if self.resources[r].on_locked == "fail"
                    )
                    stale = [
                        self.index[w.resource]
                        for w in step.writes
                        if w.mode == "set"
                        and self.resources[self.index[w.resource]].isolation
                        in ("reread", "version")
                        and w.resource not in step.reads
                        and self.stale(me, values, self.index[w.resource], i)
                    ]
                    if refused or stale:  # no effect; a reread refreshes the last read
                        last = list(me.last)
                        for r in stale if not refused else ():
                            last[r] = (values[r].value, values[r].version)
                        mine = replace(me, last=tuple(last))
                        instances_after = tuple(
                            mine if k == i else x for k, x in enumerate(instances)
                        )
                        after = (instances_after, values, found)
                        yield (
                            i,
                            f"{name}.conflict",
                            self.go(after, i, f"{name}.fail", me.attempts, pos),
                        )
                        continue
                landed = state
                if kind == "ok":
                    landed = self.land(state, i, action)
                yield i, f"{name}.{kind}", self.go(landed, i, f"{name}.{kind}", me.attempts, pos)

    def stale(self, me: Instance, values: tuple[Value, ...], r: int, i: int) -> bool:
        """Another instance wrote ``r`` after this one's last read of it."""
        last = me.last[r]
        return last is not None and any(who != i for who in values[r].log[last[1] :])

    def go(
        self, state: State, i: int, event: str, attempts: tuple[int, ...], pos: int | None
    ) -> State:
        """Instance ``i`` takes ``event`` on the machine (the attempt numbers decide retries)."""
        instances, values, found = state
        me = instances[i]
        name = event.rsplit(".", 1)[0]
        limit = self.actions[name].retry.attempts if name in self.actions else None
        left = pos is None or limit is None or attempts[pos] < limit
        t = self.machine.step(me.sid, event, retry_left=left)
        retried = name if t.is_retry and limit is not None else None
        new_attempts = next_attempts(
            attempts, self.machine.states[me.sid], self.machine.states[t.target], retried
        )
        ended = self.machine.states[t.target].outcome is not None
        moved = replace(me, sid=t.target, attempts=new_attempts, ended=ended)
        if ended:  # locks are released when the saga ends
            values = tuple(replace(v, holder=None) if v.holder == i else v for v in values)
        return (tuple(moved if k == i else x for k, x in enumerate(instances)), values, found)

    def edit(self, state: State, i: int, change: Any) -> State:
        instances, values, found = state
        insts = [dict(x.__dict__) for x in instances]
        for x in insts:
            x["records"] = {(s, r): rest for s, r, *rest in x["records"]}
            x["last"] = list(x["last"])
        vals = [dict(v.__dict__) for v in values]
        new_found = set(found)
        change(insts, vals, new_found)
        frozen = []
        for x in insts:
            records = tuple(sorted((s, r, *rest) for (s, r), rest in x["records"].items()))
            frozen.append(Instance(x["sid"], x["attempts"], tuple(x["last"]), records, x["ended"]))  # type: ignore[arg-type]
        return (tuple(frozen), tuple(Value(**v) for v in vals), frozenset(new_found))

    def land(self, state: State, i: int, action: Any) -> State:
        """What an attempt of ``action`` by instance ``i`` does when it ends ``ok``."""

        def change(
            insts: list[dict[str, Any]], vals: list[dict[str, Any]], found: set[Any]
        ) -> None:
            me = insts[i]
            if isinstance(action, Step):
                for name in action.reads:
                    r = self.index[name]
                    v = vals[r]
                    me["last"][r] = (v["value"], v["version"])
                    writer = v["writer"]
                    if self.mode.get(name) == "add":  # a counter holds every write not undone
                        for k, other in enumerate(insts):
                            for (_, where), record in other["records"].items():
                                if where == r and k != i and not other["ended"]:
                                    record[3] = record[3] | {i}
                    elif writer is not None and writer[0] != i and not insts[writer[0]]["ended"]:
                        record = insts[writer[0]]["records"][(writer[1], r)]
                        record[3] = record[3] | {i}
                for w in action.writes:
                    r = self.index[w.resource]
                    v = vals[r]
                    last = me["last"][r]
                    if w.mode == "set":
                        if last is not None and any(who != i for who in v["log"][last[1] :]):
                            found.add(("lost_update", w.resource))
                        base = last[0] if last is not None else v["value"]
                        new = base + w.by
                        me["last"][r] = (new, v["version"] + 1)
                    else:
                        new = v["value"] + w.by
                    me["records"][(action.name, r)] = [
                        v["version"] + 1,
                        v["value"],
                        w.by,
                        frozenset(),
                    ]
                    vals[r] = dict(
                        value=new,
                        version=v["version"] + 1,
                        log=(*v["log"], i),
                        writer=(i, action.name),
                        holder=v["holder"],
                    )
                for r in self.touched(action):
                    if self.resources[r].isolation == "semantic_lock":
                        vals[r]["holder"] = i
                return
            step = self.undoes.get(action.name)
            for w in step.writes if step is not None else ():
                r = self.index[w.resource]
                record = me["records"].pop((step.name, r), None)
                if record is None:
                    continue
                version, replaced, by, readers = record
                if readers:
                    found.add(("dirty_read", w.resource))
                v = vals[r]
                if w.mode == "set":
                    over = any(who != i for who in v["log"][version:])
                    if over and self.resources[r].isolation != "version":
                        found.add(("stale_compensation", w.resource))
                    value = (
                        v["value"] - by
                        if over and self.resources[r].isolation == "version"
                        else replaced
                    )
                else:
                    value = v["value"] - by
                vals[r] = dict(
                    value=value,
                    version=v["version"] + 1,
                    log=(*v["log"], i),
                    writer=None,
                    holder=v["holder"],
                )

        return self.edit(state, i, change)

    def waiting(self, state: State) -> set[str]:
        instances, values, _ = state
        names = set()
        for i, x in enumerate(instances):
            if x.ended:
                continue
            for name in self.machine.states[x.sid].running:
                action = self.actions[name]
                if isinstance(action, Step):
                    for r in self.touched(action):
                        if self.resources[r].on_locked == "wait" and self.held(values, r, i):
                            names.add(self.resources[r].name)
        return names

    def explore(self) -> tuple[int, dict[tuple[str, str], int]]:
        """(states, the fewest events to each (kind, resource) reached)."""
        start = self.start()
        depth = {start: 0}
        queue = deque([start])
        reached: dict[tuple[str, str], int] = {}
        while queue:
            state = queue.popleft()
            for found in state[2]:
                reached.setdefault(found, depth[state])
            moved = False
            for _, _, target in self.moves(state):
                moved = True
                if target not in depth:
                    depth[target] = depth[state] + 1
                    queue.append(target)
            if not moved and not all(x.ended for x in state[0]):
                for name in self.waiting(state):
                    reached.setdefault(("deadlock", name), depth[state])
        return len(depth), reached

    def replay(self, trace: tuple[str, ...]) -> list[State]:
        """The states a trace of ``INSTANCE:ACTION.KIND`` events passes through; each event is
        also sent to that instance's own live python-statemachine, which must agree."""
        state = self.start()
        states = [state]
        live = [self.machine.instantiate(self.saga) for _ in range(self.saga.instances)]
        for item in trace:
            label, event = item.split(":")
            i = int(label) - 1
            nexts = [s for k, e, s in self.moves(state) if (k, e) == (i, event)]
            assert nexts, f"{item} cannot happen after {states[-1]}"
            state = nexts[0]
            states.append(state)
            live[i].send(event.replace(".conflict", ".fail"))
            (current,) = live[i].configuration
            assert current.id == state[0][i].sid
        return states


def reachable(space: Any) -> set[tuple[str, str]]:
    return {key for key in space.first if key[1]}


# --- the seat booking ----------------------------------------------------------------------------


def test_the_seat_booking_reaches_every_anomaly_without_isolation() -> None:
    report = check(seat_booking())
    assert not report.consistent
    kinds = {v.outcome: v.trace for v in report.violations}
    assert set(kinds) == set(ANOMALIES)
    assert kinds["lost_update"] == (
        "1:count_seats.ok",
        "2:count_seats.ok",
        "1:book_seat.ok",
        "2:book_seat.ok",
    )
    oracle = Oracle(seat_booking())
    _, fewest = oracle.explore()
    for kind, trace in kinds.items():
        states = oracle.replay(trace)
        assert (kind, "seats") in states[-1][2] and (kind, "seats") not in states[-2][2], kind
        assert len(trace) == fewest[(kind, "seats")], kind  # the shortest
    data = report.to_dict()["interleaving"]
    assert data["instances"] == 2 and data["states"] == report.interleaving.states
    assert set(data["anomalies"]) == {*ANOMALIES, "deadlock"}
    assert all(data["anomalies"][k] > 0 for k in ANOMALIES) and data["anomalies"]["deadlock"] == 0


#: docs/concurrency.md's table: what is left with each countermeasure (and add writes).
LEFT = {
    ("none", "set"): set(ANOMALIES),
    ("none", "add"): {"dirty_read"},
    ("reread", "set"): {"dirty_read", "stale_compensation"},
    ("version", "set"): {"dirty_read"},
    ("semantic_lock", "set"): set(),
    ("semantic_lock", "add"): set(),
}


@pytest.mark.parametrize(("isolation", "mode"), list(LEFT))
def test_each_countermeasure_removes_what_the_table_says(isolation: str, mode: str) -> None:
    saga = seat_booking(isolation, mode)
    report = check(saga)
    found = {v.outcome for v in report.violations}
    assert found == LEFT[(isolation, mode)]
    assert report.consistent == (not found)
    assert {kind for kind, _ in reachable(report.interleaving)} == found
    oracle = Oracle(saga)
    for v in report.violations:
        assert (v.outcome, "seats") in oracle.replay(v.trace)[-1][2]


def test_a_refused_attempt_rereads_so_that_its_retry_can_succeed() -> None:
    once = seat_booking("reread")
    # book_seat has one attempt: a conflict fails it for good, and there is nothing to undo
    race = ("1:count_seats.ok", "2:count_seats.ok", "1:book_seat.ok", "2:book_seat.conflict")
    final = Oracle(once).replay(race)[-1]
    assert final[0][1].sid == "compensated" and not final[2] and final[1][0].value == 9
    assert explore_instances(once).follow(race) == (set(), False)
    twice = seat_booking("reread", attempts=2)
    final = Oracle(twice).replay((*race, "2:book_seat.ok"))[-1]
    assert not final[2] and final[1][0].value == 8  # the retry wrote from the value reread
    space = explore_instances(twice)
    assert space.follow((*race, "2:book_seat.ok")) == (set(), False)
    assert "lost_update" not in space.reachable()


def test_on_locked_fail_refuses_instead_of_waiting() -> None:
    saga = seat_booking("semantic_lock")
    locked = replace(saga, resources=(replace(saga.resources[0], on_locked="fail"),))
    report = check(locked)
    assert report.consistent and report.interleaving is not None
    assert report.interleaving.ends["deadlock"] == 0
    oracle = Oracle(locked)
    states = oracle.replay(("1:count_seats.ok", "2:count_seats.conflict"))
    assert states[-1][0][1].sid == "compensated"  # count_seats has one attempt


def test_the_countermeasure_lint_names_the_cheapest_that_removes_each() -> None:
    messages = [w.message for w in check(seat_booking()).warnings if w.code == "countermeasure"]
    assert messages == [
        "lost_update on seats: add writes (mode: add on every write of seats) remove it "
        "(re-checked with 2 instances)",
        "dirty_read on seats: isolation semantic_lock removes it (re-checked with 2 instances);"
        " without waits: write after the pivot, so that no write is ever undone (Richardson's"
        " pessimistic view)",
        "stale_compensation on seats: add writes (mode: add on every write of seats) remove it "
        "(re-checked with 2 instances)",
    ]
    # and each message is true: the named countermeasure applied, the anomaly is gone
    base = seat_booking()
    for kind, measure in (("lost_update", "add"), ("dirty_read", "semantic_lock")):
        assert (kind, "seats") not in explore_instances(applied(base, "seats", measure)).first
    reread = check(seat_booking("reread")).warnings
    assert "stale_compensation on seats: add writes" in " ".join(w.message for w in reread)


def test_add_writes_are_not_offered_for_a_dirty_read() -> None:
    # a counter read by another instance before its writer compensates: only a lock helps
    saga = seat_booking(mode="add")
    (message,) = [w.message for w in check(saga).warnings if w.code == "countermeasure"]
    assert message.startswith("dirty_read on seats: isolation semantic_lock removes it")


# --- deadlock ------------------------------------------------------------------------------------


def opposite_orders(on_locked: str = "wait", timeout: bool = False) -> Saga:
    """A choice takes the two locked resources in one order or the other (the steps may time
    out: a timeout fires even while a step waits for a lock)."""
    resources = tuple(
        Resource(name=n, isolation="semantic_lock", on_locked=on_locked)  # type: ignore[arg-type]
        for n in ("a", "b")
    )

    def take(name: str, resource: str) -> Step:
        latency = {"latency": Exponential(mean_ms=10.0), "timeout_ms": 15.0} if timeout else {}
        return Step(
            name=name,
            writes=(Write(resource=resource, mode="add"),),
            compensation=Compensation(name=f"undo_{name}"),
            retry=Retry(attempts=2),
            **latency,  # type: ignore[arg-type]
        )

    saga = Saga(
        name="opposite",
        resources=resources,
        instances=2,
        steps=(
            Choice(
                name="order",
                branches=(
                    Branch(when="ab", probability=0.5, steps=(take("a1", "a"), take("b1", "b"))),
                    Branch(when="ba", default=True, steps=(take("b2", "b"), take("a2", "a"))),
                ),
            ),
            Step(name="pay", kind_declared="pivot"),
        ),
    )
    validate(saga)
    return saga


def test_locks_taken_in_opposite_orders_deadlock() -> None:
    saga = opposite_orders()
    report = check(saga)
    assert not report.consistent
    (violation,) = report.violations
    assert violation.outcome == "deadlock"
    states = Oracle(saga).replay(violation.trace)
    assert not any(True for _ in Oracle(saga).moves(states[-1]))  # nothing can move
    assert not all(x.ended for x in states[-1][0])
    _, fewest = Oracle(saga).explore()
    assert len(violation.trace) == min(n for (k, _), n in fewest.items() if k == "deadlock") == 4
    assert report.to_dict()["interleaving"]["anomalies"]["deadlock"] >= 1
    messages = [w.message for w in report.warnings if w.code == "countermeasure"]
    assert messages and all(m.startswith("deadlock on ") for m in messages)
    assert "on_locked: fail removes it (re-checked with 2 instances)" in messages[0]


@pytest.mark.parametrize("saga", [opposite_orders("fail"), opposite_orders(timeout=True)])
def test_refusing_or_timing_out_ends_the_deadlock(saga: Saga) -> None:
    report = check(saga, fail_on={"deadlock"})
    assert report.consistent, report.to_text()
    assert report.interleaving is not None and report.interleaving.ends["deadlock"] == 0


def rewritten(look: bool = True) -> Saga:
    """Two writes of one register, only the first undone: a read of the second is not dirty
    when the first is compensated (the reader read the second's value). Without ``look`` the
    first write is the instance's first read of the register (an atomic read-modify-write)."""
    saga = Saga(
        name="rewritten",
        resources=(Resource(name="r"),),
        instances=2,
        steps=(
            *([Step(name="look", effects=False, reads=("r",))] if look else []),
            Step(name="w1", writes=(Write(resource="r"),), compensation=Compensation(name="u1")),
            Step(name="w2", writes=(Write(resource="r"),)),
            Step(name="pay", kind_declared="pivot", reject=0.5),
        ),
    )
    validate(saga)
    return saga


def test_a_read_is_dirty_only_when_the_write_it_read_is_undone() -> None:
    oracle = Oracle(rewritten())
    clean = ("1:look.ok", "1:w1.ok", "1:w2.ok", "2:look.ok", "1:pay.reject", "1:u1.ok")
    assert not {k for k, _ in oracle.replay(clean)[-1][2]} & {"dirty_read"}
    dirty = ("1:look.ok", "1:w1.ok", "2:look.ok", "1:w2.ok", "1:pay.reject", "1:u1.ok")
    assert ("dirty_read", "r") in oracle.replay(dirty)[-1][2]
    space = explore_instances(rewritten())
    assert space.trace("dirty_read") == dirty
    assert space.follow(dirty) == ({("dirty_read", "r")}, False)
    assert space.follow(clean) == (set(), False)
    with pytest.raises(ValueError, match="cannot happen"):
        space.follow(("1:w1.ok",))


def counter_then_look() -> Saga:
    """Add to a counter, then read it: the read sees every write not undone."""
    saga = Saga(
        name="counter",
        resources=(Resource(name="n"),),
        instances=2,
        steps=(
            Step(
                name="add",
                writes=(Write(resource="n", mode="add"),),
                compensation=Compensation(name="sub"),
            ),
            Step(name="look", effects=False, reads=("n",)),
            Step(name="pay", kind_declared="pivot", reject=0.5),
        ),
    )
    validate(saga)
    return saga


def test_a_read_of_a_counter_is_dirty_against_every_write_in_it() -> None:
    # 1 reads after its own add, but 2's add is in the value too, and 2 then undoes it
    trace = ("2:add.ok", "1:add.ok", "1:look.ok", "2:look.ok", "2:pay.reject", "2:sub.ok")
    final = Oracle(counter_then_look()).replay(trace)[-1]
    assert ("dirty_read", "n") in final[2] and final[1][0].value == 1
    assert explore_instances(counter_then_look()).follow(trace) == ({("dirty_read", "n")}, False)


def test_a_write_is_the_last_read_of_the_one_who_wrote() -> None:
    # w1 reads and writes at once (nothing to lose); w2 builds on w1's value, which 2 overwrote
    space = explore_instances(rewritten(look=False))
    assert space.trace("lost_update") == ("1:w1.ok", "2:w1.ok", "1:w2.ok")


# --- what does not change ------------------------------------------------------------------------


def test_one_instance_reports_nothing_new_but_a_hint() -> None:
    report = check(seat_booking(instances=1))
    assert report.interleaving is None and "interleaving" not in report.to_dict()
    assert report.consistent
    hints = [w for w in report.warnings if w.code == "single-instance"]
    assert len(hints) == 1 and "set instances: 2" in hints[0].message
    with_arrivals = replace(seat_booking(instances=1), arrivals=Arrivals(rate_per_s=5.0))
    assert not [w for w in check(with_arrivals).warnings if w.code == "single-instance"]


def test_instances_without_resources_change_nothing() -> None:
    saga = Saga(
        name="t",
        steps=(Step(name="a", compensation=Compensation(name="u")), Step(name="b", reject=0.5)),
    )
    alone, many = check(saga).to_dict(), check(replace(saga, instances=3)).to_dict()
    assert alone == many and "interleaving" not in many


def test_a_choreography_is_interleaved_on_its_orchestrated_form() -> None:
    saga = replace(seat_booking(), coordination="choreography")
    report = check(saga)
    assert {v.outcome for v in report.violations} >= set(ANOMALIES)
    codes = [w.code for w in report.warnings]
    assert "interleaved-orchestration" in codes


def test_too_many_states_says_how_to_shrink() -> None:
    with pytest.raises(StateSpaceLimitError, match="fewer instances, fewer retries"):
        explore_instances(seat_booking(instances=3), max_states=50)


def test_three_instances_need_more_states_than_two() -> None:
    two, three = explore_instances(seat_booking()), explore_instances(seat_booking(instances=3))
    assert three.states > two.states
    assert reachable(two) == reachable(three)


# --- the oracle on generated sagas ---------------------------------------------------------------


@st.composite
def shared_sagas(draw: st.DrawFn) -> Saga:
    """2 instances, 1–2 resources, 2–4 steps on each path (one choice may run different steps
    in one branch and the other); random reads, writes, modes, isolations and timeouts."""
    names = ["r", "s"][: draw(st.integers(1, 2))]
    mode = {n: draw(st.sampled_from(["set", "add"])) for n in names}
    resources = tuple(
        Resource(
            name=n,
            isolation=draw(st.sampled_from(["none", "none", "reread", "version", "semantic_lock"])),
            on_locked=draw(st.sampled_from(["wait", "fail"])),
        )
        for n in names
    )
    count = draw(st.integers(2, 4))
    pivot = draw(st.one_of(st.none(), st.integers(1, count - 1)))

    def one(k: int, name: str) -> Step:
        reads = tuple(n for n in names if draw(st.integers(0, 2)))  # each read 2 times in 3
        written = [n for n in names if draw(st.booleans())]
        by = st.sampled_from([1.0, -1.0])
        writes = tuple(Write(resource=n, mode=mode[n], by=draw(by)) for n in written)  # type: ignore[arg-type]
        comp = None
        if writes and (pivot is None or k < pivot) and draw(st.booleans()):
            comp = Compensation(
                name=f"undo_{name}",
                failure=draw(st.sampled_from([0.0, 0.2])),
                retry=Retry(attempts=draw(st.sampled_from([1, None]))),
            )
        extra: dict[str, Any] = {}
        if draw(st.integers(0, 5)) == 0:
            extra = {"latency": Exponential(mean_ms=10.0), "timeout_ms": 15.0}
        return Step(
            name=name,
            reads=reads,
            writes=writes,
            effects=bool(writes) or draw(st.booleans()),
            failure=draw(st.sampled_from([0.0, 0.0, 0.2])),
            reject=draw(st.sampled_from([0.0, 0.2])) if k != pivot else 0.3,
            retry=Retry(attempts=draw(st.sampled_from([1, 2]))),
            compensation=comp,
            kind_declared="pivot" if k == pivot else None,
            **extra,
        )

    steps: list[Any] = [one(k, f"s{k}") for k in range(count)]
    free = [k for k in range(count) if k != pivot]
    if draw(st.booleans()):  # a choice between these steps and others in their place
        k = draw(st.sampled_from(free))
        width = 2 if k + 1 in free and draw(st.booleans()) else 1
        other = tuple(one(j, f"t{j}") for j in range(k, k + width))
        branches = (
            Branch(when="one", probability=0.5, steps=tuple(steps[k : k + width])),
            Branch(when="other", default=True, steps=other),
        )
        steps[k : k + width] = [Choice(name="c", branches=branches)]
    saga = Saga(name="shared", resources=resources, instances=2, steps=tuple(steps))
    validate(saga)
    return saga


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_sagas())
@example(seat_booking())
@example(seat_booking("reread", attempts=2))
@example(seat_booking("version", "set"))
@example(seat_booking("semantic_lock"))
@example(opposite_orders())
@example(opposite_orders("fail"))
@example(opposite_orders(timeout=True))
@example(seat_booking("semantic_lock", on_locked="fail"))
@example(rewritten())
@example(rewritten(look=False))
@example(counter_then_look())
def test_the_explorer_agrees_with_a_brute_force_oracle(saga: Saga) -> None:
    oracle = Oracle(saga)
    oracle_states, fewest = oracle.explore()
    space = explore_instances(saga)
    assert reachable(space) == set(fewest)
    assert space.states <= oracle_states
    for kind, name in reachable(space):
        trace = space.trace(kind, name)
        assert len(trace) == fewest[(kind, name)]  # as short as the oracle's shortest
        states = oracle.replay(trace)
        if kind == "deadlock":
            assert not any(True for _ in oracle.moves(states[-1]))
            assert name in oracle.waiting(states[-1])
        else:
            assert (kind, name) in states[-1][2] and (kind, name) not in states[-2][2]
    # and path by path: random walks of the oracle lead the explorer to the same anomalies
    rng = random.Random(0)
    for _ in range(20):
        state, walk = oracle.start(), []
        for _ in range(40):
            moves = list(oracle.moves(state))
            if not moves:
                break
            i, event, state = rng.choice(moves)
            walk.append(f"{i + 1}:{event}")
        assert space.follow(walk) == (set(state[2]), not any(True for _ in oracle.moves(state)))


# --- the command line ----------------------------------------------------------------------------

MODEL = """\
saga: seats
resources:
  seats: {initial: 10}
isolation: {seats: none}
instances: 2
steps:
  - name: count_seats
    effects: false
    reads: [seats]
  - name: book_seat
    writes: {seats: {mode: set, by: -1}}
    compensation: release_seat
  - name: charge_card
    kind: pivot
    reject: 0.2
"""


def test_check_json_shows_the_interleaving(tmp_path: Path) -> None:
    model = tmp_path / "seats.yaml"
    model.write_text(MODEL)
    code, out, err = run("check", str(model), "--json")
    assert code == 1, err
    data = json.loads(out)
    assert data["interleaving"]["instances"] == 2
    assert set(data["interleaving"]["anomalies"]) == {*ANOMALIES, "deadlock"}
    assert [v["outcome"] for v in data["violations"]] == list(ANOMALIES)
    assert data["violations"][0]["trace"][0] == "1:count_seats.ok"
    assert run("check", str(model), "--fail-on", "leaked,stuck")[0] == 0
    assert run("check", str(model), "--fail-on", "dirty_read")[0] == 1
    code, out, err = run("check", str(model), "--fail-on", "lost_updates")
    assert code == 2 and out == "" and err.startswith("--fail-on: unknown outcome 'lost_updates'")
    code, text, _ = run("check", str(model))
    assert "2 instances interleaved" in text and "1:count_seats.ok → 2:count_seats.ok" in text
    locked = tmp_path / "locked.yaml"
    locked.write_text(MODEL.replace("seats: none", "seats: semantic_lock"))
    assert run("check", str(locked))[0] == 0
