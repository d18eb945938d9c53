"""The ``sagasim`` command line: the contract other tools rely on (DESIGN.md, "Outputs").

Every command prints a human report by default and stable JSON with ``--json``. Exit codes:
0 success, 1 ``check`` found an inconsistent end state, 2 bad input (one line on stderr, never
a traceback).

Examples
--------
>>> main(["validate", "models/order_fulfillment.yaml"])
models/order_fulfillment.yaml: valid (order_fulfillment, 7 steps)
0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .exceptions import SagaSimError, UsageError
from .model import Saga


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except SagaSimError as err:
        print(str(err), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as err:  # an output that cannot be written: /proc/x.png, a full disk
        where = f"{err.filename}: " if err.filename else ""
        print(f"{where}expected a writable file, got {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sagasim: interrupted", file=sys.stderr)
        return 130


# --- commands --------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    saga = _load(args)
    count = sum(1 for _ in saga.all_steps())
    print(f"{args.model}: valid ({saga.name}, {count} steps)")
    return 0


def _draw(args: argparse.Namespace) -> int:
    from . import viz as render

    saga = _load(args)
    out = _output_path(args.output, args.model)
    if args.view == "states":
        from .verify import explore
        from .verify.crashes import can_crash, explore_crashes

        # a coordinator that crashes: the space check explores, a crash at every log point
        space = (explore_crashes if can_crash(saga) else explore)(saga, max_states=args.max_states)
        graph = render.states_diagram(space.to_networkx())
        render.write(graph, out)
    else:
        render.draw(saga, out, view=args.view or "")  # none: the model's coordination's own
    print(f"wrote {out}")
    return 0


def _view(text: str) -> str:
    """A ``draw --view``: a fixed name or ``service:NAME``."""
    if text in ("saga", "machine", "states", "collaboration") or text.startswith("service:"):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from saga, machine, states, collaboration, service:NAME)"
    )


def _check(args: argparse.Namespace) -> int:
    from .verify import VIOLATION_KINDS, check

    fail_on = _fail_on(args.fail_on, VIOLATION_KINDS)
    saga = _load(args)
    start = time.perf_counter()
    report = check(saga, fail_on=fail_on, max_states=args.max_states)
    seconds = time.perf_counter() - start
    # the rate of the whole check (compiling, exploring, verdicts): the one number that varies
    data = report.to_dict() | {"states_per_s": round(report.states / max(seconds, 1e-9))}
    _emit(args, data, report.to_text())
    return 0 if report.consistent else 1


def _analyze(args: argparse.Namespace) -> int:
    from .analysis import analyze

    result = analyze(_load(args), sensitivity=not args.no_sensitivity)
    _emit(args, result.to_dict(), result.to_text())
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .sim import simulate

    saga = _load(args)
    _check_runs(args.runs)
    trace = _output_path(args.trace, args.model) if args.trace else None
    if trace is not None and trace.suffix not in (".json", ".jsonl"):
        raise UsageError(
            f"--trace {trace}: unknown trace format '{trace.suffix}' (expected .jsonl or .json)"
        )
    results = simulate(
        saga,
        runs=args.runs,
        seed=args.seed,
        workers=args.workers,
        trace_limit=args.trace_instances if trace else 0,
        progress=not args.quiet and sys.stderr.isatty(),
        engine=args.engine or "auto",
    )
    if trace is not None:
        results.write_trace(trace)
    data = results.to_dict()
    if args.engine is not None:  # asked for: say which ran (the fast path always says so)
        data["engine"] = results.engine
    _emit(args, data, results.to_text())
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .experiments import compare

    saga = _load(args)
    _check_runs(args.runs)
    _check_runs(2 * args.runs)
    result = compare(
        saga,
        runs=args.runs,
        seed=args.seed,
        workers=args.workers,
        check_states=not args.no_check,
        max_states=args.max_states,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    _emit(args, result.to_dict(), result.to_text())
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .experiments import parse_vary, sweep

    saga = _load(args)
    _check_runs(args.runs)
    vary = [parse_vary(spec) for spec in args.vary]
    if len(vary) > 2:
        raise UsageError(f"--vary: at most two parameters, got {len(vary)}")
    points = 1
    for _, values in vary:
        points *= len(values)
    _check_runs(points * args.runs)
    plot = _output_path(args.plot, args.model) if args.plot else None
    if plot is not None and plot.suffix not in (".png", ".svg", ".pdf"):
        raise UsageError(
            f"--plot {plot}: unknown plot format '{plot.suffix}' (expected .png, .svg or .pdf)"
        )
    csv = _output_path(args.csv, args.model) if args.csv else None
    engine: Any = args.engine or "auto"
    result = sweep(saga, vary, runs=args.runs, seed=args.seed, workers=args.workers, engine=engine)
    if csv is not None:
        result.to_csv(csv)
    if plot is not None:
        from . import plot as plots

        draw = plots.sweep_rates if len(vary) == 1 else plots.sweep_heatmap
        draw(result).savefig(plot, dpi=150, bbox_inches="tight")
    _emit(args, result.to_dict(), result.to_text())
    return 0


def _report(args: argparse.Namespace) -> int:
    from .viz.report import report

    saga = _load(args)
    _check_runs(args.runs)
    out = _output_path(args.output, args.model)
    if out.suffix not in (".html", ".htm"):
        raise UsageError(f"{out}: unknown report format '{out.suffix}' (expected .html)")
    report(saga, out, runs=args.runs, seed=args.seed)
    print(f"wrote {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from .interop import detect_format, to_yaml_with_comments

    saga = _load(args)
    label = {"asl": "AWS Step Functions", "seata": "Seata"}.get(
        args.format or _detected(args.model, detect_format), "sagasim"
    )
    text = to_yaml_with_comments(saga, f"{args.model} ({label})")
    children = _sub_sagas(saga)
    if args.output is None:
        print(text, end="")
        for child in children:
            print(
                f"note: the sub-saga's model {child.model} is written with -o only", file=sys.stderr
            )
        return 0
    out = _output_path(args.output, args.model)
    files = {out: text}
    for child in children:
        files[out.parent / child.model] = to_yaml_with_comments(
            child.saga, f"{args.model} ({label})"
        )
    for path in files:
        if path.exists() and not args.force:
            raise UsageError(f"{path}: exists; pass --force to overwrite it")
    for path, content in files.items():
        path.write_text(content)
        print(f"wrote {path}")
    return 0


def _sub_sagas(saga: Saga) -> list[Any]:
    """Every sub-saga in ``saga`` and in its sub-sagas, each model file once."""
    from .model.saga import SubSaga, walk

    found: dict[str, Any] = {}
    for entry in walk(saga.steps):
        if isinstance(entry, SubSaga):  # walk goes into sub-sagas too
            found.setdefault(entry.model, entry)
    return list(found.values())


def _detected(model: str, detect: Any) -> str:
    import json as _json

    try:
        return str(detect(_json.loads(Path(model).read_text())))
    except ValueError:
        return "sagasim"


def _export(args: argparse.Namespace) -> int:
    from .exceptions import SagaDefinitionError
    from .interop import to_asl, to_asl_files

    saga = _load(args)
    try:
        if args.output is None:
            print(json.dumps(to_asl(saga), indent=2))
            return 0
        out = _output_path(args.output, args.model)
        stem = out.name.split(".")[0]
        files = to_asl_files(saga, stem)
    except SagaDefinitionError as err:
        raise SagaDefinitionError(err.message, path=err.path, file=args.model) from None
    # the top definition where asked (overwritten, as ever); each sub-saga's machine beside it,
    # named as the importer looks it up, never over an existing file without --force
    paths = [out] + [out.parent / name for name in list(files)[1:]]
    for path in paths[1:]:
        _output_path(str(path), args.model)
        if path.exists() and not args.force:
            raise UsageError(f"{path}: exists; pass --force to overwrite it")
    for path, definition in zip(paths, files.values(), strict=True):
        path.write_text(json.dumps(definition, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


# --- helpers ---------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Saga:
    from .interop import load_any
    from .io import apply_overrides

    path = Path(args.model)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, expected a model file")
    assumed: list[str] = []
    saga = load_any(path, getattr(args, "format", None), lookup=args.lookup, assumed=assumed)
    for note in dict.fromkeys(assumed):
        print(f"assumed: {note}", file=sys.stderr)
    if getattr(args, "rates", None):
        saga = _with_rates(saga, args.rates)
    if getattr(args, "set", None):
        saga = apply_overrides(saga, args.set)
    return saga


def _with_rates(saga: Saga, file: str) -> Saga:
    """``--rates FILE``: a YAML mapping of ``PATH: VALUE``, each applied as ``--set PATH=VALUE``;
    an error names the file, the line and the path."""
    from .exceptions import SagaDefinitionError
    from .io import apply_overrides
    from .io import yaml as _yaml
    from .io.values import expected

    if not Path(file).is_file():
        raise UsageError(f"{file}: no such file (--rates takes a YAML file of PATH: VALUE)")
    data, lines = _yaml.parse(_yaml.read_text(file), file)
    if not isinstance(data, dict):
        what = "a mapping of PATH: VALUE, such as reserve_flight.failure: 0.02"
        message = expected(what, data, "").message
        raise SagaDefinitionError(message, file=file, line=1)
    for key, value in data.items():
        try:
            saga = apply_overrides(saga, [f"{key}={json.dumps(value)}"])
        except SagaDefinitionError as err:
            line = _yaml.line_of(lines, str(key)) if lines else None
            raise SagaDefinitionError(err.message, path=str(key), file=file, line=line) from None
    return saga


def _output_path(output: str, model: str) -> Path:
    path = Path(output)
    if path.exists() and path.resolve() == Path(model).resolve():
        raise UsageError(f"{output}: refusing to overwrite the model file with output")
    if path.is_dir():
        raise UsageError(f"{output}: is a directory, expected a file name")
    if not path.parent.exists():
        raise UsageError(f"{output}: directory {path.parent} does not exist")
    return path


def _fail_on(text: str | None, kinds: Sequence[str]) -> frozenset[str]:
    if text is None:
        return frozenset(kinds)
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(chosen - set(kinds))
    if unknown:
        raise UsageError(
            f"--fail-on: unknown outcome '{unknown[0]}' (expected some of {', '.join(kinds)})"
        )
    return chosen


#: About 40 bytes a simulated instance: refuse runs that would not fit in memory.
MAX_RUNS = 50_000_000


def _check_runs(runs: int) -> None:
    if runs < 1:
        raise UsageError(f"--runs: expected a positive number of runs, got {runs}")
    if runs > MAX_RUNS:
        raise UsageError(
            f"--runs: {runs:,} runs would need about {runs * 40 / 1e9:.1f} GB; "
            f"at most {MAX_RUNS:,} at once (run several seeds instead)"
        )


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=False, allow_nan=False))
    else:
        print(text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sagasim",
        description="Model, check and simulate sagas: draw a saga, prove its end states, "
        "measure how often it compensates.",
    )
    parser.add_argument("--version", action="version", version=f"sagasim {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Any, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run, command=name)
        sub.add_argument(
            "model",
            metavar="MODEL",
            help="a saga model (.yaml), a Step Functions definition or a Seata saga (.json)",
        )
        if name != "export":
            sub.add_argument(
                "--format",
                choices=("sagasim", "asl", "seata"),
                help="the model's language (default: detected from its content)",
            )
        sub.add_argument(
            "--lookup",
            action="append",
            default=[],
            metavar="DIR",
            help="where else to find the sub-machines a definition calls by name (repeatable)",
        )
        return sub

    def overrides(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="PATH=VALUE",
            help="override a number of the model, e.g. process_payment.reject=0.1 (repeatable)",
        )
        sub.add_argument(
            "--rates",
            metavar="FILE",
            help="a YAML file of PATH: VALUE overrides (measured rates), applied before --set",
        )

    def max_states(
        sub: argparse.ArgumentParser, default: int = 1_000_000, past: str = "stop exploring"
    ) -> None:
        text = f"{past} past N states (default {default:,})"
        sub.add_argument("--max-states", type=_positive, default=default, metavar="N", help=text)

    def sampling(sub: argparse.ArgumentParser, runs: str) -> None:
        sub.add_argument("--runs", type=int, default=10_000, metavar="N", help=runs)
        sub.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
        sub.add_argument(
            "--workers",
            type=_positive,
            default=1,
            metavar="W",
            help="worker processes (1); results do not depend on it",
        )

    def engines(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--engine",
            choices=("auto", "simpy", "fast"),
            help="simpy: the reference; fast: independent orchestrated instances in numpy "
            "batches (no arrivals, no choreography, no --trace); auto (the default): fast from "
            "10,000 runs on where the model allows it",
        )

    command("validate", _validate, "check a model file against the format; exit 2 if invalid")

    draw = command("draw", _draw, "draw a saga diagram (format from the suffix)")
    draw.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="output file: .svg .png .pdf .dot or .mmd (Mermaid)",
    )
    draw.add_argument(
        "--view",
        type=_view,
        help="saga: steps and compensations; machine: every state of the compiled "
        "machine; states: the explored state space (small models); collaboration: the "
        "services and their events (a choreography's default); service:NAME: one service's "
        "machine",
    )
    max_states(draw)
    overrides(draw)

    chk = command("check", _check, "prove that only consistent end states are reachable")
    chk.add_argument("--json", action="store_true", help="print JSON")
    chk.add_argument(
        "--fail-on",
        metavar="OUTCOMES",
        help="comma-separated outcomes that count as violations (default: leaked,"
        "stuck,duplicate_effect,hanging,late_leak and, between instances, lost_update,"
        "dirty_read,stale_compensation,deadlock)",
    )
    max_states(chk)
    overrides(chk)

    ana = command("analyze", _analyze, "exact outcome probabilities and expected latencies")
    ana.add_argument("--json", action="store_true", help="print JSON")
    ana.add_argument(
        "--no-sensitivity", action="store_true", help="skip the sensitivity ranking (faster)"
    )
    overrides(ana)

    sim = command("simulate", _simulate, "SimPy failure-injection runs")
    sampling(sim, "instances (10,000)")
    sim.add_argument("--json", action="store_true", help="print JSON")
    sim.add_argument(
        "--trace",
        metavar="FILE",
        help="write per-instance events: .jsonl (JSON Lines) or .json (Perfetto)",
    )
    sim.add_argument(
        "--trace-instances",
        type=_positive,
        default=100,
        metavar="K",
        help="instances to trace (100)",
    )
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    engines(sim)
    overrides(sim)

    cmp = command(
        "compare",
        _compare,
        "orchestrated vs choreographed: check and simulate both forms on the same workload",
    )
    sampling(cmp, "instances of each form (10,000)")
    cmp.add_argument("--no-check", action="store_true", help="simulate only, skip check")
    max_states(cmp, 100_000, "leave a form unchecked")
    cmp.add_argument("--json", action="store_true", help="print JSON")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar")
    overrides(cmp)

    swp = command("sweep", _sweep, "simulate (and analyze) a grid of parameter values")
    swp.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="PATH=START:STOP:COUNT",
        help="a parameter to sweep, e.g. process_payment.reject=0:0.2:5 (one or two)",
    )
    sampling(swp, "instances per point (10,000)")
    swp.add_argument("--plot", metavar="FILE", help="write a plot (.png .svg .pdf)")
    swp.add_argument("--csv", metavar="FILE", help="write the table as CSV")
    swp.add_argument("--json", action="store_true", help="print JSON")
    engines(swp)
    overrides(swp)

    rep = command("report", _report, "a one-page HTML report: diagram, check, exact numbers, plots")
    rep.add_argument("-o", "--output", required=True, metavar="FILE", help="the .html file")
    rep.add_argument("--runs", type=int, default=20_000, metavar="N", help="instances (20,000)")
    rep.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    overrides(rep)

    imp = command("import", _import, "convert a Step Functions or Seata saga to a sagasim model")
    imp.add_argument("-o", "--output", metavar="FILE", help="write the YAML here (default: stdout)")
    imp.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    exp = command("export", _export, "write a sagasim model as another engine's definition")
    exp.add_argument(
        "--format",
        dest="target",
        choices=("asl",),
        default="asl",
        help="asl: AWS Step Functions (the default)",
    )
    exp.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write here (default: stdout); each sub-saga's machine goes beside it (NAME.asl.json)",
    )
    exp.add_argument(
        "--force", action="store_true", help="overwrite the sub-sagas' files if they exist"
    )
    return parser
