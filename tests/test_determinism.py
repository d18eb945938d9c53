"""Same seed, same bytes: ``simulate --json`` and ``sweep --json`` do not depend on the number of
workers, on the process, or on Python's string hashing (PYTHONHASHSEED)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagasim.cli import main

ROOT = Path(__file__).resolve().parent.parent
SIMULATE = ["simulate", "models/order_fulfillment.yaml", "--runs", "12000", "--seed", "7"]
SIMULATE += ["--json", "--quiet"]
SWEEP = ["sweep", "models/travel_booking.yaml", "--vary", "reserve_flight.reject=0:0.2:3"]
SWEEP += ["--vary", "reserve_hotel.failure=0:0.1:2", "--runs", "800", "--seed", "3", "--json"]
COMMANDS = {"simulate": SIMULATE, "sweep": SWEEP}


def in_process(args: list[str]) -> str:
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out):
            assert main(args) == 0
    finally:
        os.chdir(cwd)
    return out.getvalue()


def fresh_process(args: list[str], hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-m", "sagasim", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert proc.stderr == ""
    return proc.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_workers_do_not_change_a_byte(command: str) -> None:
    args = COMMANDS[command]
    one = in_process([*args, "--workers", "1"])
    two = in_process([*args, "--workers", "2"])
    assert one == two
    data = json.loads(one)
    assert data  # and it is the real thing, not an empty answer
    other_seed = [*args[: args.index("--seed") + 1], "8", *args[args.index("--seed") + 2 :]]
    assert in_process(other_seed) != one


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_fresh_processes_with_different_hash_seeds_agree(command: str) -> None:
    args = COMMANDS[command]
    first = fresh_process([*args, "--workers", "2"], "0")
    second = fresh_process([*args, "--workers", "1"], "12345")
    assert first == second
    assert first == in_process(args)


def test_simulate_json_has_the_requested_run() -> None:
    data = json.loads(in_process(SIMULATE))
    assert (data["runs"], data["seed"]) == (12_000, 7)
    assert sum(data["outcomes"].values()) == 12_000
