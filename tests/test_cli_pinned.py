"""Every command's output, JSON and exit code on every shipped model, pinned byte for byte.

The check goldens in ``test_cli.py`` pin what ``check`` says; these pin the rest of the contract
(validate, analyze, simulate, draw, export, import, sweep, compare), so that moving code around
cannot change what a user or another tool reads. Commands run in this process through
:func:`sagasim.cli.main`, with stdout, stderr and the exit code recorded together, and any file
a command writes appended to its record. After an intended change of output, regenerate with
``SAGASIM_UPDATE_GOLDEN=1 pytest tests/test_cli_pinned.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sagasim.cli import main

ROOT = Path(__file__).parent.parent
MODELS = sorted((ROOT / "models").rglob("*.yaml"))
IMPORTS = sorted((ROOT / "tests" / "data").glob("*.json"))
PINNED = Path(__file__).parent / "golden" / "pinned"
UPDATE = os.environ.get("SAGASIM_UPDATE_GOLDEN") == "1"

#: Small enough to be quick, large enough that every shipped model compensates somewhere.
SIMULATE = ("--runs", "2000", "--seed", "7")


def _stem(path: Path) -> str:
    return "_".join(path.relative_to(ROOT).with_suffix("").parts[1:])


def _record(args: list[str], capsys: pytest.CaptureFixture[str], output: Path | None) -> str:
    code = main(args)
    captured = capsys.readouterr()
    text = f"$ sagasim {' '.join(args)}\nexit {code}\n--- stdout\n{captured.out}"
    text += f"--- stderr\n{captured.err}"
    if output is not None and output.exists():
        text += f"--- {output.suffix} file\n{output.read_text()}"
        output.unlink()
    if output is None:
        return text
    # a sub-saga's machine is written beside the output: named by its file alone
    text = text.replace(str(output), f"OUTPUT{output.suffix}")
    return text.replace(f"{output.parent}{os.sep}", "")


def _pin(name: str, text: str) -> None:
    path = PINNED / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden {path.name}: SAGASIM_UPDATE_GOLDEN=1 writes it (review it)"
    assert text == path.read_text(), f"output differs from {path}"


def _commands(model: str, tmp_path: Path) -> list[tuple[list[str], Path | None]]:
    dot, mermaid, asl = tmp_path / "saga.dot", tmp_path / "saga.mmd", tmp_path / "saga.asl.json"
    return [
        (["validate", model], None),
        (["analyze", model], None),
        (["analyze", model, "--json"], None),
        (["simulate", model, *SIMULATE, "--quiet"], None),
        (["simulate", model, *SIMULATE, "--quiet", "--json"], None),
        (["draw", model, "-o", str(dot)], dot),
        (["draw", model, "-o", str(mermaid)], mermaid),
        (["draw", model, "-o", str(dot), "--view", "machine"], dot),
        (["export", model, "-o", str(asl)], asl),
    ]


@pytest.mark.parametrize("path", MODELS, ids=_stem)
def test_every_command_on_every_model_is_pinned(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    model = str(path.relative_to(ROOT))
    records = [_record(args, capsys, out) for args, out in _commands(model, tmp_path)]
    _pin(f"{_stem(path)}.txt", "\n".join(records))


@pytest.mark.parametrize("path", IMPORTS, ids=lambda p: p.name)
def test_import_of_every_engine_file_is_pinned(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    model = str(path.relative_to(ROOT))
    records = [_record(["import", model], capsys, None), _record(["check", model], capsys, None)]
    _pin(f"import_{path.name.split('.')[0]}.txt", "\n".join(records))


def test_sweep_and_compare_are_pinned(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    model = "models/order_fulfillment.yaml"
    sweep = ["sweep", model, "--vary", "process_payment.reject=0:0.2:3", "--runs", "1000"]
    compare = ["compare", model, "--runs", "1000", "--seed", "3", "--quiet"]
    records = [
        _record(sweep, capsys, None),
        _record([*sweep, "--json"], capsys, None),
        _record(compare, capsys, None),
        _record([*compare, "--json"], capsys, None),
    ]
    _pin("sweep_compare.txt", "\n".join(records))
