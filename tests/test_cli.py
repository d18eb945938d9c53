"""The command line: exit codes, one-line errors, and golden outputs for every model.

Goldens live in ``tests/golden/``; after an intended change of output, regenerate them with
``SAGASIM_UPDATE_GOLDEN=1 pytest tests/test_cli.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagasim.cli import main

from .bad_inputs import BAD_INPUTS, BadInput

ROOT = Path(__file__).parent.parent
MODELS = sorted((ROOT / "models").rglob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SAGASIM_UPDATE_GOLDEN") == "1"


def run(*args: str) -> tuple[int, str, str]:
    """Run ``python -m sagasim`` in a fresh process, from the repository root."""
    proc = subprocess.run(
        [sys.executable, "-m", "sagasim", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no golden {path.name}: SAGASIM_UPDATE_GOLDEN=1 writes it (review it)"
    assert text == path.read_text(), f"output differs from {path}"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_validate_accepts_every_model(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rel = path.relative_to(ROOT)
    os.chdir(ROOT)
    assert main(["validate", str(rel)]) == 0
    assert capsys.readouterr().out.startswith(f"{rel}: valid (")


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.id)
def test_validate_rejects_bad_input_with_one_line(
    bad: BadInput, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    source = bad.source
    path.write_bytes(source if isinstance(source, bytes) else source.encode())
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == f"{path}:{bad.error}\n"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: "_".join(p.relative_to(ROOT).parts[1:]))
def test_check_golden_outputs(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    stem = "_".join(path.relative_to(ROOT / "models").with_suffix("").parts)
    code, text, err = run("check", rel)
    assert err == ""
    code_json, raw, _ = run("check", rel, "--json")
    data = json.loads(raw)
    assert code == code_json == (0 if data["consistent"] else 1)
    assert sum(data["end_states"].values()) >= 1
    _golden(f"check_{stem}.txt", text)
    # the rate is measured, so it is the one key the golden leaves out
    assert isinstance(data.pop("states_per_s"), int)
    _golden(f"check_{stem}.json", json.dumps(data, indent=2) + "\n")


FLAWED = {
    "leaky_notification": ({"leaked"}, {"uncompensated-effect"}),
    "pivot_too_early": ({"stuck"}, {"compensation-after-pivot", "fragile-forward-step"}),
    "fragile_compensation": ({"stuck"}, {"fragile-compensation"}),
    "ambiguous_timeout": ({"duplicate_effect", "hanging", "late_leak"}, {"ambiguous-timeout"}),
}


@pytest.mark.parametrize("name", sorted(FLAWED))
def test_each_flawed_model_is_reported_with_its_defect(name: str) -> None:
    code, raw, _ = run("check", f"models/flawed/{name}.yaml", "--json")
    data = json.loads(raw)
    violations, warnings = FLAWED[name]
    assert code == 1 and not data["consistent"]
    assert {v["outcome"] for v in data["violations"]} == violations
    assert {w["code"] for w in data["warnings"]} == warnings


#: The seat booking family shows what each countermeasure leaves (models/README.md): what check
#: must find in each, and the warnings that say what to do about it.
SEAT_BOOKING = {
    "seat_booking": ({"lost_update", "dirty_read", "stale_compensation"}, {"countermeasure"}),
    "seat_booking_reread": ({"dirty_read", "stale_compensation"}, {"countermeasure"}),
    "seat_booking_version": ({"dirty_read"}, {"countermeasure"}),
    "seat_booking_commutative": ({"dirty_read"}, {"countermeasure"}),
    "seat_booking_semantic_lock": (set(), set()),
    "seat_booking_pessimistic": (set(), set()),
    "seat_booking_crash": ({"duplicate_effect", "late_leak"}, {"crash-duplicate"}),
}


@pytest.mark.parametrize("name", sorted(SEAT_BOOKING))
def test_each_seat_booking_model_leaves_what_its_countermeasure_leaves(name: str) -> None:
    code, raw, _ = run("check", f"models/{name}.yaml", "--json")
    data = json.loads(raw)
    violations, warnings = SEAT_BOOKING[name]
    assert code == (1 if violations else 0) and data["consistent"] == (not violations)
    assert {v["outcome"] for v in data["violations"]} == violations
    assert {w["code"] for w in data["warnings"]} == warnings


def test_sound_models_are_consistent() -> None:
    for path in sorted((ROOT / "models").glob("*.yaml")):
        if path.stem in SEAT_BOOKING:
            continue
        code, raw, _ = run("check", str(path.relative_to(ROOT)), "--json")
        assert code == 0, raw
        assert json.loads(raw)["violations"] == []


def test_fail_on_narrows_what_counts() -> None:
    model = "models/flawed/ambiguous_timeout.yaml"
    assert run("check", model, "--fail-on", "leaked,stuck")[0] == 0
    assert run("check", model, "--fail-on", "hanging")[0] == 1
    code, out, err = run("check", model, "--fail-on", "lost")
    assert code == 2 and out == ""
    assert err == (
        "--fail-on: unknown outcome 'lost' (expected some of leaked, stuck, duplicate_effect,"
        " hanging, late_leak, lost_update, dirty_read, stale_compensation, deadlock)\n"
    )


def test_max_states_stops_cleanly() -> None:
    code, out, err = run("check", "models/flawed/ambiguous_timeout.yaml", "--max-states", "10")
    assert code == 2 and out == ""
    assert err.startswith("ambiguous_timeout: more than 10 states after exploring")
    assert "--max-states" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "models/nope.yaml"], "models/nope.yaml: no such file"),
        (["check", "models"], "models: is a directory, expected a model file"),
        (
            ["check", "models/order_fulfillment.yaml", "--set", "process_payment.rejct=0.1"],
            "--set process_payment.rejct=0.1: unknown key 'rejct' in process_payment"
            " (did you mean 'reject'?)",
        ),
        (
            ["draw", "models/order_fulfillment.yaml", "-o", "models/order_fulfillment.yaml"],
            "models/order_fulfillment.yaml: refusing to overwrite the model file with output",
        ),
        (
            ["draw", "models/order_fulfillment.yaml", "-o", "no/such/dir/x.svg"],
            "no/such/dir/x.svg: directory no/such/dir does not exist",
        ),
        (
            ["simulate", "models/order_fulfillment.yaml", "--runs", "0"],
            "--runs: expected a positive number of runs, got 0",
        ),
    ],
)
def test_bad_requests_get_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert (code, out, err) == (2, "", message + "\n")


def test_usage_errors_are_one_line() -> None:
    code, _, err = run("simulate")
    assert code == 2 and err.count("\n") == 1
    assert (
        err == "sagasim simulate: error: the following arguments are required: MODEL (see --help)\n"
    )


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("sagasim ")


def test_import_export_round_trip_through_the_cli(tmp_path: Path) -> None:
    asl = tmp_path / "travel.asl.json"
    code, out, _ = run("export", "models/travel_booking.yaml", "-o", str(asl))
    assert code == 0 and out == f"wrote {asl}\n"
    model = tmp_path / "travel.yaml"
    assert run("import", str(asl), "-o", str(model))[0] == 0
    code, _, err = run("import", str(asl), "-o", str(model))
    assert code == 2 and err.splitlines()[-1] == f"{model}: exists; pass --force to overwrite it"
    assert all(line.startswith("assumed: ") for line in err.splitlines()[:-1])
    code, out, _ = run("check", str(asl), "--json")
    direct = json.loads(out)
    code_yaml, out_yaml, _ = run("check", str(model), "--json")
    assert code == code_yaml == 0
    assert json.loads(out_yaml)["end_states"] == direct["end_states"]
    assert direct["end_states"]["committed"] == 1


def test_sweep_writes_a_plot_and_a_csv(tmp_path: Path) -> None:
    plot, csv = tmp_path / "sweep.png", tmp_path / "sweep.csv"
    code, out, err = run(
        "sweep",
        "models/order_fulfillment.yaml",
        "--vary",
        "process_payment.reject=0:0.2:3",
        "--runs",
        "1000",
        "--plot",
        str(plot),
        "--csv",
        str(csv),
        "--json",
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = csv.read_text().splitlines()
    assert rows[0].startswith("process_payment.reject,runs,seed,committed")
    assert [r.split(",")[0] for r in rows[1:]] == ["0.0", "0.1", "0.2"]
    assert len(data["points"]) == 3


def test_sweep_refuses_a_malformed_vary() -> None:
    code, out, err = run(
        "sweep", "models/order_fulfillment.yaml", "--vary", "process_payment.reject=0:0.2"
    )
    assert (code, out) == (2, "")
    assert err == (
        "--vary process_payment.reject=0:0.2: expected PATH=START:STOP:COUNT, got '0:0.2'\n"
    )
