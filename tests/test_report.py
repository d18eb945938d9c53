"""sagasim.viz.report writes one self-contained HTML page per saga."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sagasim.io import load
from sagasim.viz.report import report

ROOT = Path(__file__).resolve().parent.parent
PNG = "data:image/png;base64,"


class _Page(HTMLParser):
    """The tags, image sources and visible text (not the style sheet) of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.in_style = tag == "style"
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if not self.in_style:
            self.text.append(data)


def _parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    parsed.close()
    return parsed


def _network_references(page: str) -> list[str]:
    """Addresses on the network, other than XML namespace names (which are never fetched)."""
    found = re.finditer(r"(xmlns(?::\w+)?=[\"'])?(https?://[^\s\"'<>]+)", page)
    return [m.group(2) for m in found if m.group(1) is None]


@pytest.fixture(scope="module")
def consistent(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    saga = load(ROOT / "models" / "order_fulfillment.yaml")
    path = report(saga, tmp_path_factory.mktemp("report") / "order.html", runs=2_000, seed=1)
    return saga.name, path.read_text(encoding="utf-8")


def test_report_names_the_saga_and_every_step(consistent: tuple[str, str]) -> None:
    name, page = consistent
    saga = load(ROOT / "models" / "order_fulfillment.yaml")
    text = " ".join(_parse(page).text)
    assert name in text
    for step in saga.all_steps():
        assert step.name in page, step.name
    assert "<title>sagasim report: order_fulfillment</title>" in page
    assert "consistent" in text and "inconsistent" not in text


def test_report_is_self_contained(consistent: tuple[str, str]) -> None:
    _, page = consistent
    parsed = _parse(page)
    assert "svg" in parsed.tags
    pngs = [src for src in parsed.images if src.startswith(PNG)]
    assert len(pngs) >= 3
    assert all(len(src) > len(PNG) + 1_000 for src in pngs)
    assert len(pngs) == len(parsed.images)  # no image from anywhere else
    assert _network_references(page) == []
    assert "<!DOCTYPE svg" not in page and "<?xml" not in page


def test_report_has_the_exact_and_simulated_numbers(consistent: tuple[str, str]) -> None:
    _, page = consistent
    text = " ".join(_parse(page).text)
    assert "Exact values" in text
    assert "0.0582873" in text  # analyze's compensation probability, 6 significant digits
    assert "2,000 instances, seed 1." in text


def test_report_of_a_flawed_saga_shows_the_verdict_and_traces(tmp_path: Path) -> None:
    saga = load(ROOT / "models" / "flawed" / "fragile_compensation.yaml")
    page = report(saga, tmp_path / "flawed.html", runs=500).read_text(encoding="utf-8")
    text = " ".join(_parse(page).text)
    assert "inconsistent" in text
    assert "Counterexamples" in text
    assert "→" in text
    assert _network_references(page) == []


def test_network_references_ignore_namespaces_only() -> None:
    page = '<svg xmlns="http://www.w3.org/2000/svg"><a href="https://example.org">x</a></svg>'
    assert _network_references(page) == ["https://example.org"]
