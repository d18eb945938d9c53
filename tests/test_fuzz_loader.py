"""Fuzzing the loader: generated and mutated model files never crash it, never run code.

Every input ends in one of two ways: a valid :class:`Saga` (which then survives the dump/load
round trip), or a :class:`SagaDefinitionError` of one line naming the file, the line and the
path. ``sagasim validate`` exits 0 or 2 with exactly one line on stderr and no traceback.
Inputs start from the real models in ``models/`` (mutated as data: wrong types, deleted keys,
unknown keys, huge numbers, NaN and infinities, negative durations, deep nesting, duplicate
names; and as text: flipped bytes, non-UTF-8 bytes, a BOM, duplicate keys, tags, anchors and
alias bombs, several documents, truncation) or are generated from scratch (YAML of random
plain data, random text, random bytes). Pathological sizes are refused with a limit message
inside hypothesis' deadline rather than by a timing assertion.

With the settings below, one run fuzzes 2,250 inputs through the loader and 200 more through
the in-process command line, plus 37 named cases and 6 subprocess runs (``pytest -s`` prints
the counts).
"""

from __future__ import annotations

import contextlib
import copy
import io as stdio
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagasim.cli import main
from sagasim.exceptions import SagaDefinitionError
from sagasim.io import format as io
from sagasim.io.yaml import MAX_ALIASES, MAX_BYTES
from sagasim.model import Saga

from .bad_inputs import BOMB, GOOD_MODEL

ROOT = Path(__file__).resolve().parent.parent
MODEL_TEXTS = [GOOD_MODEL] + [p.read_text() for p in sorted(ROOT.glob("models/**/*.yaml"))]
MODEL_DATA = [yaml.safe_load(text) for text in MODEL_TEXTS]
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: Refusals about the file as a whole: they have no line to name.
WHOLE_FILE = ("expected at most", "expected a readable file")
FUZZ = settings(
    deadline=2_000,  # ms per input: a pathological one is refused quickly, or the test fails
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same inputs on every run and in CI
)
#: Inputs each fuzzing test has seen in this run (reported by ``pytest -s``).
SEEN: dict[str, int] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("fuzz")
    for child in (ROOT / "models" / "graph").glob("*.yaml"):  # sub-sagas resolve beside it
        (folder / child.name).write_text(child.read_text())
    yield folder
    total = sum(SEEN.values())
    print(f"\nfuzzed inputs: {total:,} ({', '.join(f'{k} {v}' for k, v in SEEN.items())})")


def check_file(path: Path, counter: str) -> Saga | SagaDefinitionError:
    """Load ``path``: a valid saga that round-trips, or a well-formed one-line error."""
    SEEN[counter] = SEEN.get(counter, 0) + 1
    try:
        saga = io.load(path)
    except SagaDefinitionError as err:
        check_error(err, path)
        return err
    assert isinstance(saga, Saga)
    assert io.loads(io.dumps(saga), base=path.parent) == saga
    return saga


def check_error(err: SagaDefinitionError, path: Path) -> None:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text, text
    assert err.file == str(path), text
    if err.line is None:
        assert err.message.startswith(WHOLE_FILE), text
        assert text.startswith(f"{path}: "), text
    else:
        # YAML also breaks lines at \r, NEL, LS and PS: splitlines() counts those and more
        lines = len(path.read_bytes().decode("utf-8", "replace").splitlines()) + 1
        assert 1 <= err.line <= lines, (err.line, lines, text)
        assert text.startswith(f"{path}:{err.line}: "), text
    if err.path:
        assert f": {err.path}: " in text, text
    assert err.message and len(text) < 2_000, text


def write(workdir: Path, source: str | bytes, name: str = "fuzz.yaml") -> Path:
    path = workdir / name
    path.write_bytes(source if isinstance(source, bytes) else source.encode("utf-8", "replace"))
    return path


# --- mutations of the real models, as data ------------------------------------------------------

NASTY = [
    None, True, False, 0, -1, 1.5, -0.5, 2, 10**30, 10**400, -(10**400), math.nan, math.inf,
    -math.inf, "", "x" * 5_000, "-5ms", "5", "5 ms", "1e400ms", "9" * 400 + "ms", "99999999s",
    "unbounded", "yes", "on", "null", [], {}, [1, 2], {"a": 1}, {"dist": "constant"},
    {"dist": "lognormal", "median": "1ms", "sigma": 1e300}, "validate_order", "ü名前", "a b",
    "class", "__init__", "steps[0]", "50/s", "1e400/s", [[[[[[[[[[[]]]]]]]]]]],
]  # fmt: skip
KEYS = ["name", "failure", "reject", "timeout", "retry", "attempts", "latency", "dist", "steps",
        "saga", "parallel", "compensation", "kind", "services", "capacity", "outages", "rate",
        "failur", "__class__", "", "0", "broker", "choice", "branches", "when", "probability",
        "default", "fail", "succeed", "goto", "map", "items", "concurrency", "model",
        "compensate_on_failure", "max_visits", "samples"]  # fmt: skip


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a plain-data tree, the root included."""
    yield prefix
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        yield from paths(child, (*prefix, key))


def get(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    """A real model with one to three edits anywhere in its tree."""
    data = copy.deepcopy(draw(st.sampled_from(MODEL_DATA)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(list(paths(data))))
        if not at:
            continue
        parent, key = get(data, at[:-1]), at[-1]
        edit = draw(st.sampled_from(["replace", "replace", "delete", "unknown", "nest", "copy"]))
        # NASTY's lists and dicts are copied: a later edit inside one must not change NASTY
        if edit == "replace":
            value = draw(st.sampled_from(NASTY) | st.integers() | st.floats() | st.text())
            parent[key] = copy.deepcopy(value)
        elif edit == "delete":
            del parent[key]
        elif edit == "unknown" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = copy.deepcopy(draw(st.sampled_from(NASTY)))
        elif edit == "nest":
            value = parent[key]
            for _ in range(draw(st.integers(1, 60))):
                value = draw(st.sampled_from([[value], {"parallel": [[value]]}, {"x": value}]))
            parent[key] = value
        elif edit == "copy":  # a sibling's value: duplicate names, swapped structures
            other = get(data, draw(st.sampled_from(list(paths(data)))))
            parent[key] = copy.deepcopy(other)
    return data


def dump(data: Any) -> str:
    # PyYAML writes .nan/.inf and big integers; YAML 1.2 reads them back the same
    return yaml.dump(data, Dumper=DUMPER, allow_unicode=True, sort_keys=False, width=1_000)


@settings(FUZZ, max_examples=450)
@given(mutated_data())
def test_mutated_models_load_or_fail_with_file_line_and_path(workdir: Path, data: Any) -> None:
    check_file(write(workdir, dump(data)), "data mutations")


# --- mutations of the real models, as text ------------------------------------------------------

TEXT_EDITS = [
    "\ufeff", "\x00", "\x07", "\t", "\r", "\x85", "\u2028", "\ud800", ": ", "- ", "{", "}", "[",
    "]", "&a ", "*a ", "*nowhere ", "!!python/object/apply:os.system ['true'] ", "!!binary ",
    "!!float ", "!custom ", "<<: *a\n", "---\n", "...\n", "%YAML 1.1\n---\n", "? ", "|\n", ">-\n",
    "'", '"', "#", "@", "`", "%", "\\", "\n  ", "\n", "\n- name: x\n", "saga: again\n",
]  # fmt: skip


@st.composite
def mutated_text(draw: st.DrawFn) -> bytes:
    """A real model's bytes with insertions, deletions, duplicated lines and foreign bytes."""
    raw = bytearray(draw(st.sampled_from(MODEL_TEXTS)).encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["insert", "insert", "bytes", "delete", "duplicate", "cut"]))
        if edit == "insert":
            raw[at:at] = draw(st.sampled_from(TEXT_EDITS)).encode("utf-8", "surrogatepass")
        elif edit == "bytes":
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "delete":
            del raw[at : at + draw(st.integers(1, 20))]
        elif edit == "duplicate":  # a line again: a duplicate key, or a duplicate step
            start = raw.rfind(b"\n", 0, at) + 1
            end = raw.find(b"\n", at)
            end = len(raw) if end < 0 else end + 1
            raw[end:end] = raw[start:end]
        elif edit == "cut":
            del raw[at:]
    return bytes(raw)


@settings(FUZZ, max_examples=1_000)
@given(mutated_text())
def test_mutated_model_text_loads_or_fails_with_file_line_and_path(
    workdir: Path, raw: bytes
) -> None:
    check_file(write(workdir, raw), "text mutations")


# --- generated from scratch ---------------------------------------------------------------------

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(NASTY[:27])
)  # fmt: skip
PLAIN = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def generated_models(draw: st.DrawFn) -> Any:
    """Plain data shaped like a model often enough to get past the first checks."""
    data = draw(st.dictionaries(st.sampled_from(KEYS), PLAIN, max_size=6))
    if draw(st.booleans()):
        data["saga"] = draw(st.sampled_from(["s", "order", "", None, 1]))
        data["steps"] = draw(st.lists(PLAIN | st.fixed_dictionaries({"name": PLAIN}), max_size=4))
    return data


@settings(FUZZ, max_examples=200)
@given(generated_models())
def test_generated_documents_load_or_fail_with_file_line_and_path(workdir: Path, data: Any) -> None:
    check_file(write(workdir, dump(data)), "generated documents")


@settings(FUZZ, max_examples=600)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")))
def test_random_bytes_load_or_fail_with_file_line_and_path(workdir: Path, raw: bytes) -> None:
    check_file(write(workdir, raw), "random bytes")


# --- through the command line -------------------------------------------------------------------


def validate(path: Path) -> tuple[int, str, str]:
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, out.getvalue(), err.getvalue()


@settings(FUZZ, max_examples=200)
@given(mutated_data().map(dump).map(str.encode) | mutated_text())
def test_validate_exits_0_or_2_with_one_line(workdir: Path, raw: bytes) -> None:
    SEEN["command line"] = SEEN.get("command line", 0) + 1
    path = write(workdir, raw, "cli.yaml")
    code, out, err = validate(path)
    assert "Traceback" not in out + err
    if code == 0:
        assert err == "" and out.startswith(f"{path}: valid (")
    else:
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith(f"{path}:"), err


# --- named cases: code never runs, sizes have limits --------------------------------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


def code_tags(marker: Path) -> list[str]:
    """Tags that would create ``marker`` if any loader constructed them."""
    touch = f"['touch {marker}']"
    return [
        f"saga: !!python/object/apply:os.system {touch}\nsteps: [{{name: a}}]\n",
        f"saga: s\nsteps: [{{name: !!python/object/apply:os.system {touch}}}]\n",
        f"!!python/object/apply:os.system {touch}\n",
        f"saga: s\nsteps:\n  - !!python/object/new:os.system {touch}\n",
        "saga: s\nsteps: [{name: a}]\n"
        f"x: !!python/object/apply:subprocess.call [[touch, {marker}]]\n",
        "saga: !!python/name:os.system\nsteps: [{name: a}]\n",
        "saga: !!python/module:os\nsteps: [{name: a}]\n",
        "saga: s\nsteps: [{name: a}]\n? !!python/tuple [1]\n: x\n",
        f"--- !!python/object/apply:os.system {touch}\n",
        f"saga: !<tag:yaml.org,2002:python/object/apply:os.system> {touch}\nsteps: [{{name: a}}]\n",
    ]


def test_no_model_file_can_run_code(workdir: Path) -> None:
    marker = workdir / "pwned"
    for index, source in enumerate(code_tags(marker)):
        path = write(workdir, source, f"tag{index}.yaml")
        result = check_file(path, "named cases")
        assert isinstance(result, SagaDefinitionError), source
        code, _, err = validate(path)
        assert code == 2 and err.count("\n") == 1
    assert not marker.exists()


PATHOLOGICAL = {
    "alias bomb": (BOMB, "expected at most"),
    "ten-fold aliases": (ALIAS_BOMB, "expected at most 1000000 nodes"),
    "too many aliases": (
        "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n",
        f"at most {MAX_ALIASES} aliases",
    ),
    "recursive alias": ("saga: s\nsteps: &s [{name: a, x: *s}]\n", "alias"),
    "over a megabyte": ("saga: s\nsteps: [{name: a}]\n#" + "x" * MAX_BYTES, "expected at most"),
    "a megabyte of one line": ("saga: '" + "x" * (MAX_BYTES - 20) + "'\nsteps: [a]\n", "a step"),
    "deep flow nesting": ("saga: s\nsteps: " + "[" * 50_000 + "]" * 50_000 + "\n", "deeply"),
    "deep block nesting": (
        "saga: s\nsteps:\n" + "".join(" " * i + "- \n" for i in range(3_000)),
        "",
    ),
    "deep mapping nesting": ("x: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", "deeply"),
    "three thousand steps": (
        "saga: s\nsteps:\n"
        + "".join(f"  - {{name: s{i}, compensation: u{i}}}\n" for i in range(3_000)),
        None,
    ),
    "huge integer": ("saga: s\nsteps: [{name: a, failure: 1" + "0" * 4_000 + "}]\n", "number"),
    "integer past Python's digit limit": (
        "saga: s\nsteps: [{name: a, failure: " + "9" * 5_000 + "}]\n",
        "expected an integer, got '" + "9" * 57 + "...'",
    ),
    "huge duration": ("saga: s\nsteps: [{name: a, timeout: " + "9" * 400 + "ms}]\n", "float"),
    "huge rate": ("saga: s\nsteps: [{name: a}]\narrivals: {rate: " + "9" * 400 + "/s}\n", "rate"),
    "infinite multiplier": ("saga: s\nsteps: [{name: a, retry: {multiplier: .inf}}]\n", "number"),
    "nan probability": ("saga: s\nsteps: [{name: a, reject: .nan}]\n", "number"),
    "negative duration": ("saga: s\nsteps: [{name: a, timeout: -5ms}]\n", "non-negative"),
    "duplicate keys": ("saga: s\nsaga: t\nsteps: [{name: a}]\n", "each key once"),
    "duplicate names": ("saga: s\nsteps: [{name: a}, {name: a}]\n", "a"),
    "two documents": ("saga: s\nsteps: [{name: a}]\n---\nsaga: s\nsteps: [{name: a}]\n", "single"),
    "empty": ("", "empty document"),
    "only a BOM": ("\ufeff", "empty document"),
    "BOM then a model": ("\ufeffsaga: s\nsteps: [{name: a}]\n", None),
    "latin-1": (b"saga: s\nsteps: [{name: caf\xe9}]\n", "UTF-8"),
    "UTF-16": ("saga: s\nsteps: [{name: a}]\n".encode("utf-16"), "UTF-8"),
    "NUL byte": (b"saga: s\x00\nsteps: [{name: a}]\n", "printable"),
    "long key": ("saga: s\nsteps: [{name: a, " + "k" * 100_000 + ": 1}]\n", "valid YAML"),
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
@settings(FUZZ, deadline=5_000, max_examples=1)
@given(st.just(None))
def test_pathological_inputs_are_refused_with_a_limit(
    workdir: Path, name: str, nothing: None
) -> None:
    source, expected = PATHOLOGICAL[name]
    result = check_file(write(workdir, source, "pathological.yaml"), "named cases")
    if expected is None:
        assert isinstance(result, Saga), result
    else:
        assert isinstance(result, SagaDefinitionError), name
        assert expected in result.message, result


# --- bugs the fuzzing found, kept as regular tests ----------------------------------------------


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            "saga: s\nsteps: [{name: a, failure: 1" + "0" * 400 + "}]\n",
            "2: steps[0].failure: expected a number, got 1" + "0" * 56 + "...",
        ),
        (
            "saga: s\nsteps: [{name: a, timeout: " + "9" * 400 + "ms}]\n",
            "2: steps[0].timeout: expected a duration a float can hold, got '" + "9" * 57 + "...'",
        ),
        (
            "saga: s\nsteps: [{name: a}]\narrivals: {rate: .inf}\n",
            "3: arrivals.rate: expected a rate such as 50/s, 3000/min or a number per second,"
            " got inf",
        ),
        (
            "saga: s\nsteps: [{name: a, latency: {dist: lognormal, median: 1ms, sigma: 1e400}}]\n",
            "2: steps[0].latency.sigma: expected a non-negative number, got inf",
        ),
    ],
    ids=["integer past a float (OverflowError)", "duration past a float", "infinite rate",
         "infinite sigma"],
)  # fmt: skip
def test_numbers_beyond_a_float_are_refused(workdir: Path, source: str, error: str) -> None:
    path = write(workdir, source, "beyond.yaml")
    with pytest.raises(SagaDefinitionError) as caught:
        io.load(path)
    assert str(caught.value) == f"{path}:{error}"


# --- a few real processes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        MODEL_TEXTS[1],
        BOMB,
        "saga: !!python/object/apply:os.system ['echo pwned']\nsteps: [{name: a}]\n",
        b"saga: s\nsteps: [{name: \xff}]\n",
        "saga: s\nsteps: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "saga: s\nsteps: [{name: a, failure: 1" + "0" * 400 + "}]\n",
    ],
    ids=["model", "alias bomb", "python tag", "non-UTF-8", "deep nesting", "huge integer"],
)
def test_validate_in_a_real_process(tmp_path: Path, source: str | bytes) -> None:
    path = write(tmp_path, source)
    proc = subprocess.run(
        [sys.executable, "-m", "sagasim", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert "Traceback" not in proc.stderr and "pwned" not in proc.stdout
    if proc.returncode == 0:
        assert proc.stderr == "" and proc.stdout.startswith(f"{path}: valid (")
    else:
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"{path}:")
