"""The `slaf-approx` command: targets, fit, sweep, report, expand, paper, run.

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

    extra = {"form": args.form} if args.form else {}
    rec = fit(args.target, args.degree, args.method, args.basis, args.interval, variable=args.variable,
              params=_params(args.param), weight=args.weight, steps=args.steps, optimizer=args.optimizer,
              seed=args.seed, **extra)
    if args.json:
        d = rec.to_dict()
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in d.items()}))
        return 0
    for k in ("target", "method", "basis", "variable", "degree", "lo", "hi", "max_error", "rms_error",
              "levelled_error", "iterations", "converged", "note", "condition_number", "seconds"):
        print(f"{k:>16}: {_fmt(getattr(rec, k))}")
    print(f"{'coefficients':>16}: " + " ".join(f"{c:.17g}" for c in rec.coefficients))
    if rec.form:
        print(f"{'denominator':>16}: " + " ".join(f"{c:.17g}" for c in rec.denominator))
        print(f"{'form':>16}: {rec.form}")
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


def _sweep_and_write(targets, bases, degrees, methods, intervals, out: Path, progress: bool, steps: int,
                     also: dict | None = None):
    from .sweep import sweep, write_table

    t0 = time.perf_counter()
    recs = sweep(targets, bases, degrees, methods, intervals, progress=progress, steps=steps)
    seconds = time.perf_counter() - t0
    print(f"{len(recs)} fits in {seconds:.1f} s", file=sys.stderr)
    if also:  # a second suite into the same table (the rational fits of `run`), timed apart
        t1 = time.perf_counter()
        more = sweep(*also.values(), progress=progress)
        print(f"{len(more)} more fits in {time.perf_counter() - t1:.1f} s", file=sys.stderr)
        recs += more
    csv_path, jsonl_path = write_table(recs, out / "results")
    print(f"results -> {csv_path}, {jsonl_path}", file=sys.stderr)
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
    from .sweep import DEFAULT_SUITE, RATIONAL_SUITE

    out = Path(args.out)
    recs, seconds = _sweep_and_write(*DEFAULT_SUITE.values(), out, not args.quiet, args.steps,
                                     also=RATIONAL_SUITE)
    from .benchmarks import quick_kernel_table

    path = write_report([r.to_dict() for r in recs], out, overlay_degree=8,
                        meta=_meta("slaf-approx run", seconds), kernel_table=quick_kernel_table())
    print(f"report -> {path}", file=sys.stderr)
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def cmd_expand(args) -> int:
    import numpy as np

    from .expand import expand, expansion_size, max_relative_error, monomial_name, random_network

    net = random_network(args.inputs, args.widths, args.degree, args.basis, seed=args.seed)
    if not args.json:
        size = expansion_size(net)
        print(f"predicted: {size.n_inputs} inputs, total degree {size.degree}, up to {size.terms} terms "
              f"(max_terms = {args.max_terms})", flush=True)
    (poly,) = expand(net, max_terms=args.max_terms)
    X = np.random.default_rng(args.seed).uniform(-1.0, 1.0, (100, args.inputs))
    err = max_relative_error([poly], net, X)
    if args.json:
        print(json.dumps(poly.to_dict() | {"max_relative_error": err}))
        return 0
    print(f"total degree: {poly.degree}")
    print(f"monomials: {len(poly)} of at most C({args.inputs} + {poly.degree}, {poly.degree}) = {poly.bound}")
    print(f"max relative error on 100 random inputs: {err:.3g}")
    print("largest terms:")
    for e, c in sorted(poly.terms.items(), key=lambda t: -abs(t[1]))[:args.top]:
        print(f"  {c:+.6e}  {monomial_name(e)}")
    return 0


def cmd_paper(args) -> int:
    from .paper import DEGREES, run_paper

    t0 = time.perf_counter()
    path = run_paper(args.tasks, args.seeds, args.out, args.quick, degrees=args.degrees or DEGREES,
                     progress=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)))
    print(f"{time.perf_counter() - t0:.1f} s; report -> {path}", file=sys.stderr)
    return 0


def cmd_coefficients(args) -> int:
    from .coefstore import load, write_default

    if args.write:
        write_default(args.file)
    entries = load(args.file)
    for e in entries:
        kind = f"({e['type'][0]}, {e['type'][1]}) {e['form']}" if e["kind"] == "rational" else \
            f"degree {e['degree']}"
        print(f"{e['name']:<40} {kind:<18} {e['basis']}({e['variable']}) on [{e['interval'][0]:g}, "
              f"{e['interval'][1]:g}]  max error {e['max_error']:.4g}")
    print(f"{len(entries)} entries checked (re-evaluated against their targets)", file=sys.stderr)
    return 0


def _percent(text: str) -> float:
    try:
        value = float(str(text).rstrip("%"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"takes a percentage >= 0 such as 2 or 2%, got {text!r}")
    return value


def _count_degrees(items) -> list[int] | None:
    """--degrees for --counts: integers or ranges A-B, space- or comma-separated."""
    if not items:
        return None
    out = []
    for tok in ",".join(items).replace(" ", ",").split(","):
        if tok:
            out += _degrees(tok)
    return out


def cmd_bench_counts(args) -> int:
    """bench --counts: instructions counted under valgrind -> OUT/counts.json and OUT/counts.md; --check
    compares with the saved baseline of this machine, tools and selection."""
    from . import perfcounts as pc

    timing_only = (("--quick", args.quick), ("--report-only", args.report_only), ("--json", args.json),
                   ("--sizes", args.sizes), ("--dtype", args.dtype), ("--rounds", args.rounds),
                   ("--warmup", args.warmup), ("--deadline", args.deadline),
                   ("--compare-fail", args.compare_fail != "median:10%"),
                   ("pytest arguments", args.pytest_args))
    given = [flag for flag, value in timing_only if value]
    if given:
        raise UsageError(f"{given[0]} is a timing option; --counts counts {pc.SIZE} {pc.DTYPE} elements per "
                         "kernel call (select with --backends, --degrees, --kernels-only)")
    if args.device != "cpu":
        raise UsageError(f"--counts counts CPU instructions under valgrind; there is no counts mode on "
                         f"device {args.device!r}")
    benches = pc.plan(args.backends, _count_degrees(args.degrees) or pc.DEGREES,
                      fits=not args.kernels_only)
    threshold = (pc.THRESHOLD * 100 if args.threshold is None else args.threshold) / 100
    storage = Path(args.storage) if args.storage else Path(".benchmarks") / "counts"
    try:
        pc.require_tools()
    except pc.CountsError as exc:
        raise UsageError(str(exc)) from None
    print(f"slaf-approx bench: counting {len(benches)} benchmarks under valgrind (one thread)",
          file=sys.stderr, flush=True)
    try:
        counts, meta = pc.run(benches)
    except pc.CountsError as exc:
        print(f"slaf-approx bench: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    doc = pc.document(counts, meta, benches)
    json_path, md_path = pc.write(doc, Path(args.out))
    print(f"counts -> {json_path}, {md_path}", file=sys.stderr)
    baseline = pc.baseline_path(storage, doc)
    if args.check and baseline.is_file():
        changes = pc.compare(doc, pc.load(baseline))
        print(pc.compare_table(changes, threshold))
        worse = [c.name for c in changes if c.regressed(threshold)]
        if worse:
            print(f"slaf-approx bench: {len(worse)} benchmark(s) executed more than {100 * threshold:g}% "
                  f"more instructions than the baseline {baseline}: {', '.join(worse)}", file=sys.stderr)
            return 1
        print(f"slaf-approx bench: no count above +{100 * threshold:g}% of the baseline {baseline}",
              file=sys.stderr)
    else:
        print(pc.summary(doc))
        if args.check:
            print(f"slaf-approx bench: no baseline for this machine, tools and selection ({baseline}): "
                  "nothing to compare", file=sys.stderr)
    if args.save or not baseline.is_file():
        pc.save(doc, baseline)
        print(f"slaf-approx bench: baseline saved -> {baseline}", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    """Time the benchmark suite with pytest-benchmark, then write reports/kernels.md and check the budgets
    (and, with --check, the last saved run of this host and device)."""
    import subprocess

    if args.counts:
        return cmd_bench_counts(args)
    if args.save or args.threshold is not None:
        raise UsageError("--save and --threshold go with --counts (the timed check saves every run and "
                         "takes --compare-fail)")

    try:
        from . import benchmarks as kb

        kb.parse_compare_fail(args.compare_fail)
    except ImportError as exc:
        raise UsageError(f"slaf-approx bench needs pytest-benchmark and torch ({exc}); "
                         "pip install 'slaf-approx[test]'") from None
    out = Path(args.out)
    if args.report_only:
        budgets = kb.load_budgets(args.budgets)
        return _bench_finish(args, kb, [(p, kb.load_run(p)) for p in args.report_only], budgets, out)
    settings = kb.bench_settings(args.device, args.dtype, args.sizes, args.backends, args.degrees,
                                 rounds=args.rounds, warmup=args.warmup, quick=args.quick)
    root = Path.cwd()
    if not (root / "bench" / "test_bench_kernels.py").is_file():
        raise UsageError(f"bench/test_bench_kernels.py not found under {root}: run slaf-approx bench from "
                         "the repository root")
    budgets = kb.load_budgets(args.budgets)
    json_path = Path(args.json) if args.json else out / "bench" / f"run-{settings.device}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_name(f".{json_path.name}.partial")
    cmd = kb.pytest_command(root, settings, tmp.resolve(), check=args.check, compare_fail=args.compare_fail,
                            quick=args.quick, python=sys.executable, deadline=args.deadline,
                            fit=not args.kernels_only, extra=args.pytest_args,
                            storage=Path(args.storage).resolve() if args.storage else None)
    previous = kb.load_run(cmd.compared) if cmd.compared else None
    for note in cmd.notes:
        print(f"slaf-approx bench: {note}", file=sys.stderr)
    print("slaf-approx bench: " + " ".join(cmd.argv[1:]), file=sys.stderr, flush=True)
    rc = subprocess.run(cmd.argv, cwd=root).returncode
    if not tmp.is_file():
        why = "no benchmark ran (all skipped or deselected)" if rc in (0, 5) else "pytest failed"
        print(f"slaf-approx bench: {why}: pytest exited with status {rc} and wrote no benchmark JSON",
              file=sys.stderr)
        return rc or 1
    run = kb.without_raw_timings(kb.load_run(tmp))
    kb.write_text(json_path, json.dumps(run, indent=1) + "\n")
    tmp.unlink()
    runs = [(str(json_path), run)]
    gpu = out / "gpu" / "kernels.json"
    if settings.device == "cpu" and gpu.is_file():
        runs.append((str(gpu), kb.load_run(gpu)))
    comparison, regressed = None, False
    if previous is not None:
        rows = kb.compare_runs(runs[0][1], previous, args.compare_fail)
        regressed = any(r.failed for r in rows)
        comparison = kb.compare_table(rows, args.compare_fail, str(cmd.compared))
    code = _bench_finish(args, kb, runs, budgets, out, comparison, regressed)
    if rc != 0:
        print(f"slaf-approx bench: pytest exited with status {rc} (a benchmark failed or got slower than "
              f"--compare-fail {args.compare_fail})", file=sys.stderr)
        return 1
    return code


def _bench_finish(args, kb, runs, budgets, out: Path, comparison: str | None = None,
                  regressed: bool = False) -> int:
    recs = [r for _, run in runs for r in kb.records(run)]
    results = kb.check_budgets(recs, budgets)
    path = kb.write_kernel_report(runs, out, results, budgets_source=str(args.budgets), comparison=comparison)
    fit_runs = [run for _, run in runs if any(r.get("op") is None for r in kb.records(run))]
    if fit_runs:
        kb.write_text(out / "bench" / "fit.md", kb.fit_markdown(fit_runs[0], results))
    print(kb.budget_table(results))
    if comparison:
        print(comparison)
    print(f"report -> {path}", file=sys.stderr)
    measured = [r for r in results if r.status != "not measured"]
    for i, (_, run) in enumerate(runs):
        print(kb.short_summary(run, measured if i == len(runs) - 1 else ()))
    failed = [r.budget.name for r in results if r.failed]
    if failed:
        print(f"slaf-approx bench: budgets broken: {', '.join(failed)}", file=sys.stderr)
    return 1 if args.check and (failed or regressed) else 0


def build_parser() -> argparse.ArgumentParser:
    from .bases import BASES, VARIABLES
    from .fit import ALL_METHODS, METHODS, OPTIMIZERS
    from .rational import FORMS

    p = _Parser(prog="slaf-approx", description="Approximation benchmarks for self-learnable activations.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("targets", help="list the target catalogue").set_defaults(func=cmd_targets)

    f = sub.add_parser("fit", help="fit one target")
    f.add_argument("target")
    f.add_argument("--degree", "-n", type=_degree, required=True)
    f.add_argument("--method", choices=ALL_METHODS, default="lstsq")
    f.add_argument("--basis", choices=list(BASES), default="chebyshev")
    f.add_argument("--variable", choices=VARIABLES, default=None,
                   help="power basis: raw x (default, the paper's form) or mapped t")
    f.add_argument("--interval", nargs=2, type=float, metavar=("LO", "HI"), default=(-3.0, 3.0))
    f.add_argument("--param", action="append", metavar="NAME=VALUE", help="target parameter, e.g. beta=2")
    f.add_argument("--weight", default="uniform", help="lstsq weight: uniform, normal or normal:SIGMA")
    f.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    f.add_argument("--steps", type=int, default=2000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--form", choices=FORMS, default=None,
                   help="rational methods: pau (rational's default) or standard (rational-minimax's default)")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("sweep", help="targets x bases x degrees x methods x intervals -> results table")
    s.add_argument("--targets", nargs="+", default=["relu", "gelu", "swish", "tanh"])
    s.add_argument("--bases", nargs="+", default=["power", "chebyshev", "legendre"],
                   help="basis names; power:mapped fits powers of the mapped variable")
    s.add_argument("--degrees", type=_degrees, default=list(range(1, 21)), help="e.g. 1-20 or 2,4,8")
    s.add_argument("--methods", nargs="+", default=list(METHODS), help=f"any of {', '.join(ALL_METHODS)}")
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

    e = sub.add_parser("expand", help="a random Linear/SLAF network as an explicit polynomial")
    e.add_argument("--inputs", type=_positive, required=True)
    e.add_argument("--widths", type=_positive, nargs="+", required=True, help="hidden widths, e.g. 4 4")
    e.add_argument("--degree", "-n", type=_degree, required=True, help="degree of every SLAF")
    e.add_argument("--basis", choices=list(BASES), default="chebyshev")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--max-terms", type=_positive, default=200_000)
    e.add_argument("--top", type=int, default=10, help="how many of the largest terms to print")
    e.add_argument("--json", action="store_true", help="print the whole polynomial as one JSON object")
    e.set_defaults(func=cmd_expand)

    pp = sub.add_parser("paper", help="the learning experiments: ReLU against SLAF variants on small tasks")
    pp.add_argument("--tasks", nargs="+", default=None, help="spirals, cubic, digits (default: all)")
    pp.add_argument("--seeds", type=_positive, default=5, help="seeds per task and variant")
    pp.add_argument("--degrees", type=_degree, nargs="+", default=None,
                    help="SLAF degrees (default 3 8): the first is the main comparison, the others test "
                         "stability")
    pp.add_argument("--out", default="reports")
    pp.add_argument("--quick", action="store_true", help="a fifth of the epochs (a smoke run)")
    pp.add_argument("--quiet", action="store_true")
    pp.set_defaults(func=cmd_paper)

    run = sub.add_parser("run", help="the default suite, then the report")
    run.add_argument("--out", default="reports")
    run.add_argument("--steps", type=int, default=2000, help="gradient fits: optimizer steps")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=cmd_run)

    c = sub.add_parser("coefficients", help="list and check (or regenerate) a coefficient file")
    c.add_argument("file", nargs="?", default=None, help="default: slaf_approx/data/coefficients.json")
    c.add_argument("--write", action="store_true", help="regenerate the file first")
    c.set_defaults(func=cmd_coefficients)

    b = sub.add_parser("bench", help="time the kernel and fitting benchmarks, report, check the budgets")
    b.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    b.add_argument("--dtype", nargs="+", default=None, help="float32, bfloat16 (default: float32 on CPU, "
                   "both on CUDA)")
    b.add_argument("--backends", nargs="+", default=None, help="SLAF backends: reference, fused (CPU), "
                   "triton (CUDA); default: the device's")
    b.add_argument("--sizes", nargs="+", default=None, help="element counts, e.g. 2^16 2^20 2^24 (the CPU "
                   "default; CUDA: 2^20 .. 2^28)")
    b.add_argument("--degrees", nargs="+", default=None, help="SLAF degrees (default 2 4 8 16)")
    b.add_argument("--quick", action="store_true", help="the budgets' size and degree only, fused/triton, "
                   "no default sweep")
    b.add_argument("--kernels-only", action="store_true", help="skip the fitting-engine benchmarks")
    b.add_argument("--check", action="store_true", help="exit 1 if a budget breaks or a benchmark is slower "
                   "than the last saved run of this host and device (this run is not saved)")
    b.add_argument("--compare-fail", default="median:10%", help="pytest-benchmark's regression limit")
    b.add_argument("--budgets", default="bench/budgets.toml")
    b.add_argument("--out", default="reports", help="kernels.md and PNGs here, the JSON in OUT/bench/")
    b.add_argument("--json", default=None, help="the run's JSON (default OUT/bench/run-DEVICE.json), "
                   "stats without the raw timings")
    b.add_argument("--storage", default=None, metavar="DIR", help="pytest-benchmark's saved runs (default "
                   ".benchmarks/HOST-DEVICE): saved here, compared with the newest here with --check")
    b.add_argument("--rounds", type=_positive, default=None, help="CUDA: timed rounds per benchmark")
    b.add_argument("--warmup", type=int, default=None, help="CUDA: warm-up rounds per benchmark")
    b.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                   help="skip the benchmarks left after this many seconds (what ran is still reported)")
    b.add_argument("--report-only", nargs="+", default=None, metavar="RUN.json",
                   help="re-render the report (and check the budgets) from saved runs, timing nothing")
    b.add_argument("--counts", action="store_true", help="count instructions under valgrind instead of "
                   "timing (CPU, one thread): OUT/counts.json and OUT/counts.md; with --check, exit 1 if a "
                   "count grew above --threshold over the saved baseline of this machine and tools")
    b.add_argument("--threshold", type=_percent, default=None, metavar="PERCENT",
                   help="--counts --check: the allowed increase in percent (default 2)")
    b.add_argument("--save", action="store_true", help="--counts: save this run as the baseline (the first "
                   "run of a machine, tools and selection is saved anyway), in --storage (default "
                   ".benchmarks/counts)")
    b.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                   help="after --: more pytest arguments, e.g. slaf-approx bench -- --benchmark-min-rounds=3")
    b.set_defaults(func=cmd_bench)
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
