"""The HTML report in a real browser: headless Chromium opens it without a console error and
draws the diagram and every figure.

A copy of the page gets a probe script that records errors (``window.onerror``, failed
resources, rejected promises, ``console.error``) and, once the page has loaded, writes what the
browser drew into the DOM as JSON; ``--dump-dom`` hands that back. The unmodified page is opened
once more with Chromium's logging on, and screenshotted. ``make test`` installs Chromium, so a
missing browser fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib import image

from sagasim.io import load
from sagasim.viz.report import report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PNG = "data:image/png;base64,"
#: Generous: a cold Chromium start on a loaded two-core machine takes a few seconds.
BROWSER_TIMEOUT_S = 120
WINDOW = (1280, 2400)

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", (e) => {
  const where = e.target && e.target !== window ? ` (${e.target.tagName})` : "";
  window.__errors.push(`${e.message || "resource failed to load"}${where}`);
}, true);
window.addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
const consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); consoleError(...args); };
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const svgs = Array.from(document.querySelectorAll("svg")).filter(
    (s) => !s.parentElement.closest("svg"));
  const probe = {
    errors: window.__errors,
    title: document.title,
    text: document.body.innerText,
    images: images.length,
    decoded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    svgs: svgs.length,
    svg_sizes: svgs.map((s) => [s.getBoundingClientRect().width,
                                s.getBoundingClientRect().height]),
  };
  const out = document.createElement("script");
  out.type = "application/json";
  out.id = "probe";
  out.textContent = JSON.stringify(probe).replace(/</g, "\\\\u003c");
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not on PATH: `make test` installs it (Debian/Ubuntu: "
            "apt-get install chromium)",
            pytrace=False,
        )
    return found


def _browse(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` in headless Chromium with ``flags``, giving its scripts time to finish."""
    command = [
        _chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *flags,
        page.as_uri(),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False
    )


def _probe(page: Path, tmp: Path) -> dict[str, Any]:
    """What the browser drew of ``page`` and the errors it met, from a probed copy."""
    html = page.read_text(encoding="utf-8")
    probed = tmp / f"probed-{page.name}"
    probed.write_text(html.replace("<head>", f"<head>{PROBE}", 1), encoding="utf-8")
    done = _browse(probed, tmp / "profile-probe", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2_000:]
    found = re.search(r'<script type="application/json" id="probe">(.*?)</script>', done.stdout)
    assert found is not None, f"the probe did not report; page ended: {done.stdout[-500:]!r}"
    probe: dict[str, Any] = json.loads(found.group(1))
    return probe


def _console_errors(page: Path, tmp: Path) -> list[str]:
    """Chromium's own log lines about ``page``'s console or uncaught exceptions."""
    done = _browse(page, tmp / "profile-log", "--enable-logging=stderr", "--v=0", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2_000:]
    return [
        line
        for line in done.stderr.splitlines()
        if ("CONSOLE" in line or "Uncaught" in line) and page.name in line
    ]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    saga = load(ROOT / "models" / "order_fulfillment.yaml")
    return report(saga, tmp_path_factory.mktemp("browser") / "order.html", runs=1_000, seed=1)


@pytest.fixture(scope="module")
def probe(page: Path) -> dict[str, Any]:
    return _probe(page, page.parent)


def test_report_loads_without_errors(page: Path, probe: dict[str, Any]) -> None:
    assert probe["errors"] == []
    assert _console_errors(page, page.parent) == []
    assert probe["title"] == "sagasim report: order_fulfillment"


def test_report_shows_the_verdict_and_both_tables(probe: dict[str, Any]) -> None:
    text = probe["text"]
    assert text.startswith("order_fulfillment\n")
    assert "What can happen: check" in text
    assert re.search(r"^consistent\s+\d+ states, \d+ transitions explored\.$", text, re.M)
    assert "How likely is it: analyze" in text and "Exact values over" in text
    assert "expected latency (ms)" in text
    assert "What it looks like: simulate" in text and "1,000 instances, seed 1." in text
    assert "rate [95% interval]" in text


def test_report_draws_the_diagram_and_every_figure(page: Path, probe: dict[str, Any]) -> None:
    assert probe["svgs"] == 1
    (width, height), *_ = probe["svg_sizes"]
    assert width > 300 and height > 100, probe["svg_sizes"]
    embedded = page.read_text(encoding="utf-8").count(PNG)
    assert embedded >= 3
    assert probe["images"] == embedded
    assert probe["decoded"] == embedded


def test_report_screenshot_is_not_blank(page: Path) -> None:
    shot = page.parent / "report.png"
    size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    done = _browse(page, page.parent / "profile-shot", f"--screenshot={shot}", size)
    assert done.returncode == 0, done.stderr[-2_000:]
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 200, len(colours)
    assert (pixels[..., :3] < 0.5).mean() > 0.005  # text and lines, not just a white page


def test_probe_sees_a_broken_page(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body>"
        "<img src='data:image/png;base64,AAAA'><script>missing_function();</script>"
        "</body></html>",
        encoding="utf-8",
    )
    probe = _probe(broken, tmp_path)
    assert any("missing_function" in e for e in probe["errors"]), probe["errors"]
    assert any("IMG" in e for e in probe["errors"]), probe["errors"]
    assert (probe["images"], probe["decoded"]) == (1, 0)
    assert any("missing_function" in line for line in _console_errors(broken, tmp_path))
