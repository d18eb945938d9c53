"""Design defects visible in the model itself, each a :class:`Warning` with a code and one
sentence that says how to fix it: a step with effects and no compensation, a compensation that
can fail for good, ambiguous timeouts, steps after the pivot that can fail, a broker that loses
or duplicates messages, and, in the graph model, a branch never taken, a step never reached, a
self-compensating step without a compensation and a map too wide to check; and shared resources
that ``check`` sees one instance touch (the anomalies between instances are
:mod:`~sagasim.verify.countermeasures`').

>>> from sagasim.model import Saga, Step, Branch, Choice
>>> saga = Saga(name="s", steps=(Step(name="a", effects=False), Choice(name="c", branches=(
...     Branch(when="yes", probability=1.0), Branch(when="no", probability=0.0)))))
>>> [w.code for w in lint(saga)]
['dead-branch']
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import StateSpaceLimitError
from ..machine import compile_saga
from ..model import Choice, Map, Saga, Step, SubSaga, walk

__all__ = ["Warning", "lint"]

#: Most items a map may run at once before ``check`` warns that its state space explodes.
WIDE_MAP = 4


@dataclass(frozen=True, slots=True)
class Warning:
    """A design defect found without exploring: a code, and one sentence with the fix."""

    code: str
    message: str


def lint(saga: Saga) -> list[Warning]:
    """Design defects visible in the model itself, each with its fix."""
    warnings: list[Warning] = []
    covered = _covered(saga)
    steps = list(saga.all_steps())
    pivot_index = saga.pivot_index
    pivot_name = None
    after_pivot: set[str] = set()
    if pivot_index is not None:
        pivot = saga.steps[pivot_index]
        assert isinstance(pivot, Step)
        pivot_name = pivot.name
        after_pivot = {s.name for s in steps[steps.index(pivot) + 1 :]}

    def can_fail(step: Step) -> bool:
        return step.failure > 0 or step.reject > 0 or step.p_timeout > 0

    for i, step in enumerate(steps):
        comp = step.compensation
        if comp is not None and step.name in after_pivot:
            warnings.append(
                Warning(
                    "compensation-after-pivot",
                    f"{step.name} has a compensation but runs after the pivot {pivot_name}, where "
                    "the saga only moves forward, so it never runs: move the step before the pivot "
                    "or make it retriable without a compensation.",
                )
            )
        if comp is not None and not step.effects:
            warnings.append(
                Warning(
                    "read-only-compensation",
                    f"{step.name} is read-only (effects: false) yet has a compensation {comp.name} "
                    "with nothing to undo: remove the compensation or declare the effects.",
                )
            )
        if step.effects and comp is None and step.name not in after_pivot | covered:
            later = [s.name for s in steps[i + 1 :] if can_fail(s) and s.name not in after_pivot]
            if step.kind != "pivot" and later:
                warnings.append(
                    Warning(
                        "uncompensated-effect",
                        f"{step.name} has effects and no compensation, and {later[0]} can fail "
                        "after it: that failure leaves its effect in place (leaked); add a "
                        "compensation, move it after the pivot, or declare effects: false.",
                    )
                )
        for action in (step, comp):
            if action is None:
                continue
            if action.timeout_ms is not None and not (action.idempotent or action.rejects_late):
                warnings.append(
                    Warning(
                        "ambiguous-timeout",
                        f"{action.name} has a timeout but is neither idempotent nor rejects_late: "
                        "a timed-out attempt may still land after a retry (duplicate) or after its "
                        "compensation (hanging); make it idempotent and have the participant "
                        "reject late work.",
                    )
                )
            if action.retry.unbounded and action.failure >= 1:
                warnings.append(
                    Warning(
                        "retries-forever",
                        f"{action.name} retries without bound but every attempt fails "
                        "(failure 1): the saga never ends; lower the failure or bound the "
                        "attempts.",
                    )
                )
        if comp is not None and step.name not in after_pivot:
            fragile = comp.failure > 0 or comp.p_timeout > 0
            if comp.reject > 0 or (fragile and not comp.retry.unbounded):
                warnings.append(
                    Warning(
                        "fragile-compensation",
                        f"compensation {comp.name} can fail and has "
                        f"{_attempts(comp.retry.attempts)}: when they run out the saga is stuck "
                        "and needs manual repair; retry compensations without bound and make "
                        "sure they cannot be rejected.",
                    )
                )
        if step.name in after_pivot and (
            step.reject > 0 or (can_fail(step) and not step.retry.unbounded)
        ):
            why = (
                "can be rejected"
                if step.reject > 0
                else (f"can fail and has {_attempts(step.retry.attempts)}")
            )
            warnings.append(
                Warning(
                    "fragile-forward-step",
                    f"{step.name} runs after the pivot {pivot_name} and {why}: the saga cannot "
                    "go back, so it ends stuck; make it retriable with unbounded retries and no "
                    "rejection.",
                )
            )
    return warnings + _graph_lint(saga) + _broker_lint(saga) + _shared_lint(saga)


def _shared_lint(saga: Saga) -> list[Warning]:
    """Resources that only one instance at a time ever touches in ``check``."""
    touched = {w.resource for a in saga.actions() for w in a.writes}
    touched |= {name for s in saga.all_steps() for name in s.reads}
    if not touched or saga.instances > 1 or saga.arrivals is not None:
        return []
    names = ", ".join(r.name for r in saga.all_resources() if r.name in touched)
    message = (
        f"the steps share resources ({names}), but check explores one instance and the saga "
        "has no arrivals: set instances: 2 to look for lost updates, dirty reads and stale "
        "compensations between concurrent sagas."
    )
    return [Warning("single-instance", message)]


def _broker_lint(saga: Saga) -> list[Warning]:
    """Defects of a choreography's broker, or a broker an orchestration ignores."""
    broker = saga.broker
    if saga.coordination == "orchestration":
        if broker == type(broker)():
            return []
        message = (
            "the model sets a broker but coordination is orchestration, which calls services "
            "directly: set coordination: choreography or remove the broker."
        )
        return [Warning("broker-ignored", message)]
    warnings = []
    if broker.loss > 0 and broker.redelivery.attempts is not None:
        warnings.append(
            Warning(
                "lossy-broker",
                f"the broker loses messages (loss {broker.loss:g}) and sends each at most "
                f"{_times(broker.redelivery.attempts)}: a message lost for good stalls the saga "
                "(stuck); redeliver without bound (redelivery: {attempts: unbounded}).",
            )
        )
    if broker.duplicate > 0:
        naive = [s.name for s in saga.all_steps() if s.effects and not s.idempotent]
        if naive:
            warnings.append(
                Warning(
                    "duplicate-delivery",
                    f"the broker can deliver a message twice, and {', '.join(naive)} "
                    f"{'is' if len(naive) == 1 else 'are'} not idempotent: a duplicated event "
                    "applies the effect again; deduplicate by saga id (idempotent: true).",
                )
            )
    return warnings


def _attempts(attempts: int | None) -> str:
    if attempts is None:
        return "unbounded attempts"
    return "1 attempt" if attempts == 1 else f"{attempts} attempts"


def _times(attempts: int) -> str:
    return {1: "once", 2: "twice"}.get(attempts, f"{attempts} times")


def _covered(saga: Saga) -> set[str]:
    """Steps of sub-sagas that a whole-child compensation undoes."""
    return {
        step.name
        for e in walk(saga.steps)
        if isinstance(e, SubSaga) and e.compensation is not None
        for step in e.saga.all_steps()
    }


def _graph_lint(saga: Saga) -> list[Warning]:
    """Defects of choices, ends, jumps, self-compensation and maps."""
    warnings: list[Warning] = []
    for e in walk(saga.steps):
        if isinstance(e, Choice):
            for branch, p in zip(e.branches, e.probabilities):
                if p == 0:
                    warnings.append(
                        Warning(
                            "dead-branch",
                            f"branch {branch.when!r} of choice {e.name} has probability 0, so "
                            "it is never taken and nothing in it is checked: give it a "
                            "probability or remove it.",
                        )
                    )
        if isinstance(e, Step) and e.compensate_on_failure and e.compensation is None:
            warnings.append(
                Warning(
                    "self-compensation-without-compensation",
                    f"{e.name} sets compensate_on_failure but has no compensation to run when "
                    "it fails: add the compensation that undoes a partial call, or remove the "
                    "flag.",
                )
            )
        if isinstance(e, Map):
            widest = max(e.counts)
            at_once = min(widest, e.concurrency or widest)
            if at_once > WIDE_MAP:
                warnings.append(
                    Warning(
                        "wide-map",
                        f"map {e.name} runs up to {at_once} items at once: check explores every "
                        f"interleaving, about (k + 1) ** {at_once} states for k steps an item, "
                        "and stops at --max-states; set a lower concurrency, or check a model "
                        "with fewer items.",
                    )
                )
    try:
        states = compile_saga(saga).states
    except StateSpaceLimitError:  # check says so itself; no reachability to read then
        return warnings
    ran = {a for info in states.values() for a in info.running}
    for m in (e for e in walk(saga.steps) if isinstance(e, Map)):  # item k runs s as s_k
        items = range(1, max(m.counts) + 1)
        body = (s for s in walk(m.steps) if isinstance(s, Step))
        ran |= {s.name for s in body if any(f"{s.name}_{k}" in ran for k in items)}
    unreachable = [s.name for s in saga.all_steps() if s.name not in ran]
    if unreachable:
        warnings.append(
            Warning(
                "unreachable-step",
                f"{', '.join(unreachable)} can never run (after a fail, succeed or goto, or only "
                "in branches never taken): remove it or fix the flow that should reach it.",
            )
        )
    return warnings
