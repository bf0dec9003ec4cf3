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


FULL_STEPS, QUICK_STEPS = 2000, 200


def cmd_run(args) -> int:
    from .report import write_report
    from .sweep import DEFAULT_SUITE, RATIONAL_SUITE

    out = _out_folder(args, "run", args.quick or args.steps is not None)
    steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    recs, seconds = _sweep_and_write(*DEFAULT_SUITE.values(), out, not args.quiet, steps, also=RATIONAL_SUITE)
    from .benchmarks.runtable import PEER_ROWS, quick_kernel_table

    table_args = dict(size=2**16, min_run_time=0.02, peers=PEER_ROWS[:3]) if args.quick else {}
    path = write_report([r.to_dict() for r in recs], out, overlay_degree=8,
                        meta=_meta("slaf-approx run", seconds), kernel_table=quick_kernel_table(**table_args))
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


SCRATCH = Path(".scratch")


def _out_folder(args, command: str, partial: bool) -> Path:
    """--out when given; else the committed reports/ for a full run, and for a quick or partial run a
    scratch folder that git ignores (.scratch/COMMAND), announced on stderr."""
    if args.out is not None:
        return Path(args.out)
    if not partial:
        return Path("reports")
    out = SCRATCH / command
    print(f"slaf-approx {command}: a partial run: writing to {out}/ (git ignores it); the published "
          "report is written by the full command only", file=sys.stderr)
    return out


def _finite_positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value < 10):
        raise argparse.ArgumentTypeError(f"expected a fraction such as 5% or 0.05, got {text!r}")
    return value


def cmd_bench(args) -> int:
    """Time the benchmark suite (pytest-benchmark, the suite shipped in slaf_approx.benchmarks.suite), save
    the run for this machine, write kernels.md and check the budgets; with --check, compare with the newest
    saved run instead of saving; with --history, draw the saved runs and time nothing."""
    try:
        from . import benchmarks as kb
        from .benchmarks import command, compare, runs, workloads
    except ImportError as exc:
        raise UsageError(f"slaf-approx bench needs pytest and pytest-benchmark ({exc})") from None
    args.budgets = args.budgets or kb.BUDGETS_FILE
    budgets = kb.load_budgets(args.budgets)
    workloads.slowdown()  # a bad test-hook value is bad input, before any work
    if args.report_only:
        out = Path(args.out or "reports")
        return _bench_finish(args, [(p, kb.load_run(p)) for p in args.report_only], budgets, out)
    settings = kb.bench_settings(args.device, args.dtype, args.sizes, args.backends, args.degrees,
                                 peers=args.peers, rounds=args.rounds, warmup=args.warmup, quick=args.quick)
    storage = Path(args.storage) if args.storage else runs.storage_path(Path.cwd(), settings.device)
    if args.history:
        return _bench_history(args, storage, Path(args.out or "reports"))
    chosen = (args.dtype, args.sizes, args.backends, args.degrees, args.peers, args.rounds, args.deadline)
    partial = (args.quick or args.check or args.kernels_only or bool(args.pytest_args)
               or any(v is not None for v in chosen))
    out = _out_folder(args, "bench", partial)
    json_path = Path(args.json) if args.json else out / "bench" / f"run-{settings.device}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_name(f".{json_path.name}.partial")
    log = json_path.with_name(f"pytest-{settings.device}.log")
    argv = command.pytest_command(settings, tmp.resolve(), quick=args.quick, python=sys.executable,
                                  deadline=args.deadline, fit=not args.kernels_only, extra=args.pytest_args)
    print(f"slaf-approx bench: timing (pytest log -> {log})", file=sys.stderr, flush=True)
    import subprocess

    with open(log, "w") as fh:
        rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    if not tmp.is_file():
        why = "no benchmark ran (all skipped or deselected)" if rc in (0, 5) else "pytest failed"
        print(f"slaf-approx bench: {why}: pytest exited with status {rc} and wrote no benchmark JSON; "
              f"see {log}", file=sys.stderr)
        return rc or 1
    run = kb.compact(kb.load_run(tmp))
    run["slaf_approx"] = runs.code_version() | {"quick": bool(args.quick), "device": settings.device}
    tmp.unlink()
    saved = [kb.load_run(p) for p in runs.saved_runs(storage)]
    comparison, slower = None, []
    if args.check:
        previous = next((r for r in reversed(saved) if {b["name"] for b in r["benchmarks"]}
                         & {b["name"] for b in run["benchmarks"]}), None)
        if previous is None:
            print(f"slaf-approx bench: no saved run under {storage} to compare with (`slaf-approx bench` "
                  "saves one); checking the budgets only", file=sys.stderr)
        else:
            thresh, how = compare.thresholds(previous, args.threshold)
            rows = compare.compare_runs(run, previous, thresh)
            slower = [r for r in rows if r.slower]
            source = runs.saved_runs(storage)[saved.index(previous)].name
            comparison = compare.compare_table(rows, how, source)
    else:
        run["slaf_approx"]["spread"] = compare.spread([*saved, run])
        path = runs.save_run(storage, run)
        print(f"slaf-approx bench: saved -> {path}", file=sys.stderr)
    kb_path = json_path
    from ._io import atomic_write

    atomic_write(kb_path, (json.dumps(run, indent=1) + "\n").encode("utf-8"))
    all_runs = [(str(json_path), run)]
    gpu = Path("reports") / "gpu" / "kernels.json"
    if settings.device == "cpu" and not partial and gpu.is_file():
        all_runs.append((str(gpu), kb.load_run(gpu)))
    code = _bench_finish(args, all_runs, budgets, out, comparison, slower, storage=storage, full=not partial)
    if rc not in (0, 5):
        failed = [line for line in log.read_text(errors="replace").splitlines()
                  if line.startswith(("FAILED", "ERROR"))]
        print(f"slaf-approx bench: pytest exited with status {rc}: {'; '.join(failed[:5]) or 'see the log'} "
              f"({log})", file=sys.stderr)
        return 1
    return code


def _bench_history(args, storage: Path, out: Path) -> int:
    from .benchmarks import history
    from .benchmarks.report import write_figures_and_text
    from .benchmarks.runs import load_run, saved_runs

    files = saved_runs(storage)
    if not files:
        raise UsageError(f"no saved runs under {storage}: `slaf-approx bench` saves one per run")
    runs_ = history.ordered([load_run(p) for p in files])
    text = history.history_table(runs_, args.history_of)
    path = write_figures_and_text(out, "# Benchmark history\n\n" + text
                                  + "\n![history](kernels_history.png)\n",
                                  {"kernels_history.png": history.history_figure(runs_, args.history_of)},
                                  name="kernels_history.md")
    print(text)
    print(f"history -> {path}", file=sys.stderr)
    return 0


def _bench_finish(args, runs_, budgets, out: Path, comparison: str | None = None, slower=(), *,
                  storage: Path | None = None, full: bool = False) -> int:
    from . import benchmarks as kb
    from .benchmarks import history, report

    recs = [r for _, run in runs_ for r in kb.records(run)]
    results = kb.check_budgets(recs, budgets)
    hist_md, hist_fig = None, None
    if storage is not None and full:
        saved = history.ordered([kb.load_run(p) for p in kb.runs.saved_runs(storage)])
        if len(saved) > 1:
            hist_md = history.history_table(saved, args.history_of) + "\n![history](kernels_history.png)\n"
            hist_fig = history.history_figure(saved, args.history_of)
    md, figures = report.kernel_report(runs_, results, budgets_source=str(args.budgets),
                                       comparison=comparison, history=hist_md)
    if hist_fig is not None:
        figures["kernels_history.png"] = hist_fig
    if full:  # the published report is rewritten whole: no figure of an earlier layout is left behind
        for stale in Path(out).glob("kernels_*.png"):
            if stale.name not in figures:
                stale.unlink()
    path = report.write_figures_and_text(out, md, figures)
    fit_runs = [run for _, run in runs_ if any(r.get("op") is None for r in kb.records(run))]
    if fit_runs:
        report.write_text(out / "bench" / "fit.md", report.fit_markdown(fit_runs[0], results))
    failed = [r for r in results if r.failed]
    print(f"report -> {path}", file=sys.stderr)
    if args.check and (failed or slower):
        print(_failure_table(failed, slower))
        print(f"slaf-approx bench: check failed: {len(slower)} benchmarks slower, {len(failed)} budgets "
              "broken", file=sys.stderr)
        return 1
    print(kb.budget_table(results))
    if comparison:
        print(comparison)
    for i, (_, run) in enumerate(runs_):
        print(report.short_summary(run, results if i == len(runs_) - 1 else ()))
    return 0


def _failure_table(failed, slower) -> str:
    from ._markdown import table
    from .benchmarks.budgets import measured_text

    rows = [["budget", r.budget.name, measured_text(r), r.budget.limit(),
             r.status + (f" ({r.detail})" if r.detail else "")] for r in failed]
    rows += [["slower", r.name, f"{r.ratio - 1:+.1%}",
              f"saved interval ends at {r.ci_before[1]:.4g}, now starts at {r.ci_after[0]:.4g}", "slower"]
             for r in slower]
    return table(["check", "name", "measured", "limit", "status"], rows, "llrll")


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
    run.add_argument("--out", default=None, help="default: reports/ for the full run, .scratch/run/ for "
                     "--quick or --steps")
    run.add_argument("--steps", type=int, default=None, help="gradient fits: optimizer steps (default 2000)")
    run.add_argument("--quick", action="store_true", help="a smoke run: 200 optimizer steps, a short "
                     "kernel table")
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
    b.add_argument("--backends", nargs="+", default=None, help="SLAF backends (default: every backend "
                   "available on the device; triton on CUDA only)")
    b.add_argument("--peers", nargs="+", default=None, help="horner:eager horner:compile recurrence:compile "
                   "pau:eager pau:compile (the default), or none")
    b.add_argument("--sizes", nargs="+", default=None, help="element counts (default CPU: 2^10 2^16 2^20 "
                   "2^24; CUDA: 2^20 .. 2^28)")
    b.add_argument("--degrees", nargs="+", default=None, help="SLAF degrees (default 2 4 8 16)")
    b.add_argument("--quick", action="store_true", help="one size (CPU 2^20) and degree (8), eager and "
                   "compiled Horner as peers, no layer, no default sweep")
    b.add_argument("--kernels-only", action="store_true", help="skip the fitting-engine benchmarks")
    b.add_argument("--check", action="store_true", help="exit 1, with one table, if a budget breaks or a "
                   "benchmark is slower than the newest saved run of this machine (this run is not saved)")
    b.add_argument("--threshold", type=_fraction, default=0.05, metavar="FRACTION",
                   help="--check: the least slowdown reported, raised to the machine's measured run-to-run "
                   "spread (default 5%%)")
    b.add_argument("--budgets", default=None, help="budgets file (default: the shipped "
                   "slaf_approx/benchmarks/budgets.toml)")
    b.add_argument("--out", default=None, help="kernels.md and PNGs here, the JSON in OUT/bench/ (default: "
                   "reports/ for a full run, .scratch/bench/ for a quick or partial one)")
    b.add_argument("--json", default=None, help="the run's JSON (default OUT/bench/run-DEVICE.json)")
    b.add_argument("--storage", default=None, metavar="DIR", help="the saved runs (default "
                   ".benchmarks/HOST-DEVICE): saved here, compared with the newest here with --check")
    b.add_argument("--rounds", type=_positive, default=None, help="fixed timed rounds per benchmark")
    b.add_argument("--warmup", type=int, default=None, help="CUDA: warm-up rounds per benchmark")
    b.add_argument("--deadline", type=_finite_positive, default=None, metavar="SECONDS",
                   help="skip the benchmarks left after this many seconds (what ran is still reported)")
    b.add_argument("--history", action="store_true", help="draw each benchmark across the saved runs in "
                   "commit order (OUT/kernels_history.png and .md); times nothing")
    b.add_argument("--history-of", default="median", metavar="QUANTITY", help="the quantity --history "
                   "draws: median (default), anchored (time / paired copy), or a counted field")
    b.add_argument("--report-only", nargs="+", default=None, metavar="RUN.json",
                   help="re-render the report (and check the budgets) from saved runs, timing nothing")
    b.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                   help="after --: more pytest arguments, e.g. slaf-approx bench -- --benchmark-max-time=2")
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
