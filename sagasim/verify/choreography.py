"""The state space of a choreographed saga: the services' machines and the messages in flight.

A state is the services' :class:`~sagasim.machine.choreography.Local` state together with the
messages the broker still holds, each ``(event, subscriber, deliveries tried, is a copy)``.
From a state:

* every running action can end its attempt ``ok``, ``fail``, ``reject`` or ``timeout`` (those
  with probability > 0), publishing an event to each subscriber when its role ends a phase;
* a message can be *delivered*; with ``duplicate`` > 0 it can be delivered and leave a copy
  behind (:meth:`_Successors.first_of_its_kind` says when); with ``loss`` > 0 it can be
  *lost* for good, or sent again while redelivery attempts remain; without ``reorder`` only
  the oldest message to each subscriber can go next (first-in, first-out per service), with
  it any can;
* a timed-out attempt still pending lands late or is lost, as in orchestration;
* a choice being decided takes each of its branches (those with probability > 0), its
  decider publishing ``CHOICE.LABEL``; nothing else happens before it (a decision takes no
  time).

A state with none of these is an end state: the instance is quiet, and
:meth:`~sagasim.machine.choreography.Choreography.outcome` reads its end from the roles.
Exploration is breadth-first, so each trace shown is a shortest one, message deliveries and
losses included.

Examples
--------
>>> from sagasim.model import Broker, Compensation, Saga, Step
>>> saga = Saga(name="pay", coordination="choreography", broker=Broker(loss=0.01), steps=(
...     Step(name="reserve", compensation=Compensation(name="release")),
...     Step(name="charge", kind_declared="pivot", reject=0.1),
... ))
>>> space = explore_choreography(saga)
>>> sorted(space.outcomes_reachable())
['committed', 'compensated', 'stuck']
>>> space.trace_to(space.first_end["stuck"])
['reserve.ok', 'reserve.done → charge lost']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import StateSpaceLimitError
from ..machine.choreography import Choreography, Local, compile_choreography
from ..model.saga import Saga
from .statespace import CAP, DEFAULT_MAX_STATES, Paths

__all__ = ["ChoreographySpace", "explore_choreography"]

#: A message the broker holds: event, subscribing step, whether it is a duplicate's copy.
Message = tuple[str, str, bool]
#: A state: the services' local state and the messages in flight, and with outbox crashes
#: possible, how many crashes happened so far.
Node = tuple[Local, tuple[Message, ...]] | tuple[Local, tuple[Message, ...], int]


@dataclass(slots=True, kw_only=True)
class ChoreographySpace(Paths):
    """Every reachable state of a choreography, laid out as :class:`~sagasim.verify.StateSpace`
    is (``edges`` are ``(source, target, action or event, kind)``)."""

    saga: Saga
    choreography: Choreography
    nodes: list[Node] = field(default_factory=list)

    def messages_in_flight(self, index: int) -> list[str]:
        """The messages the broker holds in state ``index``, as ``event → step``."""
        return [f"{event} → {step}" for event, step, _ in self.nodes[index][1]]


class _Successors:
    """Where a state can go, as ``(label, action or event, kind, node)``."""

    def __init__(self, saga: Saga) -> None:
        self.chor = chor = compile_choreography(saga, cap=CAP)
        self.people = chor.people
        broker = saga.broker
        self.fifo = broker.reorder == 0
        self.loss, self.duplicate = broker.loss > 0, broker.duplicate > 0
        # Only whether a message can be lost for good matters to what can happen, not how
        # many times it was sent: no count of tries is kept.
        self.redeliveries = attempts = broker.redelivery.attempts
        self.lost_for_good = "lost" if attempts == 1 else f"lost {attempts} times"
        self.events = {a: saga.possible_events(saga.action(a)) for a in chor.actions}
        # Outbox crashes (docs/concurrency.md): a service that crashes after publishing an
        # event but before marking it publishes it again; the count of crashes so far is the
        # third part of a node then, and there is none otherwise.
        c = saga.coordinator
        self.crash_budget = c.max_crashes if c is not None and c.crash > 0 else 0

    def harmful(self, event: str, step: str) -> bool:
        """Whether a second copy of ``event`` can change what ``step``'s service does: a
        trigger or a failure reaching a service that does not deduplicate it."""
        role = self.chor.role(step)
        return (event in role.triggers and not role.idempotent) or (
            event in role.failures and not role.undo_idempotent
        )

    def with_outbox_crashes(
        self, moves: list[tuple[str, str, str, Node]], flight: tuple[Message, ...], crashes: int
    ) -> list[tuple[str, str, str, Node]]:
        """``moves`` with the crash count carried, and for each move that publishes an event
        a subscriber would take twice to harm, the same move with its service crashed after
        publishing: every new message sent twice, one crash more."""
        out: list[tuple[str, str, str, Node]] = []
        for label, what, kind, target in moves:
            local, after = target[0], target[1]
            out.append((label, what, kind, (local, after, crashes)))
            if crashes >= self.crash_budget:
                continue
            sent = [m for m in after if not m[2]]
            for m in flight:  # what the move consumed or kept: the rest it published
                if m in sent:
                    sent.remove(m)
            if not any(self.harmful(e, step) for e, step, _ in sent):
                continue
            events = ", ".join(dict.fromkeys(e for e, _, _ in sent))
            twice = self.canonical((*after, *((e, step, True) for e, step, _ in sent)))
            service = self.chor.service_of_event(sent[0][0])
            crashed = f"{label}; {service} crashes after publishing {events}"
            out.append((crashed, what, "outbox_crash", (local, twice, crashes + 1)))
        return out

    def send(self, flight: tuple[Message, ...], events: tuple[str, ...]) -> tuple[Message, ...]:
        subscribers = self.chor.subscribers
        sent = [(e, step, False) for e in events for step in subscribers.get(e, ())]
        return self.canonical(flight + tuple(sent))

    def canonical(self, flight: tuple[Message, ...]) -> tuple[Message, ...]:
        """Messages in delivery order per subscriber; with reordering, order does not matter."""
        if not self.fifo:
            return tuple(sorted(flight))
        return tuple(sorted(flight, key=lambda m: m[1]))  # stable: keeps order per subscriber

    def first_of_its_kind(self, local: Local, flight: tuple[Message, ...], j: int) -> bool:
        """Whether message ``j`` is the only one of its event to its subscriber so far.

        The broker duplicates each event at most once per subscriber here (one duplicate
        reaches every end more would), and only where a duplicate can change something: a
        trigger or a failure reaching a service that does not deduplicate it.
        """
        event, step = flight[j][:2]
        role = self.chor.role(step)
        harmless = (event not in role.triggers or role.idempotent) and (
            event not in role.failures or role.undo_idempotent
        )
        if harmless or event in local.seen[self.chor.role_index[step]]:
            return False
        return sum(1 for m in flight if m[:2] == (event, step)) == 1

    def of(self, node: Node) -> list[tuple[str, str, str, Node]]:
        if len(node) == 3:
            local, flight, crashes = node
            return self.with_outbox_crashes(self.moves((local, flight)), flight, crashes)
        return self.moves(node)

    def moves(self, node: Node) -> list[tuple[str, str, str, Node]]:
        local, flight = node[0], node[1]
        chor = self.chor
        out: list[tuple[str, str, str, Node]] = []
        deciding = chor.deciding(local)
        if deciding:  # a decision takes no time: it comes before anything else
            choice = deciding[0]
            for label, p in chor.role(choice).branches:
                if p > 0:
                    move = chor.decide(local, choice, label)
                    decided = (move.local, self.send(flight, move.published))
                    out.append((f"{choice}.{label}", choice, "decide", decided))
            return out
        for action in chor.running(local):
            for kind in self.events[action]:
                move = chor.attempt_ended(local, action, kind)
                out.append(
                    (
                        f"{action}.{kind}",
                        action,
                        kind,
                        (move.local, self.send(flight, move.published)),
                    )
                )
        for action, kind, keep in self.people.late_landings(local.ledger):
            if kind == "late_fail":
                landed = chor.land(local, action, ok=False)
            else:
                ledger = self.people.land_late(
                    local.ledger, action, chor.running(local), still_saturated=keep
                )
                landed = local._replace(ledger=ledger)
            out.append((f"{action}.{kind}", action, kind, (landed, flight)))
        heads: set[str] = set()
        for j, message in enumerate(flight):
            event, step, copy = message
            if self.fifo and step in heads:
                continue
            heads.add(step)
            rest = flight[:j] + flight[j + 1 :]
            name = f"{event} → {step}"
            move = chor.deliver(local, event, step)
            delivered, sent = move.local, self.send(rest, move.published)
            out.append((name, event, "deliver", (delivered, sent)))
            if self.duplicate and not copy and self.first_of_its_kind(local, flight, j):
                again = self.canonical((*sent, (event, step, True)))
                out.append((f"{name} twice", event, "duplicate", (delivered, again)))
            if self.loss:
                if self.redeliveries != 1:  # sent again later: behind what is in flight now
                    resent = self.canonical((*rest, message))
                    if resent != flight:
                        out.append(
                            (f"{name} lost, sent again", event, "redeliver", (local, resent))
                        )
                if self.redeliveries is not None:
                    out.append((f"{name} {self.lost_for_good}", event, "lost", (local, rest)))
        return out


def explore_choreography(saga: Saga, *, max_states: int = DEFAULT_MAX_STATES) -> ChoreographySpace:
    """Explore every reachable state of ``saga`` choreographed over its broker; raise
    :class:`StateSpaceLimitError` past ``max_states``."""
    successors = _Successors(saga)
    chor = successors.chor
    begin = chor.begin()
    start: Node = (begin.local, (), 0) if successors.crash_budget else (begin.local, ())
    space = ChoreographySpace(saga=saga, choreography=chor)
    index: dict[Node, int] = {start: 0}
    nodes, parent, via, edges = space.nodes, space.parent, space.via, space.edges
    nodes.append(start)
    parent.append(-1)
    via.append("")
    for i, node in enumerate(nodes):  # the list grows while the loop reads it: the BFS queue
        moves = successors.of(node)
        if not moves:
            local = node[0]
            outcome = chor.outcome(local)
            anomalies = chor.people.anomalies(local.ledger)
            space.ends[i] = (outcome, anomalies)
            for key in (outcome, *anomalies):
                space.first_end.setdefault(key, i)
        for label, what, kind, target in moves:
            j = index.get(target)
            if j is None:
                j = index[target] = len(nodes)
                if j >= max_states:
                    raise StateSpaceLimitError(
                        f"{saga.name}: more than {max_states:,} states after exploring {i:,} "
                        f"of them ({len(edges):,} transitions so far); a broker with fewer "
                        "kinds of fault (no reorder, no duplicate), bounded redelivery, fewer "
                        "retries or idempotent services shrink it, or raise --max-states"
                    )
                nodes.append(target)
                parent.append(i)
                via.append(label)
            edges.append((i, j, what, kind))
    return space
