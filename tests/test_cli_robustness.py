"""Every subcommand, asked for something it cannot do, answers with one line and exit code 2.

Missing files, directories, outputs that cannot be written, unknown formats and suffixes, bad
``--set`` paths and values, absurd sizes and pathological models: never a traceback, never a
second line. Also what the tool promises about existing outputs, and the limits that keep a
run from hanging.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagasim.cli import main
from sagasim.machine import orchestration as machine

ROOT = Path(__file__).resolve().parent.parent
MODEL = "models/order_fulfillment.yaml"
#: Each subcommand with the arguments that make it run on MODEL.
COMMANDS: dict[str, list[str]] = {
    "validate": [],
    "draw": ["-o", "OUT.svg"],
    "check": [],
    "analyze": ["--no-sensitivity"],
    "simulate": ["--runs", "200", "--quiet"],
    "sweep": ["--vary", "process_payment.reject=0:0.1:2", "--runs", "200"],
    "compare": ["--runs", "200", "--quiet"],
    "report": ["-o", "OUT.html", "--runs", "200"],
    "import": [],
    "export": [],
}
WITH_SET = ["draw", "check", "analyze", "simulate", "sweep", "compare", "report"]
#: Where each command writes a file, and the suffix it expects there.
OUTPUTS = {
    "draw": ("-o", ".svg"),
    "report": ("-o", ".html"),
    "import": ("-o", ".yaml"),
    "export": ("-o", ".json"),
    "simulate": ("--trace", ".jsonl"),
    "sweep": ("--plot", ".png"),
}


@pytest.fixture(autouse=True)
def at_root(tmp_path: Path) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(cwd)


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's own errors
            code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def refused(*args: str) -> str:
    """Run a request that must be refused; return its one line."""
    code, out, err = run(*args)
    assert "Traceback" not in out + err
    assert (code, out) == (2, ""), (code, out, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err.rstrip("\n")


def arguments(command: str, tmp_path: Path, model: str = MODEL) -> list[str]:
    extra = [a.replace("OUT", str(tmp_path / "out")) for a in COMMANDS[command]]
    return [command, model, *extra]


# --- inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_model(command: str, tmp_path: Path) -> None:
    assert refused(*arguments(command, tmp_path, "models/nope.yaml")) == (
        "models/nope.yaml: no such file"
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_directory_instead_of_a_model(command: str, tmp_path: Path) -> None:
    assert refused(*arguments(command, tmp_path, "models")) == (
        "models: is a directory, expected a model file"
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_empty_or_unreadable_model(command: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert refused(*arguments(command, tmp_path, str(empty))).startswith(f"{empty}:1: ")
    assert refused(*arguments(command, tmp_path, "/dev/null")).startswith("/dev/null:")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_format(command: str, tmp_path: Path) -> None:
    line = refused(*arguments(command, tmp_path), "--format", "bpmn")
    assert line.startswith(f"sagasim {command}: error: argument --format")


# --- outputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_an_output_in_a_missing_directory(command: str, tmp_path: Path) -> None:
    flag, suffix = OUTPUTS[command]
    target = f"/proc/no/such/dir/x{suffix}"
    args = [a for a in arguments(command, tmp_path) if not a.startswith(str(tmp_path))]
    args = [a for a in args if a != flag] + [flag, target]
    assert refused(*args) == f"{target}: directory /proc/no/such/dir does not exist"


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_an_output_that_cannot_be_written(command: str, tmp_path: Path) -> None:
    # /proc exists but takes no new files, even from root (chmod would not stop root)
    flag, suffix = OUTPUTS[command]
    target = f"/proc/sagasim{suffix}"
    args = [a for a in arguments(command, tmp_path) if not a.startswith(str(tmp_path))]
    args = [a for a in args if a != flag] + [flag, target]
    line = refused(*args)
    assert target in line and "writ" in line, line


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_a_directory_as_output(command: str, tmp_path: Path) -> None:
    flag, _ = OUTPUTS[command]
    args = [a for a in arguments(command, tmp_path) if not a.startswith(str(tmp_path))]
    args = [a for a in args if a != flag] + [flag, str(tmp_path)]
    assert refused(*args) == f"{tmp_path}: is a directory, expected a file name"


@pytest.mark.parametrize("command", sorted(OUTPUTS))
def test_the_model_file_is_never_overwritten(command: str, tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    text = (ROOT / MODEL).read_text()
    model.write_text(text)
    flag, _ = OUTPUTS[command]
    args = [
        a for a in arguments(command, tmp_path, str(model)) if not a.startswith(f"{tmp_path}/out")
    ]
    args = [a for a in args if a != flag] + [flag, str(model)]
    line = refused(*args)
    assert "refusing to overwrite the model file" in line or "unknown" in line, line
    assert model.read_text() == text


@pytest.mark.parametrize(
    ("command", "flag", "name", "expected"),
    [
        ("draw", "-o", "x.bmp", "unknown"),
        ("report", "-o", "x.pdf", "unknown report format '.pdf'"),
        ("simulate", "--trace", "x.csv", "unknown trace format '.csv'"),
        ("sweep", "--plot", "x.gif", "unknown plot format '.gif'"),
    ],
)
def test_an_unknown_output_suffix(
    command: str, flag: str, name: str, expected: str, tmp_path: Path
) -> None:
    target = tmp_path / name
    args = [a for a in arguments(command, tmp_path) if not a.startswith(str(tmp_path))]
    args = [a for a in args if a != flag] + [flag, str(target)]
    assert expected in refused(*args)
    assert not target.exists()


def test_import_keeps_an_existing_output_unless_forced(tmp_path: Path) -> None:
    # the one command that promises it (--force): the others overwrite their output files
    out = tmp_path / "model.yaml"
    out.write_text("keep me\n")
    assert refused("import", MODEL, "-o", str(out)) == (
        f"{out}: exists; pass --force to overwrite it"
    )
    assert out.read_text() == "keep me\n"
    assert run("import", MODEL, "-o", str(out), "--force")[0] == 0
    assert out.read_text().startswith("#") and "saga: order_fulfillment" in out.read_text()


def test_draw_replaces_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "diagram.svg"
    out.write_text("old")
    assert run("draw", MODEL, "-o", str(out))[0] == 0
    assert out.read_text().lstrip().startswith("<")


# --- overrides ----------------------------------------------------------------------------------

BAD_SETS = {
    "nosuch.reject=0.1": "unknown step or compensation 'nosuch'",
    "process_payment.rejct=0.1": "unknown key 'rejct' in process_payment",
    "process_payment.reject=abc": "process_payment.reject",
    "process_payment.reject=2": "expected a probability in [0, 1], got 2",
    "process_payment.reject=1e400": "expected a number, got inf",
    "process_payment.reject=[1, 2]": "expected a single value, got a list",
    "process_payment.reject": "expected PATH=VALUE, got no '='",
    "=1": "expected PATH=VALUE, got no PATH",
    "process_payment.retry.attempts=0": "expected a positive integer or 'unbounded', got 0",
    "process_payment.latency.dist=weird": "expected one of",
    "services.payments.capacity=-1": "expected a positive integer, got -1",
    "steps[99].reject=0.1": "",
}


@pytest.mark.parametrize("command", WITH_SET)
@pytest.mark.parametrize("assignment", sorted(BAD_SETS))
def test_a_bad_set(command: str, assignment: str, tmp_path: Path) -> None:
    line = refused(*arguments(command, tmp_path), "--set", assignment)
    assert line.startswith(f"--set {assignment}: "), line
    assert BAD_SETS[assignment] in line, line
    assert not (tmp_path / "out.svg").exists() and not (tmp_path / "out.html").exists()


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("runs", ["0", "-5", str(10**12), str(10**40)])
@pytest.mark.parametrize("command", ["simulate", "sweep", "report"])
def test_absurd_runs_are_refused_before_starting(command: str, runs: str, tmp_path: Path) -> None:
    args = arguments(command, tmp_path)
    args[args.index("--runs") + 1] = runs
    line = refused(*args)
    assert line.startswith("--runs: "), line
    if int(runs) > 1:
        assert "at most 50,000,000 at once" in line and "GB" in line


def test_a_sweep_too_big_in_total_is_refused() -> None:
    line = refused(
        "sweep", MODEL, "--vary", "process_payment.reject=0:0.1:1000",
        "--vary", "reserve_inventory.failure=0:0.1:1000", "--runs", "100",
    )  # fmt: skip
    assert line.startswith("--runs: 100,000,000 runs would need about 4.0 GB")


@pytest.mark.parametrize("command", ["check", "draw"])
def test_max_states_stops_cleanly_and_says_how_to_shrink(command: str, tmp_path: Path) -> None:
    args = [command, "models/flawed/ambiguous_timeout.yaml", "--max-states", "10"]
    if command == "draw":
        args += ["-o", str(tmp_path / "s.svg"), "--view", "states"]
    line = refused(*args)
    assert line.startswith("ambiguous_timeout: more than 10 states after exploring")
    assert "transitions so far" in line
    assert "fewer retries, shorter parallel branches" in line and "--max-states" in line


def test_max_states_must_be_positive() -> None:
    assert "--max-states" in refused("check", MODEL, "--max-states", "0")


# --- pathological models, found by fuzzing: kept as regular tests --------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("coordination", ["orchestration", "choreography"])
def test_unbounded_retries_through_an_endless_outage_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, coordination: str
) -> None:
    # zero latency and zero delay: every retry fell at the same instant, for ever
    monkeypatch.setattr(machine, "MAX_ATTEMPTS", 10_000)  # the default, 1,000,000, takes 7 s
    model = write(
        tmp_path,
        f"saga: loop\ncoordination: {coordination}\n"
        "services: {pay: {outages: [{start: 0s, end: 1s}]}}\nsteps:\n"
        "  - {name: a, compensation: u}\n"
        "  - {name: b, service: pay, retry: {attempts: unbounded}}\n",
    )
    assert refused("simulate", model, "--runs", "3", "--quiet") == (
        "loop: b made 10,000 attempts in instance 0 without ending (retried without limit "
        "through an outage, or almost never succeeding); bound its retries or shorten the outage"
    )


def test_a_machine_too_large_to_compile_is_refused(tmp_path: Path) -> None:
    # twelve branches compiled for ever; now refused after 4,000 states
    branches = ", ".join(
        f"[{{name: b{i}, failure: 0.1, retry: {{attempts: 3}}, compensation: u{i}}}]"
        for i in range(12)
    )
    model = write(tmp_path, f"saga: wide\nsteps:\n  - parallel: [{branches}]\n")
    for command in ("check", "analyze", "simulate"):
        line = refused(command, model)
        assert line.startswith("wide: the orchestrator alone has more than 4,000 states"), line


def test_a_lognormal_whose_mean_overflows_has_an_infinite_expected_latency(
    tmp_path: Path,
) -> None:
    # analyze crashed with OverflowError; then printed numpy warnings
    model = write(
        tmp_path,
        "saga: heavy\nsteps:\n  - {name: a, reject: 0.1, compensation: u,"
        " latency: {dist: lognormal, median: 1ms, sigma: 1000}}\n  - {name: b, reject: 0.1}\n",
    )
    code, out, err = run("analyze", model)
    assert (code, err) == (0, "")
    assert "the latency of a has no finite mean" in out
    assert "infinite" in out.splitlines()[2]  # committed
