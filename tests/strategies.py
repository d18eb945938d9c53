"""Hypothesis strategies that generate sagas: sequential and parallel, every step kind,
bounded and unbounded retries, timeouts, idempotency, both compensation orders."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from sagasim.model import Compensation, Constant, Exponential, Parallel, Retry, Saga, Step

PROBABILITIES = st.sampled_from([0.0, 0.0, 0.1, 0.3])
ATTEMPTS = st.sampled_from([1, 2, 3, None])


@st.composite
def retries(draw: st.DrawFn) -> Retry:
    return Retry(
        attempts=draw(ATTEMPTS),
        delay_ms=draw(st.sampled_from([0.0, 5.0])),
        backoff=draw(st.sampled_from(["fixed", "exponential"])),
    )


@st.composite
def actions(draw: st.DrawFn, name: str, *, timeouts: bool) -> dict[str, object]:
    """The keyword arguments shared by steps and compensations."""
    fields: dict[str, object] = {
        "name": name,
        "failure": draw(PROBABILITIES),
        "retry": draw(retries()),
        "latency": draw(st.sampled_from([Constant(value_ms=10.0), Exponential(mean_ms=10.0)])),
    }
    if timeouts and draw(st.booleans()):
        fields["latency"] = Exponential(mean_ms=10.0)
        fields["timeout_ms"] = 15.0
        fields["idempotent"] = draw(st.booleans())
        fields["rejects_late"] = draw(st.booleans())
    return fields


@st.composite
def steps(draw: st.DrawFn, name: str, *, timeouts: bool = True) -> Step:
    fields = draw(actions(name, timeouts=timeouts))
    effects = True
    compensation = None
    if draw(st.integers(0, 3)) > 0:
        comp_fields = draw(actions(f"undo_{name}", timeouts=timeouts))
        compensation = Compensation(**comp_fields)  # type: ignore[arg-type]
    elif draw(st.booleans()):
        effects = False
    return Step(
        **fields,  # type: ignore[arg-type]
        reject=draw(PROBABILITIES),
        effects=effects,
        compensation=compensation,
    )


@st.composite
def sagas(
    draw: st.DrawFn,
    *,
    parallel: bool = True,
    timeouts: bool = True,
    max_entries: int = 4,
) -> Saga:
    """A random saga small enough to explore in milliseconds."""
    count = draw(st.integers(1, max_entries))
    entries: list[Step | Parallel] = []
    index = 0
    has_group = False
    for _ in range(count):
        if parallel and not has_group and draw(st.integers(0, 3)) == 0:
            has_group = True
            branches = []
            for _ in range(draw(st.integers(2, 3))):
                branch = []
                for _ in range(draw(st.integers(1, 2))):
                    branch.append(draw(steps(f"s{index}", timeouts=False)))
                    index += 1
                branches.append(tuple(branch))
            entries.append(Parallel(branches=tuple(branches)))
        else:
            entries.append(draw(steps(f"s{index}", timeouts=timeouts)))
            index += 1
    sequential = [i for i, e in enumerate(entries) if isinstance(e, Step)]
    if sequential and draw(st.booleans()):
        at = draw(st.sampled_from(sequential))
        pivot = entries[at]
        assert isinstance(pivot, Step)
        entries[at] = replace(pivot, kind_declared="pivot", compensation=None)
        for i in range(at + 1, len(entries)):
            entry = entries[i]
            if isinstance(entry, Step) and draw(st.booleans()):
                entries[i] = replace(entry, kind_declared="retriable", compensation=None)
    return Saga(
        name="generated",
        steps=tuple(entries),
        compensation_order=draw(st.sampled_from(["reverse", "parallel"])),
    )


def sequential_sagas(**kwargs: object) -> st.SearchStrategy[Saga]:
    return sagas(parallel=False, **kwargs)  # type: ignore[arg-type]


def make_safe(saga: Saga) -> Saga:
    """The same saga with every guarantee of a consistent design: each step with effects
    before the pivot has a compensation that cannot fail, each step after the pivot retries
    without bound and cannot be rejected, and each step with a timeout is idempotent and
    rejects late work."""
    pivot = saga.pivot_index
    entries: list[Step | Parallel] = []
    for index, entry in enumerate(saga.steps):
        after = pivot is not None and index > pivot

        def fix(step: Step, after: bool = after) -> Step:
            if step.timeout_ms is not None:
                step = replace(step, idempotent=True, rejects_late=True)
            if after:
                return replace(step, retry=Retry(attempts=None), reject=0.0)
            if step.effects and step.kind != "pivot":
                name = step.compensation.name if step.compensation else f"undo_{step.name}"
                step = replace(step, compensation=Compensation(name=name))
            return step

        if isinstance(entry, Step):
            entries.append(fix(entry))
        else:
            entries.append(
                Parallel(branches=tuple(tuple(map(fix, branch)) for branch in entry.branches))
            )
    return replace(saga, steps=tuple(entries))
