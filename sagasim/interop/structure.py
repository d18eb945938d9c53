"""A :class:`~sagasim.interop.flow.Flow` written as the model's nested step list.

A choice's branches rejoin at its immediate post-dominator among the ways that end well; a way
to a state already placed (in this list or an enclosing one) is a ``goto``; a catch that leads on
is a choice right after its state. A loop back to a step through steps with effects is bounded
with ``max_visits`` (:data:`~sagasim.interop.flow.LOOP_BOUND`, assumed).

Examples
--------
>>> flow = Flow("", "Check", {
...     "Check": Node("Check", "States.Check", "call", next="Enough", effects=False),
...     "Enough": Node("Enough", "States.Enough", "choice", rules=[
...         Rule("stock > 0", "Reserve", "States.Enough.Choices[0]")], default="Sorry"),
...     "Reserve": Node("Reserve", "States.Reserve", "call"),
...     "Sorry": Node("Sorry", "States.Sorry", "fail")})
>>> check, enough, reserve = entries(flow)
>>> [(b.when, b.probability, b.steps) for b in enough.branches]
[('stock > 0', 0.5, ()), ('otherwise', None, (Fail(name='sorry'),))]
>>> reserve.name
'reserve'
>>> flow.assumed
['enough: branches 0.5/0.5 (stock > 0 | otherwise): assumed equal, set with --set enough.0=P']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..exceptions import SagaDefinitionError
from ..model.saga import (
    Branch,
    Choice,
    Entry,
    Fail,
    Goto,
    Map,
    Parallel,
    Step,
    SubSaga,
    Succeed,
    blocks_of,
    rebuild,
    walk,
)
from .common import Names, snake_case
from .flow import END, ITEMS, LOOP_BOUND, Catcher, Chain, Flow, Node, Rule, Unit
from .recovery import Recovery

__all__ = ["Builder", "entries"]


def entries(flow: Flow) -> tuple[Entry, ...]:
    """The step list ``flow`` means (see the module's docstring)."""
    return Builder(flow).build()


@dataclass
class _Frame:
    """A step list being written: where it stops (rejoins), whether falling off its end ends
    the flow, and the units placed in it so far."""

    stop: str
    tail_ends: bool
    out: list[Entry] = field(default_factory=list)
    units: list[str] = field(default_factory=list)


class Builder:
    """Writes one scope's step list; inner scopes share the root's names and findings."""

    def __init__(self, flow: Flow, parent: Builder | None = None) -> None:
        self.flow = flow
        self.root: Builder = self if parent is None else parent.root
        root = self.root
        self.names: Names = flow.names if parent is None else root.names
        self.assumed: list[str] = flow.assumed if parent is None else root.assumed
        self.places: dict[str, str] = flow.places if parent is None else root.places
        #: the state each model name came from, and each group (by the steps in it)
        self.nodes: dict[str, Node] = {} if parent is None else root.nodes
        self.groups: dict[tuple[str, ...], str] = {} if parent is None else root.groups
        #: every unit of every scope, by its path; and the state undoing each, once known
        self.units: dict[str, Unit] = {} if parent is None else root.units
        self.undone: dict[str, Node] = {} if parent is None else root.undone
        self.undo_names: dict[str, str] = {} if parent is None else root.undo_names
        self.placed: dict[str, _Frame] = {}
        self.model_names: dict[str, str] = {}
        self.leads_on: dict[str, list[Catcher]] = {}
        self.chains: dict[str, Chain | None] = {}

    # -- reading the graph --

    def state(self, name: str, at: str) -> Node:
        if name not in self.flow.states:
            known = ", ".join(sorted(self.flow.states)[:6])
            raise SagaDefinitionError(
                f"expected the name of a state in {self.flow.prefix}States ({known}), got {name!r}",
                path=at,
            )
        return self.flow.states[name]

    def ways(self, node: Node) -> list[str]:
        """Where ``node`` goes on when nothing fails (END: the flow ends well)."""
        if node.kind == "choice":
            return [r.target for r in node.rules] + ([node.default] if node.default else [])
        if node.kind in ("fail", "trigger"):
            return []
        if node.kind == "succeed":
            return [END]
        on = [node.next or END]
        return on + [c.target for c in self.leads_on.get(node.name, [])]

    def classify_catchers(self) -> None:
        """Split each state's catchers into recovering chains and ones that lead on."""
        forward = self.forward_reachable()
        for node in self.flow.states.values():
            if not node.catchers:
                continue
            chains: list[tuple[Catcher, Chain]] = []
            for catcher in node.catchers:
                self.state(catcher.target, catcher.path)
                chain = self.recovery(catcher.target, forward)
                if chain is None:
                    if catcher.target != node.next:
                        self.refuse_raised_inside(node, catcher)
                        self.leads_on.setdefault(node.name, []).append(catcher)
                else:
                    chains.append((catcher, chain))
            if not chains:
                self.chains[node.name] = None
                continue
            first = chains[0][1]
            for catcher, chain in chains[1:]:
                if chain != first:
                    raise SagaDefinitionError(
                        f"expected the states of {chains[0][0].path} ({_describe(first)}), got "
                        f"{_describe(chain)} (a saga recovers one way, whatever the error)",
                        path=catcher.path,
                    )
            self.chains[node.name] = first

    def check_targets(self) -> None:
        """Every state named (``Next``, a rule's, a catch's, ``Default``, an undo) exists."""
        for node in self.flow.states.values():
            named = [(node.next, f"{node.path}.Next"), (node.default, f"{node.path}.Default")]
            named += [(r.target, f"{r.path}.Next") for r in node.rules]
            named += [(c.target, f"{c.path}.Next") for c in node.catchers]
            if node.undo is not None and node.kind == "call" and self.root is self:
                named.append((node.undo, f"{node.path}.CompensateState"))
            for target, at in named:
                if target is not None and target != END:
                    self.state(target, at)

    def check_way_out(self) -> None:
        """Every state reached can still come to an end: a loop with no way out is refused."""
        import networkx as nx  # here, not at the top: every load imports this module

        graph = nx.DiGraph()
        for node in self.flow.states.values():
            graph.add_node(node.name)
            graph.add_edges_from((node.name, t) for t in self.ways(node))
            graph.add_edges_from((node.name, c.target) for c in node.catchers)
            if node.kind in ("fail", "trigger"):
                graph.add_edge(node.name, END)
        graph.add_node(END)
        ending = nx.ancestors(graph, END) | {END}
        for name in nx.dfs_preorder_nodes(graph, self.flow.start):
            if name not in ending:
                node = self.flow.states[name]
                raise SagaDefinitionError(
                    f"expected a way from {name} to an end, got a loop with no way out (the "
                    "saga would never end)",
                    path=node.path,
                )
        well = nx.DiGraph()
        well.add_nodes_from([*self.flow.states, END])
        for node in self.flow.states.values():
            well.add_edges_from((node.name, t) for t in self.ways(node))
        commits = nx.ancestors(well, END)
        for loop in nx.strongly_connected_components(well):
            name = min(loop, key=list(self.flow.states).index) if END not in loop else END
            cyclic = len(loop) > 1 or well.has_edge(name, name)
            if cyclic and name in ending and not loop & commits:
                raise SagaDefinitionError(
                    f"expected a way out of the loop through {name} that does not fail, got "
                    "only failures (the saga could never commit)",
                    path=self.flow.states[name].path,
                )

    def refuse_raised_inside(self, node: Node, catcher: Catcher) -> None:
        """A Fail inside a group or map body whose error the group's Catch leads on from is
        control flow between branches (the first to fail stops the others): not a saga's."""
        inner = [*node.branches, *([node.body] if node.body else [])]
        fails = [n for flow in inner for n in flow.states.values() if n.kind == "fail"]
        if fails:
            raise SagaDefinitionError(
                f"expected a Catch on {node.name} that recovers, got one that leads on into the "
                f"saga from a Fail inside it ({fails[0].name}): ending a branch with an error "
                "to steer the rest is control flow a saga model cannot express",
                path=catcher.path,
            )

    def forward_reachable(self) -> set[str]:
        seen, todo = set(), [self.flow.start]
        while todo:
            name = todo.pop()
            if name in seen or name == END:
                continue
            seen.add(name)
            node = self.state(name, f"{self.flow.prefix}States")
            todo.extend(t for t in self.ways(node) if t != END)
        return seen

    def recovery(self, start: str, forward: set[str]) -> Chain | None:
        """The states a Catch into ``start`` runs, when it recovers (None: it leads on)."""
        chain: list[Node] = []
        seen: set[str] = set()
        name: str | None = start
        while name is not None and name != END:
            node = self.state(name, f"{self.flow.prefix}States.{name}")
            if node.kind in ("fail", "trigger"):  # ends recovery, even where the saga fails too
                return tuple(chain)
            if name in forward or name in seen:
                return None
            seen.add(name)
            if node.kind == "map" and node.undoes:  # sagasim's export: a map undoing a map
                chain.append(node)
                name = node.next
                continue
            if node.kind in ("choice", "map", "saga") or (node.kind == "succeed" and not chain):
                return None
            if node.kind == "succeed":
                return tuple(chain)
            if node.kind == "parallel" or node.effects:
                chain.append(node)
            name = node.next
        return tuple(chain) if chain else None  # handled, undoing nothing: it leads on

    # -- writing the step list --

    def build(self) -> tuple[Entry, ...]:
        self.check_targets()
        for node in self.flow.states.values():
            if node.kind == "choice":
                _merge_ways(node)
        self.classify_catchers()
        self.graph = self.flow_graph()
        self.check_way_out()
        top = _Frame(END, True)
        self.emit(self.flow.start, [top])
        built = Recovery(self).apply(tuple(top.out))
        self.check_reached()
        if self.root is not self:
            return built
        built = self.bound_loops(built)
        self.place(built, "steps")
        return built

    def place(self, built: tuple[Entry, ...], prefix: str) -> None:
        """Where each entry came from (model path -> state path), for the model's errors."""
        undoers = {model: path for path, model in self.undo_names.items()}
        for i, entry in enumerate(built):
            at, name = f"{prefix}[{i}]", _name(entry)
            if name in self.nodes:
                self.places[at] = self.nodes[name].path
            elif isinstance(entry, Parallel) and _steps_of(entry) in self.groups:
                self.places[at] = self.groups[_steps_of(entry)]
            comp = getattr(entry, "compensation", None)
            if comp is not None and comp.name in undoers:
                self.places[f"{at}.compensation"] = undoers[comp.name]
            if isinstance(entry, Parallel):
                for b, branch in enumerate(entry.branches):
                    self.place(branch, f"{at}.parallel[{b}]")
            elif isinstance(entry, Choice):
                for b, way in enumerate(entry.branches):
                    self.place(way.steps, f"{at}.choice.branches[{b}].steps")
            elif isinstance(entry, Map):
                self.place(entry.steps, f"{at}.map.steps")

    def bound_loops(self, built: tuple[Entry, ...]) -> tuple[Entry, ...]:
        """``max_visits`` on each step a loop with effects comes back to (assumed)."""
        heads: set[str] = set()

        def visit(block: tuple[Entry, ...], outer: list[tuple[tuple[Entry, ...], int]]) -> None:
            for i, entry in enumerate(block):
                chain = [*outer, (block, i)]
                if isinstance(entry, Goto):
                    for held, at in reversed(chain):
                        j = next((k for k, e in enumerate(held) if _name(e) == entry.target), None)
                        if j is not None:
                            cycle = held[j : at + 1]
                            if any(isinstance(e, Step) and e.effects for e in walk(cycle)):
                                heads.add(entry.target)
                            break
                if not isinstance(entry, SubSaga):
                    for inner in blocks_of(entry):
                        visit(inner, chain)

        visit(built, [])
        given = {e.name for e in walk(built) if isinstance(e, Step) and e.max_visits}
        for head in sorted(heads - given):
            self.assumed.append(
                f"{head}: a loop with effects comes back to it: at most {LOOP_BOUND} visits "
                f"(assumed: set with --set {head}.max_visits=N)"
            )

        def bound(entry: Entry) -> Entry:
            if _name(entry) not in heads:
                return entry
            if not isinstance(entry, Step):
                node = self.nodes[_name(entry) or ""]
                raise SagaDefinitionError(
                    "expected a loop with effects to come back to a Task (its visits are "
                    f"bounded there), got one back to the {node.kind} state {node.name}",
                    path=node.path,
                )
            return replace(entry, max_visits=entry.max_visits or LOOP_BOUND)

        return rebuild(built, bound, sub_sagas=False)

    def check_reached(self) -> None:
        """Every state is placed, run by a Catch, undoes one, or ends: none is left over."""
        used = set(self.placed) | {n for n in self.flow.states if n.endswith(" outcome")}
        for chain in self.chains.values():
            used |= {n.name for n in chain or ()}
        for node in self.flow.states.values():
            used |= {node.undo} if node.undo else set()
            used |= {c.target for c in node.catchers} | set(self.ways(node))
            used |= {node.next} if node.kind == "trigger" and node.next else set()
        for name, node in self.flow.states.items():
            if name not in used and name != self.flow.start:
                raise SagaDefinitionError(
                    "expected a state reachable from the start, got one nothing leads to",
                    path=node.path,
                )

    def flow_graph(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each choice's rejoining state: its immediate post-dominator among the ways that end
        well, or (for choices all of whose ways fail) among all ways."""
        import networkx as nx

        well, every = nx.DiGraph(), nx.DiGraph()
        for node in self.flow.states.values():
            for target in self.ways(node):
                well.add_edge(target, node.name)
                every.add_edge(target, node.name)
            if node.kind in ("fail", "trigger"):
                every.add_edge(END, node.name)
            well.add_node(node.name)
            every.add_node(node.name)
        well.add_node(END)
        every.add_node(END)
        return nx.immediate_dominators(well, END), nx.immediate_dominators(every, END)

    def join_of(self, choice: str) -> str:
        well, every = self.graph
        return well[choice] if choice in well else every.get(choice, END)

    def emit(self, name: str, frames: list[_Frame]) -> None:
        frame = frames[-1]
        while True:
            if name == frame.stop:
                return
            if name == END:
                if not frame.tail_ends:
                    self.end_here(frame, "end")
                return
            node = self.state(name, f"{self.flow.prefix}States")
            if node.kind in ("fail", "trigger", "succeed"):
                self.terminal(node, frame)
                return
            if name in self.placed or any(name == f.stop for f in frames):
                self.jump(node, frames)
                return
            self.placed[name] = frame
            if node.kind == "choice":
                join = self.join_of(name)
                frame.out.append(self.choice(node, join, frames))
                if join == END:
                    if not frame.tail_ends:
                        self.end_here(frame, "end")
                    return
                name = join
                continue
            frame.out.append(self.unit(node, frames))
            caught = self.leads_on.get(name)
            if caught:
                outcome = self.outcome_choice(node, caught)
                name = outcome.name
                self.flow.states[name] = outcome
                self.graph = self.flow_graph()
                continue
            name = node.next or END

    def jump(self, node: Node, frames: list[_Frame]) -> None:
        holder = self.placed.get(node.name)
        if holder is not None and holder not in frames:
            raise SagaDefinitionError(
                "expected a way into a state from its own branch or before it, got a jump into "
                f"another branch (to {node.name}, already placed there): a saga model cannot "
                "share states between branches",
                path=node.path,
            )
        frames[-1].out.append(Goto(target=self.model_name(node)))

    def end_here(self, frame: _Frame, name: str) -> None:
        if self.flow.fenced:
            raise SagaDefinitionError(
                "expected a branch to end where it rejoins, got one that ends the flow early "
                "inside a Parallel or Map (a saga model cannot end a branch early)",
                path=f"{self.flow.prefix}States",
            )
        frame.out.append(Succeed(name=name))

    def terminal(self, node: Node, frame: _Frame) -> None:
        name = _identifier(node.name)
        if node.kind == "succeed":
            if not frame.tail_ends:  # where the flow ends anyway, a Succeed says nothing more
                self.end_here(frame, name)
            return
        if node.kind == "trigger" and node.next is not None:  # Seata: compensate, then end
            after = self.state(node.next, f"{node.path}.Next")
            name = _identifier(after.name)
        frame.out.append(Fail(name=name))

    def model_name(self, node: Node) -> str:
        if node.name not in self.model_names:
            self.model_names[node.name] = self.names.take(node.name, node.path)
            self.nodes[self.model_names[node.name]] = node
        return self.model_names[node.name]

    def choice(self, node: Node, join: str, frames: list[_Frame]) -> Choice:
        name = self.model_name(node)
        tail = join == END and frames[-1].tail_ends
        count = len(node.rules) + (node.default is not None)
        given = [r.probability for r in node.rules if r.probability is not None]
        rest = max(0.0, 1.0 - sum(given))
        open_ = [r for r in node.rules if r.probability is None]
        share_of = len(open_) + (node.default is not None and node.default_probability is None)
        share = rest / share_of if share_of else 0.0
        branches = []
        for rule in node.rules:
            sub = _Frame(join, tail)
            self.emit(rule.target, [*frames, sub])
            p = rule.probability if rule.probability is not None else share
            branches.append(Branch(when=rule.when, steps=tuple(sub.out), probability=p))
        if node.default is not None:
            sub = _Frame(join, tail)
            self.emit(node.default, [*frames, sub])
            branches.append(Branch(when=node.default_when, steps=tuple(sub.out), default=True))
        elif len(given) < len(node.rules) and branches:
            total = sum(b.probability or 0.0 for b in branches)
            last = branches[-1]
            branches[-1] = replace(last, probability=(last.probability or 0.0) + 1.0 - total)
        if count > 1 and open_:  # the default takes what the rules leave: not assumed
            shares = "/".join(_round(share if b.default else b.probability) for b in branches)
            whens = " | ".join(b.when for b in branches)
            self.assumed.append(
                f"{name}: branches {shares} ({whens}): assumed equal, set with --set {name}.0=P"
            )
        return Choice(name=name, branches=tuple(branches))

    def outcome_choice(self, node: Node, caught: list[Catcher]) -> Node:
        """A catch that leads on, read as a choice after ``node``: succeeded, or caught."""
        name = f"{node.name} outcome"
        rules = [Rule(f"caught {c.errors}", c.target, c.path) for c in caught]
        self.assumed.append(
            f"{snake_case(name)}: {node.name}'s Catch leads on into the saga (to "
            f"{', '.join(c.target for c in caught)}): read as a branch after it, not a failure"
        )
        outcome = Node(name, f"{node.path}.Catch", "choice", rules=rules, default=node.next or END)
        outcome.default_when = "succeeded"
        return outcome

    def unit(self, node: Node, frames: list[_Frame]) -> Entry:
        name = self.model_name(node)
        before = [u for f in frames for u in f.units]
        self.units[node.path] = Unit(node, self.flow, name, before, self.chains.get(node.name))
        frames[-1].units.append(node.path)
        if node.kind == "parallel":
            entry: Entry = Parallel(branches=tuple(self.inner(b) for b in node.branches))
            self.groups[_steps_of(entry)] = node.path
        elif node.kind == "map":
            assert node.body is not None
            items = node.items
            if items is None:
                items = ITEMS
                self.assumed.append(
                    f"{name}: {ITEMS} items (assumed: set with --set {name}.items=N)"
                )
            steps = self.inner(node.body)
            entry = Map(name=name, items=items, steps=steps, concurrency=node.concurrency)
        elif node.kind == "saga":
            assert node.child is not None
            entry = replace(node.child, name=name)
        else:
            entry = Step(
                name=name,
                effects=node.effects,
                kind_declared=node.kind_declared,
                max_visits=node.max_visits,
                **node.fields,
            )
        return entry

    def inner(self, flow: Flow) -> tuple[Entry, ...]:
        return Builder(flow, self).build()

    def undo_name(self, node: Node) -> str:
        if node.path not in self.undo_names:
            self.undo_names[node.path] = self.names.take(node.name, node.path)
        return self.undo_names[node.path]


def _describe(chain: Chain) -> str:
    return ", then ".join(node.name for node in chain) if chain else "nothing"


def _identifier(name: str) -> str:
    word = snake_case(name)
    return word if word.isidentifier() else f"s_{word}" if word else "end"


def _round(p: float | None) -> str:
    return f"{p or 0:.4g}"


def _name(entry: Entry) -> str | None:
    return entry.name if isinstance(entry, (Step, Choice, Map, SubSaga)) else None


def _merge_ways(node: Node) -> None:
    """Rules of a choice that go to the same state are one branch (their conditions or'ed); one
    going where the default goes is part of the default branch."""
    merged: dict[str, Rule] = {}
    for rule in node.rules:
        if rule.target in merged:
            first = merged[rule.target]
            both = (
                None
                if first.probability is None or rule.probability is None
                else (first.probability + rule.probability)
            )
            merged[rule.target] = Rule(
                f"{first.when} or {rule.when}", first.target, first.path, both
            )
        else:
            merged[rule.target] = rule
    if node.default in merged:
        folded = merged.pop(node.default)
        node.default_when = f"{folded.when} or {node.default_when}"
    node.rules = list(merged.values())


def _steps_of(entry: Entry) -> tuple[str, ...]:
    """A group's key: what is in it, groups inside included (so a group holding only another
    group is told from it)."""
    return tuple(_name(e) or type(e).__name__ for e in walk((entry,)))
