"""Perfetto traces of the graph model: decisions as instants, sub-sagas and maps as slices
around their actions."""

from __future__ import annotations

import json
from pathlib import Path

from sagasim import io
from sagasim.sim import simulate

MODELS = Path(__file__).resolve().parent.parent / "models" / "graph"


def trace_events(model: str, tmp_path: Path, runs: int = 40) -> list[dict[str, object]]:
    results = simulate(io.load(MODELS / model), runs=runs, seed=2, trace_limit=runs)
    path = tmp_path / "trace.json"
    results.write_trace(path)
    events: list[dict[str, object]] = json.loads(path.read_text())["traceEvents"]
    return events


def test_a_sub_saga_is_a_slice_around_its_steps(tmp_path: Path) -> None:
    events = trace_events("trip_with_hotel.yaml", tmp_path)
    for tid in {e["tid"] for e in events if e.get("cat") == "saga"}:
        mine = [e for e in events if e.get("tid") == tid and e["ph"] == "X"]
        (hotel,) = [e for e in mine if e["name"] == "saga book_hotel"]
        inside = [e for e in mine if e["name"] in ("reserve_room", "confirm_room", "release_room")]
        assert inside
        start, end = hotel["ts"], hotel["ts"] + hotel["dur"]  # type: ignore[operator]
        assert min(e["ts"] for e in inside) == start  # type: ignore[type-var]
        last = max(e["ts"] + e["dur"] for e in inside)  # type: ignore[operator]
        assert abs(last - end) < 1e-2  # microseconds, each rounded to 3 decimals
        flight = [e for e in mine if e["name"] == "book_flight"]
        assert all(e["ts"] + e["dur"] <= start for e in flight)  # type: ignore[operator]


def test_a_map_is_a_slice_and_its_size_a_decision(tmp_path: Path) -> None:
    events = trace_events("bulk_order.yaml", tmp_path)
    maps = [e for e in events if e.get("cat") == "map"]
    assert maps and {e["name"] for e in maps} == {"map pack_items"}
    sizes = [e for e in events if e["ph"] == "i" and str(e["name"]).startswith("pack_items.")]
    assert len(sizes) == 40  # every instance draws its item count once
    assert {str(e["name"]).split("_")[-1] for e in sizes} <= {"1", "2", "3", "5"}


def test_decisions_of_a_choice_are_instants(tmp_path: Path) -> None:
    events = trace_events("order_with_stock_check.yaml", tmp_path, runs=60)
    decided = [e["name"] for e in events if e["ph"] == "i" and "stock_level" in str(e["name"])]
    assert len(decided) == 60
    assert set(decided) == {"stock_level.branch_0", "stock_level.branch_1"}
