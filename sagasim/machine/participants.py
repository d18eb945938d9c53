"""The participants' side of a saga: effects landing, late landings, undoing, anomalies.

The orchestrator's machine says what it *believes*; the participants say what *happened*. Their
bookkeeping is a :data:`Ledger`, a flat tuple of small integers, changed only by the pure
functions of :class:`Participants`. The checker explores ledgers (counts saturate at ``cap`` so
the space stays finite); the simulator keeps exact counts. Both call the same functions.

Rules (DESIGN.md, "Timeouts are ambiguous"):

* an ``ok`` seen by the orchestrator applies the step's effect at the participant;
* a timed-out attempt may still land later, unless the action ``rejects_late``; when it lands
  after the step's compensation ran it is **hanging**; on an effect already applied, and the
  step is not ``idempotent``, it is a **duplicate effect**; on a step the orchestrator no longer
  runs and never completed, it is a **late leak** (nothing will undo it);
* a step the orchestrator gives up on while a late landing already applied its effect is a late
  leak too;
* a compensation undoes one application; one that finds nothing to undo is an **empty
  compensation** (counted, harmless by itself).

Examples
--------
>>> from sagasim.model import Compensation, Saga, Step
>>> saga = Saga(name="s", steps=(Step(name="a", compensation=Compensation(name="undo_a")),))
>>> p = Participants(saga)
>>> ledger = p.initial
>>> ledger = p.ok(ledger, "a")
>>> p.applied(ledger, "a")
1
>>> ledger = p.ok(ledger, "a")       # a second application of a non-idempotent step
>>> p.anomalies(ledger)
('duplicate_effect',)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..model.saga import Saga
from .program import repeatable

Ledger = tuple[int, ...]

#: Anomaly flags, in the order of their bits.
ANOMALIES = ("duplicate_effect", "hanging", "late_leak", "empty_compensation")
DUPLICATE, HANGING, LATE_LEAK, EMPTY = (1 << i for i in range(len(ANOMALIES)))
#: Anomalies that make an end state inconsistent (an empty compensation is harmless by itself).
INCONSISTENT_ANOMALIES = DUPLICATE | HANGING | LATE_LEAK


class Participants:
    """Bookkeeping of effects for one saga.

    Layout of a ledger: for each step with effects, how many times its effect is applied now,
    then whether its compensation has run, then for each action that can land late how many
    timed-out attempts are still pending, then for each step with effects that a ``goto`` can
    run again how many of its successes the orchestrator has seen (a second visit's effect is
    not a duplicate of the first's), then the anomaly bits.
    """

    def __init__(self, saga: Saga, cap: int | None = None) -> None:
        self.cap = cap
        steps = [s for s in saga.all_steps() if s.effects]
        self.effect_index = {s.name: i for i, s in enumerate(steps)}
        self.idempotent = {s.name for s in steps if s.idempotent}
        self.undoes: dict[str, str] = {
            s.compensation.name: s.name for s in steps if s.compensation is not None
        }
        n = len(steps)
        tracked = set(self.effect_index) | set(self.undoes)
        late = [a for a in saga.actions() if saga.may_land_late(a) and a.name in tracked]
        self.pending_index = {a.name: 2 * n + i for i, a in enumerate(late)}
        #: Actions whose timed-out attempt may also never land (the participant failed it).
        self.may_be_lost = {a.name for a in late if saga.can_fail(a) or a.reject > 0}
        again = [s.name for s in steps if s.name in repeatable(saga)]
        self.seen_index = {name: 2 * n + len(late) + i for i, name in enumerate(again)}
        self.flags = 2 * n + len(late) + len(again)
        self._steps = n
        self.initial: Ledger = (0,) * (self.flags + 1)

    # --- reading
    def applied(self, ledger: Ledger, step: str) -> int:
        return ledger[self.effect_index[step]]

    def pending(self, ledger: Ledger) -> Iterable[str]:
        """Actions with timed-out attempts that have not landed yet."""
        return [a for a, i in self.pending_index.items() if ledger[i]]

    def anomalies(self, ledger: Ledger) -> tuple[str, ...]:
        bits = ledger[self.flags]
        return tuple(name for i, name in enumerate(ANOMALIES) if bits & (1 << i))

    def inconsistent(self, ledger: Ledger) -> bool:
        return bool(ledger[self.flags] & INCONSISTENT_ANOMALIES)

    # --- what happens
    def ok(self, ledger: Ledger, action: str) -> Ledger:
        """The orchestrator saw ``action`` succeed: the participant applied it."""
        if action in self.undoes:
            return self._undo(ledger, self.undoes[action])
        if action not in self.effect_index:
            return ledger
        ledger = self._apply(ledger, action, late=False, running=True)
        i = self.seen_index.get(action)
        return ledger if i is None else self._set(ledger, i, ledger[i] + 1)

    def timed_out(self, ledger: Ledger, action: str) -> Ledger:
        """An attempt of ``action`` timed out: it may still land later."""
        i = self.pending_index.get(action)
        if i is None:
            return ledger
        return self._set(ledger, i, ledger[i] + 1)

    def gave_up(self, ledger: Ledger, step: str) -> Ledger:
        """The orchestrator stopped running ``step`` without seeing it succeed."""
        i = self.effect_index.get(step)
        seen = self.seen_index.get(step)
        # an effect beyond the successes seen (none, unless a goto ran the step before)
        if i is None or ledger[i] <= (0 if seen is None else ledger[seen]):
            return ledger
        return self._flag(ledger, LATE_LEAK)

    def saturated(self, ledger: Ledger, action: str) -> bool:
        """Whether the pending count of ``action`` stands for "``cap`` or more" attempts."""
        return self.cap is not None and ledger[self.pending_index[action]] >= self.cap

    def late_landings(self, ledger: Ledger) -> Iterator[tuple[str, str, bool]]:
        """What can happen next to the timed-out attempts pending in ``ledger``, as the checker
        explores it: ``(action, "late_ok", still_saturated)`` for each way one lands (a
        saturated count may stay saturated), ``(action, "late_fail", False)`` where one may be
        lost instead (staying saturated then leaves the ledger as it is)."""
        for action in self.pending(ledger):
            for keep in (False, True) if self.saturated(ledger, action) else (False,):
                yield action, "late_ok", keep
            if action in self.may_be_lost:
                yield action, "late_fail", False

    def land_late(
        self, ledger: Ledger, action: str, running: Iterable[str], *, still_saturated: bool = False
    ) -> Ledger:
        """A pending timed-out attempt of ``action`` lands now.

        When the pending count is :meth:`saturated`, one fewer may be ``cap - 1`` or still
        ``cap`` or more: the checker explores both (``still_saturated``); simulation keeps exact
        counts and never saturates.
        """
        if not still_saturated:
            ledger = self.lost(ledger, action)
        if action in self.undoes:
            return self._undo(ledger, self.undoes[action])
        return self._apply(ledger, action, late=True, running=action in running)

    def lost(self, ledger: Ledger, action: str) -> Ledger:
        """A pending timed-out attempt of ``action`` failed at the participant: it never lands.

        A saturated count drops to ``cap - 1``; that it may also stay saturated is the
        checker's other branch (the ledger unchanged), see :meth:`land_late`.
        """
        i = self.pending_index[action]
        return self._set(ledger, i, ledger[i] - 1)

    # --- helpers: each builds the new ledger with one copy (sagasim.verify.statespace also
    # remembers their results per ledger: ledgers repeat across many states)
    def _apply(self, ledger: Ledger, step: str, *, late: bool, running: bool) -> Ledger:
        i = self.effect_index[step]
        applied = ledger[i]
        idempotent = step in self.idempotent
        seen = self.seen_index.get(step)
        # A step a goto runs again: an effect beyond the successes seen so far is a duplicate.
        # (A late landing cannot tell which visit sent it; it counts as the current visit's.)
        again = seen is not None and applied <= ledger[seen]
        if late and ledger[self._steps + i]:
            flag = HANGING
        elif applied and not idempotent and not again:
            flag = DUPLICATE
        elif late and not applied and not running:
            flag = LATE_LEAK
        else:
            flag = 0
        if idempotent and applied:
            return self._flag(ledger, flag) if flag else ledger
        edited = list(ledger)
        edited[i] = self._capped(applied + 1)
        edited[-1] |= flag
        return tuple(edited)

    def _undo(self, ledger: Ledger, step: str) -> Ledger:
        i = self.effect_index[step]
        edited = list(ledger)
        edited[self._steps + i] = self._capped(1)
        if ledger[i] == 0:
            edited[-1] |= EMPTY
        else:
            edited[i] = self._capped(ledger[i] - 1)
        return tuple(edited)

    def _set(self, ledger: Ledger, index: int, value: int) -> Ledger:
        return (*ledger[:index], self._capped(value), *ledger[index + 1 :])

    def _flag(self, ledger: Ledger, bit: int) -> Ledger:
        return (*ledger[:-1], ledger[-1] | bit)

    def _capped(self, count: int) -> int:
        return count if self.cap is None or count <= self.cap else self.cap
