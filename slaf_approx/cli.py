"""The `slaf-approx` command: targets, fit, sweep, report, run.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message over several lines; we print one
        raise UsageError(message)


def _degree(text: str) -> int:
    from .bases import check_degree

    try:
        value = int(text)
    except ValueError:
        value = text
    try:
        return check_degree(value)
    except ValueError as exc:  # argparse shows an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(str(exc)) from None


def _params(items) -> dict:
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"--param takes NAME=NUMBER, got {item!r}")
    return out


def _degrees(text: str) -> list[int]:
    """'1-20' or '1,2,4,8' or '8'."""
    try:
        if "-" in text.strip("-"):
            a, b = text.split("-", 1)
            return list(range(int(a), int(b) + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"degrees take 'A-B' or 'A,B,C', got {text!r}") from None


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def cmd_targets(args) -> int:
    from .targets import load_catalogue

    cat = load_catalogue()
    width = max(len(n) for n in cat)
    for name, tg in cat.items():
        kinks = ", ".join(f"{k:g}" for k in tg.kinks) or "-"
        d = tg.singularity_distance
        sing = "entire" if d == math.inf else ("-" if math.isnan(d) else f"{d:.6g}")
        print(f"{name:<{width}}  {tg.title:<28} L={tg.lipschitz:<10.6g} kinks: {kinks:<8} "
              f"singularity distance: {sing}")
    return 0


def cmd_fit(args) -> int:
    from .fit import fit

    rec = fit(args.target, args.degree, args.method, args.basis, args.interval, variable=args.variable,
              params=_params(args.param), weight=args.weight, steps=args.steps, optimizer=args.optimizer,
              seed=args.seed)
    if args.json:
        d = rec.to_dict()
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in d.items()}))
        return 0
    for k in ("target", "method", "basis", "variable", "degree", "lo", "hi", "max_error", "rms_error",
              "levelled_error", "iterations", "converged", "note", "condition_number", "seconds"):
        print(f"{k:>16}: {_fmt(getattr(rec, k))}")
    print(f"{'coefficients':>16}: " + " ".join(f"{c:.17g}" for c in rec.coefficients))
    return 0


def _meta(command: str, seconds: float) -> dict:
    import numpy
    import torch

    return {"machine": f"{platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'}), "
                       f"{_ncpu()} cores",
            "python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command, "seconds": f"{seconds:.1f}"}


def _ncpu() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _sweep_and_write(targets, bases, degrees, methods, intervals, out: Path, progress: bool, steps: int):
    from .sweep import sweep, write_table

    t0 = time.perf_counter()
    recs = sweep(targets, bases, degrees, methods, intervals, progress=progress, steps=steps)
    seconds = time.perf_counter() - t0
    csv_path, jsonl_path = write_table(recs, out / "results")
    print(f"{len(recs)} fits in {seconds:.1f} s -> {csv_path}, {jsonl_path}", file=sys.stderr)
    return recs, seconds


def cmd_sweep(args) -> int:
    intervals = [tuple(iv) for iv in (args.interval or [(-3.0, 3.0)])]
    _sweep_and_write(args.targets, args.bases, args.degrees, args.methods, intervals, Path(args.out),
                     not args.quiet, args.steps)
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    from .sweep import read_table

    rows = read_table(args.results)
    path = write_report(rows, Path(args.out), overlay_degree=args.overlay_degree,
                        meta=_meta(f"slaf-approx report {args.results}", 0.0) | {"seconds": "-"})
    print(f"report -> {path}", file=sys.stderr)
    return 0


def cmd_run(args) -> int:
    from .report import write_report
    from .sweep import DEFAULT_SUITE

    out = Path(args.out)
    recs, seconds = _sweep_and_write(*DEFAULT_SUITE.values(), out, not args.quiet, args.steps)
    path = write_report([r.to_dict() for r in recs], out, overlay_degree=8,
                        meta=_meta("slaf-approx run", seconds))
    print(f"report -> {path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .bases import BASES, VARIABLES
    from .fit import METHODS, OPTIMIZERS

    p = _Parser(prog="slaf-approx", description="Approximation benchmarks for self-learnable activations.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("targets", help="list the target catalogue").set_defaults(func=cmd_targets)

    f = sub.add_parser("fit", help="fit one target")
    f.add_argument("target")
    f.add_argument("--degree", "-n", type=_degree, required=True)
    f.add_argument("--method", choices=METHODS, default="lstsq")
    f.add_argument("--basis", choices=list(BASES), default="chebyshev")
    f.add_argument("--variable", choices=VARIABLES, default=None,
                   help="power basis: raw x (default, the paper's form) or mapped t")
    f.add_argument("--interval", nargs=2, type=float, metavar=("LO", "HI"), default=(-3.0, 3.0))
    f.add_argument("--param", action="append", metavar="NAME=VALUE", help="target parameter, e.g. beta=2")
    f.add_argument("--weight", default="uniform", help="lstsq weight: uniform, normal or normal:SIGMA")
    f.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    f.add_argument("--steps", type=int, default=2000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("sweep", help="targets x bases x degrees x methods x intervals -> results table")
    s.add_argument("--targets", nargs="+", default=["relu", "gelu", "swish", "tanh"])
    s.add_argument("--bases", nargs="+", default=["power", "chebyshev", "legendre"],
                   help="basis names; power:mapped fits powers of the mapped variable")
    s.add_argument("--degrees", type=_degrees, default=list(range(1, 21)), help="e.g. 1-20 or 2,4,8")
    s.add_argument("--methods", nargs="+", default=list(METHODS))
    s.add_argument("--interval", nargs=2, type=float, action="append", metavar=("LO", "HI"))
    s.add_argument("--steps", type=int, default=2000, help="gradient fits: optimizer steps")
    s.add_argument("--out", default="reports")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_sweep)

    r = sub.add_parser("report", help="tables and plots from a results table")
    r.add_argument("results", nargs="?", default="reports/results.csv")
    r.add_argument("--out", default="reports")
    r.add_argument("--overlay-degree", type=_degree, default=8)
    r.set_defaults(func=cmd_report)

    run = sub.add_parser("run", help="the default suite, then the report")
    run.add_argument("--out", default="reports")
    run.add_argument("--steps", type=int, default=2000, help="gradient fits: optimizer steps")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=cmd_run)
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, ValueError, TypeError, OSError) as exc:
        msg = " ".join(str(exc).split())
        print(f"slaf-approx: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("slaf-approx: interrupted; no results file was changed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
