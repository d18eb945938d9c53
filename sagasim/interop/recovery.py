"""Who undoes whom: a definition's recovering ``Catch`` chains read as compensations.

Examples
--------
>>> UNDO_WORDS.match("cancel_flight") is not None, UNDO_WORDS.match("send_sms") is not None
(True, False)
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ..exceptions import SagaDefinitionError
from ..model.saga import Compensation, Entry, Step, SubSaga, rebuild
from .common import snake_case
from .flow import END, Chain, Flow, Node, Unit

if TYPE_CHECKING:
    from .structure import Builder

__all__ = ["NOTE_WORDS", "UNDO_WORDS", "Recovery"]

#: Words that start the name of a state undoing another (``CancelFlight``, ``RefundPayment``).
UNDO_WORDS = re.compile(
    r"^(cancel|refund|undo|revert|rollback|roll_back|compensate|compensation|release|restore|"
    r"delete|remove|void|reverse|unreserve|unlock|abort)",
)
#: Words that start the name of a state telling someone about a failure, which undoes nothing.
NOTE_WORDS = re.compile(
    r"^(notify|notification|send|sending|publish|email|sms|alert|log|report|emit|post|page)",
)


class Recovery:
    """Who undoes whom: each recovering chain's states given to the units they undo.

    A chain lists what a failure runs, in order. Its states already known as some unit's
    compensation are that; a state not yet known undoes the failing unit itself when it comes
    first and the definition's first failure already undoes something (the AWS saga pattern:
    ``ReserveFlight``'s Catch starts with ``CancelFlight``), else the latest unit before it with
    effects and no compensation yet (the chain grows by one per step). A ``Parallel`` state in a
    chain undoes a group, branch by branch. Seata names each undo (``CompensateState``) and needs
    none of this.
    """

    def __init__(self, builder: Builder) -> None:
        self.b = builder
        self.undo: dict[str, Node] = {}  # unit key (its path) -> the state undoing it
        self.own: set[str] = set()

    def apply(self, built: tuple[Entry, ...]) -> tuple[Entry, ...]:
        b = self.b
        if b.flow.explicit_undo:
            states = {**b.root.flow.states, **b.flow.states}  # a loop's item is undone above
            placed = {u.node.name for u in b.units.values()}
            for key, unit in b.units.items():
                if unit.flow is b.flow and unit.node.undo and unit.node.kind == "call":
                    at = f"{unit.node.path}.CompensateState"
                    if unit.node.undo not in states:
                        b.state(unit.node.undo, at)  # says what was expected
                    if unit.node.undo in placed:
                        raise SagaDefinitionError(
                            f"expected a state of its own undoing {unit.node.name}, got "
                            f"{unit.node.undo}, which is also a step of the saga",
                            path=at,
                        )
                    owner = next(
                        (k for k, n in self.undo.items() if n.name == unit.node.undo), None
                    )
                    if owner is not None:
                        raise SagaDefinitionError(
                            f"expected a state of its own undoing {unit.node.name}, got "
                            f"{unit.node.undo}, which undoes {b.units[owner].node.name}",
                            path=at,
                        )
                    self.undo[key] = states[unit.node.undo]
        else:
            self.infer()
        self.after_pivot()
        for key, undoer in list(self.undo.items()):
            if undoer.kind in ("parallel", "map"):
                self.undo_group(b.units[key], undoer)
        b.undone.update(self.undo)
        by_name = {u.name: k for k, u in b.units.items() if k in self.undo}

        def change(entry: Entry) -> Entry:
            if not isinstance(entry, (Step, SubSaga)) or entry.name not in by_name:
                return entry
            key = by_name[entry.name]
            undoer = self.undo[key]
            if undoer.kind != "call":
                return entry
            comp = Compensation(name=b.undo_name(undoer), **undoer.fields)
            if isinstance(entry, SubSaga):  # a whole-saga compensation
                return replace(entry, compensation=comp)
            return replace(entry, compensation=comp, compensate_on_failure=key in self.own)

        return rebuild(built, change, sub_sagas=False)

    def infer(self) -> None:
        b = self.b
        units = [u for u in b.units.values() if u.flow is b.flow and u.chain is not None]
        notes: dict[str, Node] = {}
        chains = {u.node.path: self.trim(u.chain or (), notes) for u in units}
        epilogue = self.epilogue(list(chains.values()))
        notes.update((state.path, state) for state in epilogue)
        labelled = {u.name: k for k, u in b.units.items() if u.flow is b.flow}
        first = units[0] if units else None
        # the saga pattern: the first failure that runs anything has nothing before it to undo
        own_style = (
            first is not None
            and len(chains[first.node.path]) > len(epilogue)
            and not any(b.units[k].undoable for k in first.before)
        )
        known: set[str] = set()
        forward = self.forward_only()
        for unit in units:
            chain = chains[unit.node.path]
            chain = chain[: len(chain) - len(epilogue)]
            waiting = [
                k for k in reversed(unit.before) if b.units[k].undoable and k not in self.undo
            ]
            for i, state in enumerate(chain):
                if state.path in known:
                    continue
                mine = unit.node.path
                named = labelled.get(state.undoes or "")
                if named is not None:  # the state says whom it undoes
                    self.undo.setdefault(named, state)
                    if named == mine:
                        self.own.add(mine)
                    if named in waiting:
                        waiting.remove(named)
                elif i == 0 and own_style and unit.undoable and mine not in self.undo:
                    self.undo[mine] = state
                    self.own.add(mine)
                elif waiting:
                    self.undo[waiting.pop(0)] = state
                else:
                    before = [b.units[k] for k in unit.before if b.units[k].undoable]
                    raise SagaDefinitionError(
                        f"expected one state undoing each step with effects before "
                        f"{unit.node.name} ({_names(tuple(u.node.name for u in before))}), got "
                        f"one more: {state.name}",
                        path=f"{unit.node.path}.Catch",
                    )
                known.add(state.path)
            ran = {s.path for s in chain}
            copies = {_defined(s) for s in chain if b.flow.states.get(s.name) is not s}
            missing = [
                self.undo[k].name
                for k in reversed(unit.before)
                if k in self.undo
                and self.undo[k].path not in ran
                and not (
                    b.flow.states.get(self.undo[k].name) is not self.undo[k]
                    and _defined(self.undo[k]) in copies
                )
            ]
            if missing and unit.node.path not in forward:
                raise SagaDefinitionError(
                    f"expected the Catch of {unit.node.name} to run the compensation of every "
                    f"step before it, got none of {_names(tuple(missing))} (backward recovery "
                    "undoes all that was done)",
                    path=f"{unit.node.path}.Catch",
                )
        self.uncaught()
        for state in notes.values():
            b.assumed.append(
                f"{snake_case(state.name)}: runs after recovery and undoes no step (a "
                "notification or handler): not a step of the saga, its latency is not counted"
            )

    def uncaught(self) -> None:
        """A Task without a Catch after steps with compensations: Step Functions ends the
        execution with their effects in place, sagasim recovers backward; say so."""
        b, forward = self.b, self.forward_only()
        for unit in (u for u in b.units.values() if u.flow is b.flow):
            if unit.node.catchers or not (unit.undoable or unit.node.kind in ("saga", "map")):
                continue  # a Pass or a Wait cannot fail
            if any(k in self.undo for k in unit.before) and unit.node.path not in forward:
                b.assumed.append(
                    f"{unit.name}: no Catch, so its failure runs backward recovery here (Step "
                    "Functions would end the execution with the earlier steps' effects in place:"
                    " mark the step before it the pivot in a Comment if that is meant)"
                )

    def forward_only(self) -> set[str]:
        """The units (paths) at the pivot of this flow and after it."""
        units = [u.node.path for u in self.b.units.values() if u.flow is self.b.flow]
        kinds = [self.b.units[k].node.kind_declared for k in units]
        return set(units[kinds.index("pivot") :]) if "pivot" in kinds else set()

    def after_pivot(self) -> None:
        """After the pivot the saga only moves forward: no failure there may undo anything."""
        units = [u for u in self.b.units.values() if u.flow is self.b.flow]
        pivots = [u for u in units if u.node.kind_declared == "pivot"]
        if len(pivots) > 1:
            raise SagaDefinitionError(
                f"expected at most one pivot, got a second one (first at {pivots[0].node.path})",
                path=f"{pivots[1].node.path}.Comment",
            )
        pivot = next((i for i, u in enumerate(units) if u.node.kind_declared == "pivot"), None)
        self.gives_up()
        if pivot is None:
            return
        for unit in units[pivot:]:
            if unit.node.path in self.undo:
                raise SagaDefinitionError(
                    f"expected no compensation of {unit.node.name}: it is the pivot or after it "
                    f"(the saga only moves forward there), got {self.undo[unit.node.path].name}",
                    path=self.undo[unit.node.path].path,
                )
        undoers = {state.path for state in self.undo.values()}
        for unit in units[pivot + 1 :]:
            if self.b.flow.explicit_undo:
                compensates = self.chain_triggers(unit)
            else:
                compensates = any(state.path in undoers for state in unit.chain or ())
            if compensates:
                raise SagaDefinitionError(
                    f"expected no compensation after the pivot {units[pivot].node.name} (the "
                    f"saga only moves forward there), got a Catch of {unit.node.name} that "
                    "compensates",
                    path=f"{unit.node.path}.Catch",
                )

    def gives_up(self) -> None:
        """A compensation's Catch may only end recovery: sagasim stops where one gives up."""
        states = {**self.b.root.flow.states, **self.b.flow.states}
        for undoer in self.undo.values():
            for catcher in undoer.catchers:
                target, seen = states.get(catcher.target), set()
                while target is not None and target.kind == "call" and not target.effects:
                    if target.name in seen:  # Pass states going round: no Fail is reached
                        target = None
                        break
                    seen.add(target.name)
                    target = states.get(target.next or "")  # Pass states on the way
                if target is None or target.kind not in ("fail", "trigger"):
                    got = target.name if target is not None else "the end"
                    raise SagaDefinitionError(
                        "expected a Fail state (sagasim stops recovery where a compensation "
                        f"gives up), got {got}",
                        path=f"{catcher.path}.Next",
                    )

    def chain_triggers(self, unit: Unit) -> bool:
        """Whether a Catch of ``unit`` runs into a Seata ``CompensationTrigger``."""
        states = self.b.flow.states
        for catcher in unit.node.catchers:
            name: str | None = catcher.target
            seen: set[str] = set()
            while name in states and name not in seen:
                seen.add(name)
                if states[name].kind == "trigger":
                    return True
                name = states[name].next
        return False

    @staticmethod
    def trim(chain: Chain, notes: dict[str, Node]) -> Chain:
        """``chain`` less the states at its end named like a notification (``NotifyFailure``,
        ``SendingSMSFailure``), which are collected in ``notes``."""
        end = len(chain)
        while end and NOTE_WORDS.match(snake_case(chain[end - 1].name)):
            end -= 1
            notes[chain[end].path] = chain[end]
        return chain[:end]

    def epilogue(self, chains: list[Chain]) -> Chain:
        """The states every chain ends with that undo nothing: the common tail, less the undo
        of the first step (named like one) where the tail holds it."""
        if not chains:
            return ()
        tail = list(chains[0])
        for chain in chains[1:]:
            k = 0
            while k < min(len(tail), len(chain)) and tail[-1 - k] is chain[-1 - k]:
                k += 1
            tail = tail[len(tail) - k :]
        while tail and (tail[0].kind == "parallel" or UNDO_WORDS.match(snake_case(tail[0].name))):
            tail.pop(0)
        return tuple(tail)

    def undo_group(self, unit: Unit, group: Node) -> None:
        """A ``Parallel`` state undoing the group ``unit``: one branch per branch, whose states
        undo that branch's steps, latest first (states the branch's own Catch already runs,
        alike in every field, are those)."""
        self.undo.pop(unit.node.path)
        if group.kind == "map" or unit.node.kind == "map":
            if group.kind != unit.node.kind or group.body is None or unit.node.body is None:
                raise SagaDefinitionError(
                    f"expected a {unit.node.kind.capitalize()} state undoing {unit.node.name}, "
                    f"got a {group.kind.capitalize()} state",
                    path=group.path,
                )
            self.undo_bodies([(unit.node.body, group.body)])
            return
        if len(group.branches) != len(unit.node.branches):
            raise SagaDefinitionError(
                f"expected one branch per branch of {unit.node.name} "
                f"({len(unit.node.branches)}), got {len(group.branches)} (a Pass state stands "
                "for a branch with nothing to undo)",
                path=f"{group.path}.Branches",
            )
        self.undo_bodies(list(zip(unit.node.branches, group.branches, strict=True)))

    def undo_bodies(self, pairs: list[tuple[Flow, Flow]]) -> None:
        """Each undoing flow's states given to the steps of the flow it undoes, latest first."""
        for flow, undoing in pairs:
            steps = [k for k, u in self.b.units.items() if u.flow is flow]
            labelled = {self.b.units[k].name: k for k in steps}
            done = {_defined(n) for k in steps for n in [self.b.undone.get(k)] if n is not None}
            waiting = [
                k for k in reversed(steps) if self.b.units[k].undoable and k not in self.b.undone
            ]
            for state in _line(undoing):
                named = labelled.get(state.undoes or "")
                if named is not None and named not in self.b.undone:
                    self.undo[named] = state
                    if named in waiting:
                        waiting.remove(named)
                    continue
                if _defined(state) in done:
                    continue
                if not waiting:
                    raise SagaDefinitionError(
                        f"expected states undoing the branch's steps, got {state.name}, which "
                        "undoes none of them",
                        path=state.path,
                    )
                self.undo[waiting.pop(0)] = state


def _line(flow: Flow) -> list[Node]:
    """The effectful states of a flow with no branching, in order."""
    found, name = [], flow.start
    while name in flow.states:
        node = flow.states[name]
        if node.kind == "call" and node.effects:
            found.append(node)
        name = node.next or END
    return found


def _defined(node: Node) -> str:
    return node.definition or repr(sorted(node.fields.items()))


def _names(names: tuple[str, ...]) -> str:
    return ", then ".join(names) if names else "nothing"
