"""``make demo``: draw every model, then check, analyze and simulate the order saga, and
compare it orchestrated and choreographed.

Run as ``python -m sagasim.demo OUTDIR``. Diagrams go to ``OUTDIR/<model>.svg`` and ``.png``;
the three answers for ``models/order_fulfillment.yaml`` are printed one after the other, then
``models/order_fulfillment_choreography.yaml`` beside its orchestrated form.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import io
from .verify import check


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "out")
    out.mkdir(parents=True, exist_ok=True)
    models = Path("models")
    from .viz import draw

    for path in sorted(models.rglob("*.yaml")):
        saga = io.load(path)
        stem = "_".join(path.relative_to(models).with_suffix("").parts)
        for suffix in (".svg", ".png"):
            draw(saga, out / f"{stem}{suffix}")
        report = check(saga)
        verdict = (
            "consistent"
            if report.consistent
            else "NOT consistent: " + ", ".join(v.outcome for v in report.violations)
        )
        print(f"{path}: drew {out / stem}.svg/.png; check: {verdict}")

    from .analysis import analyze
    from .sim import simulate

    saga = io.load(models / "order_fulfillment.yaml")
    print()
    print(check(saga).to_text())
    print()
    exact = analyze(saga)
    print(exact.to_text())
    print()
    results = simulate(saga, runs=20_000, seed=1)
    print(results.to_text())
    print()
    from .experiments import compare

    choreographed = io.load(models / "order_fulfillment_choreography.yaml")
    print(compare(choreographed, runs=20_000, seed=1).to_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
