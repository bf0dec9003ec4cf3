"""The `slaf-approx` command: targets, fit, sweep, report, expand, paper, run.

Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""


class Interrupted(Exception):
    """Ctrl-C, with a true account of what was kept (exit code 130)."""


#: what a number looks like on the command line, signed: 3, -3, -.5, -1e3, -1E+03, -inf, -nan
_NUMBER = re.compile(r"^-(?:(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?|inf|infinity|nan)$",
                     re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message over several lines; we print one
        raise UsageError(message)

    def _parse_optional(self, arg_string):
        # argparse reads -1e3 and -inf as options ("expected 2 arguments"): no option of ours looks like a
        # number, so anything that does is a value
        if _NUMBER.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


def _shown(value) -> str:
    """A default as a user types or reads it: [-3, 3] for an interval, 'a b c' for a list, 3 for 3.0."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"[{value[0]:g}, {value[1]:g}]"
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its allowed values and its default, unless its text states them."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.help is argparse.SUPPRESS or isinstance(action, (argparse._HelpAction,
                                                                   argparse._VersionAction)):
            return text
        extra = []
        if action.choices is not None and "allowed" not in text:
            extra.append("allowed: " + ", ".join(map(str, action.choices)))
        if "default" not in text:
            if action.nargs == 0:
                extra.append("default: off")
            elif action.default is not None and action.default is not argparse.SUPPRESS:
                extra.append(f"default: {_shown(action.default)}".replace("%", "%%"))
            elif not action.required and action.option_strings:
                extra.append("default: none")
        return "; ".join(([text] if text else []) + extra)


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
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"--param takes NAME=NUMBER, got {item!r}")
        if not math.isfinite(number):
            raise UsageError(f"--param {name} must be a finite number, got {value!r}")
        if name in out:
            raise UsageError(f"--param {name} is given twice")
        out[name] = number
    return out


def _degrees(text: str) -> list[int]:
    """'1-20' or '1,2,4,8' or '8': each degree checked before the list is built."""
    from .bases import MAX_DEGREE

    usage = f"degrees take 'A-B' or 'A,B,C' with degrees in 0-{MAX_DEGREE}, got {text!r}"
    try:
        if "-" in text.strip("-"):
            a, b = (int(v) for v in text.split("-", 1))
            ends = [a, b]
        else:
            ends = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(usage) from None
    bad = [d for d in ends if not 0 <= d <= MAX_DEGREE]
    if bad:
        raise UsageError(f"degree {bad[0]} is out of range: degrees are 0-{MAX_DEGREE}")
    if "-" in text.strip("-"):
        if ends[0] > ends[1]:
            raise UsageError(f"degree range {text!r} is empty (A-B needs A <= B)")
        return list(range(ends[0], ends[1] + 1))
    return ends


def _count(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            allowed = {(0, None): "a non-negative integer", (1, None): "a positive integer"}.get(
                (lo, hi), f"an integer in {lo}..{hi}")
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value
    return parse


_positive = _count(1)
_nonnegative = _count(0)
_seed = _count(0, 2**63 - 1)


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _target_row(tg) -> list[str]:
    """name, title, parameters, Lipschitz constant, kinks, nearest singularity; '~' marks an estimate."""
    def mark(*fields: str) -> str:
        return "~" if set(fields) & tg.estimated else ""

    params = ", ".join(f"{k}={v:g}" for k, v in tg.params.items()) or "-"
    kinks = mark("kinks") + (", ".join(f"{k:g}" for k in tg.kinks) or "-")
    if tg.kinks:
        sing = "-"
    elif tg.entire:
        sing = mark("entire", "singularities") + "entire"
    else:
        z = min(tg.singularities, key=lambda s: (s.imag, abs(s.real)))
        sing = mark("singularities") + f"{z.real:.6g}{z.imag:+.6g}i (distance {z.imag:.6g})"
    return [tg.name, tg.title, params, mark("lipschitz") + f"{tg.lipschitz:.6g}", kinks, sing]


def cmd_targets(args) -> int:
    from .targets import load_catalogue, schema_markdown

    if args.schema:
        print(schema_markdown(), end="")
        return 0
    rows = [["name", "title", "parameters", "Lipschitz", "kinks", "nearest singularity"]]
    rows += [_target_row(tg) for tg in load_catalogue().values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if any("~" in c for r in rows[1:] for c in r):
        print("~ estimated from the formula (the entry leaves the field out)")
    return 0


def _fit_basis(args) -> str:
    """--basis, or its default: chebyshev, and for the rational methods powers of the raw x (the
    convention of the Padé activation units, of the report's rational rows and of the shipped sets)."""
    from .fit import RATIONAL_METHODS

    return args.basis or ("power" if args.method in RATIONAL_METHODS else "chebyshev")


def cmd_fit(args) -> int:
    from .fit import fit
    from .report.labels import basis_label, variable_text

    extra = {"form": args.form} if args.form else {}
    if args.degree is None and args.tol is None:
        raise UsageError("fit needs --degree N or --tol EPS")
    if args.tol is not None:
        extra["tol"] = args.tol
    rec = fit(args.target, args.degree, args.method, _fit_basis(args), args.interval, variable=args.variable,
              params=_params(args.param), weight=args.weight, steps=args.steps, optimizer=args.optimizer,
              seed=args.seed, error=args.error, pin=args.pin or (), parity=args.parity, dtype=args.dtype,
              coef_dtype=args.coef_dtype, **extra)
    if args.json:
        d = rec.to_dict()
        print(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in d.items()}))
        return 0
    lines = [("target", rec.target), ("method", rec.method),
             ("basis", basis_label(rec.basis, rec.variable)),
             ("variable", variable_text(rec.variable, rec.lo, rec.hi)), ("degree", rec.degree)]
    if rec.form:
        m, n = len(rec.coefficients) - 1, len(rec.denominator)
        lines += [("type", f"({m}, {n}): P of degree {m} over Q of degree {n}, {m + 1 + n} parameters"),
                  ("form", f"{rec.form}: {FORM_TEXT.get(rec.form, rec.form)}")]
    measured = ["dtype", "achieved_error", "achieved_rms"] if args.dtype is not None else []
    shown = ["lo", "hi", "max_error", "rms_error", *measured,
             "levelled_error", "iterations", "converged", "note", "condition_number", "seconds"]
    if rec.error_kind != "absolute" or rec.weight != "uniform":
        shown[shown.index("levelled_error"):shown.index("levelled_error")] = ["error_kind", "weight",
                                                                             "weighted_max_error"]
    if rec.pin or rec.parity:
        shown[shown.index("note"):shown.index("note")] = ["pin", "parity"]
    if rec.coef_dtype != "float64":
        shown[shown.index("note"):shown.index("note")] = ["coef_dtype", "naive_error"]
    lines += [(k, getattr(rec, k)) for k in shown]
    for k, v in lines:
        print(f"{k:>20}: {_fmt(v)}")
    _print_coefficients(rec.coefficients, rec.denominator if rec.form else None)
    return 0


#: the rational forms, as the report describes them (v: the variable, phi_j: the basis)
FORM_TEXT = {"pau": "P / (1 + |q_1 phi_1(v) + ... + q_n phi_n(v)|)",
             "standard": "P / (1 + q_1 phi_1(v) + ... + q_n phi_n(v))"}


def _print_coefficients(coefficients, denominator=None) -> None:
    """Polynomial coefficients, or a rational function's numerator p_0..p_m and denominator q_1..q_n."""
    row = lambda cs: " ".join(f"{c:.17g}" for c in cs)  # noqa: E731
    if denominator is None:
        print(f"{'coefficients':>20}: " + row(coefficients))
        return
    print(f"{f'numerator p_0..p_{len(coefficients) - 1}':>20}: " + row(coefficients))
    print(f"{f'denominator q_1..q_{len(denominator)}':>20}: " + row(denominator))


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


def _out_folder(text: str) -> Path:
    """--out: created now, and checked writable, so that a bad folder fails before any work."""
    import tempfile

    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write to --out {text!r}: {exc.strerror or exc}") from None
    return path


def _bar(enabled: bool):
    """A progress callback for run_sweep drawing a tqdm bar on stderr (or None)."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bars = []

    def update(done: int, total: int) -> None:
        if not bars:  # made at the first report, when the total is known
            bars.append(tqdm(total=total, initial=done, unit="fit", file=sys.stderr, dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    return update, lambda: bars and bars[0].close()


def _suites(args, suites) -> list:
    """Validate every suite of a sweep or run (plan() checks each axis) before anything runs."""
    from .executors import check
    from .sweep import plan

    check(args.executor, args.workers, args.scheduler)
    for suite, options in suites:
        plan(*suite, **options)
    return suites


def _sweep_and_write(args, suites, out: Path):
    """Run the suites into one table under the folder's lock; fits are journalled as they finish."""
    from . import results
    from .sweep import run_sweep

    stem = out / "results"
    recs, seconds = [], 0.0
    with results.locked(stem):
        results.clean(stem)
        journal = results.Journal(stem)
        try:
            for i, (suite, options) in enumerate(suites):
                t0 = time.perf_counter()
                progress, close = _bar(not args.quiet)
                try:
                    res = run_sweep(*suite, progress=progress, journal=journal, resume=args.resume,
                                    executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                                    **options)
                finally:
                    close()
                dt = time.perf_counter() - t0
                seconds = seconds or dt  # the first suite's time is the one reported
                more = "more " if i else ""
                print(f"{len(res.records)} {more}fits in {dt:.1f} s ({res.computed} computed, {res.reused} "
                      f"reused from the journal)", file=sys.stderr)
                if journal.unreadable:
                    print(f"slaf-approx: {journal.unreadable} unreadable journal lines skipped (their fits "
                          "were recomputed)", file=sys.stderr)
                recs += res.records
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; the results table in {str(out)!r} is unchanged; the fits "
                              f"finished so far are in {journal.path} (rerun with --resume to reuse them)") \
                from None
        finally:
            journal.close()
        before = results.generation(stem)
        try:
            csv_path, jsonl_path = results.write_table(recs, stem)
        except KeyboardInterrupt:  # the table is replaced by one rename: either before it or after it
            state = "unchanged" if results.generation(stem) == before else "written"
            raise Interrupted(f"interrupted; the results table in {str(out)!r} is {state}") from None
    print(f"results -> {csv_path}, {jsonl_path}", file=sys.stderr)
    return recs, seconds


def _problem_options(args) -> dict:
    """sweep's --weight, --error, --pin, --parity and --coef-dtype, those given only: a default leaves the
    fits' journal keys as they were."""
    given = dict(weight=args.weight, error=args.error, pin=tuple(args.pin or ()), parity=args.parity,
                 coef_dtype=args.coef_dtype)
    defaults = dict(weight="uniform", error="absolute", pin=(), parity=None, coef_dtype=None)
    return {k: v for k, v in given.items() if v != defaults[k]}


def cmd_sweep(args) -> int:
    intervals = [tuple(iv) for iv in (args.interval or [(-3.0, 3.0)])]
    suites = _suites(args, [((args.targets, args.bases, args.degrees, args.methods, intervals),
                             {"steps": args.steps, "dtype": args.dtype} | _problem_options(args))])
    _sweep_and_write(args, suites, _out_folder(args.out))
    return 0


def _bench_records(paths) -> list[dict] | None:
    """The records of the first benchmark run found among `paths` (for the report's Summary), or None."""
    for path in paths:
        if path is not None and Path(path).is_file():
            from .benchmarks import load_run, records

            return records(load_run(path))
    return None


def _default_runs(*folders) -> list[Path]:
    """Where `slaf-approx bench` leaves its last run: FOLDER/bench/run-cpu.json, then run-cuda.json."""
    return [Path(f) / "bench" / f"run-{device}.json" for f in folders for device in ("cpu", "cuda")]


def cmd_report(args) -> int:
    from .report import write_report
    from .sweep import read_table

    bench_paths = [args.bench] if args.bench else _default_runs(args.out, Path(args.results).parent)
    if args.bench and not Path(args.bench).is_file():
        raise UsageError(f"no benchmark run at {args.bench!r}")
    bench = _bench_records(bench_paths)
    out = _out_folder(args.out)
    rows = read_table(args.results)
    path = write_report(rows, out, overlay_degree=args.overlay_degree,
                        meta=_meta(f"slaf-approx report {args.results}", 0.0) | {"seconds": "-"},
                        bench=bench, dtypes=_dtypes(args))
    print(f"report -> {path}", file=sys.stderr)
    return 0


FULL_STEPS, QUICK_STEPS = 2000, 200


def _cost_timings(rows, quick: bool):
    """Forward+backward timings of the approximants the report's "Accuracy against cost" plots."""
    from .benchmarks.accuracy import measure_costs
    from .report import groups
    from .report.cost import timed_degrees

    gs = groups(rows)
    slaf, pau = timed_degrees(gs)
    budget = dict(min_rounds=2, max_rounds=5, budget_s=1.0) if quick else {}
    return measure_costs(sorted({g.target for g in gs}), slaf, pau, **budget)


def cmd_run(args) -> int:
    from .report import write_report
    from .sweep import COEF_FORMATS, COEF_SUITE, DEFAULT_SUITE, RATIONAL_SUITE

    partial = args.quick or args.steps is not None
    out = _out_folder(str(_default_out(args, "run", partial)))
    steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    suites = _suites(args, [(tuple(DEFAULT_SUITE.values()), {"steps": steps}),
                            (tuple(RATIONAL_SUITE.values()), {})]
                     + [(tuple(COEF_SUITE.values()), {"coef_dtype": d}) for d in COEF_FORMATS])
    bench = _bench_records(_default_runs(out))  # read first: a broken run file stops us before the sweep
    recs, seconds = _sweep_and_write(args, suites, out)
    from .benchmarks.runtable import PEER_ROWS, quick_kernel_table

    table_args = dict(size=2**16, min_run_time=0.02, peers=PEER_ROWS[:3]) if args.quick else {}
    rows = [r.to_dict() for r in recs]
    try:
        path = write_report(rows, out, overlay_degree=8, meta=_meta("slaf-approx run", seconds),
                            kernel_table=quick_kernel_table(**table_args), bench=bench, dtypes=_dtypes(args),
                            cost=_cost_timings(rows, args.quick))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the results table in {str(out)!r} is written, the report is not "
                          "complete (slaf-approx report makes it from the table)") from None
    print(f"report -> {path}", file=sys.stderr)
    return 0


def cmd_expand(args) -> int:
    import numpy as np

    from .expand import (
        check_random_network,
        expand,
        expansion_size,
        max_relative_error,
        monomial_name,
        random_network,
    )

    check_random_network(args.inputs, args.widths, args.degree, args.max_terms)  # before any allocation
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
    from .paper import check_arguments

    check_arguments(args.tasks, args.seeds, args.degrees or DEGREES)  # before any folder is made
    partial = args.quick or args.tasks is not None or args.seeds != 5 or args.degrees is not None
    out = _out_folder(str(_default_out(args, "paper", partial)))
    path = run_paper(args.tasks, args.seeds, out, args.quick, degrees=args.degrees or DEGREES,
                     progress=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)))
    print(f"{time.perf_counter() - t0:.1f} s; report -> {path}", file=sys.stderr)
    return 0


def cmd_coefficients(args) -> int:
    from .coefstore import entry, load, write_default

    if args.write:
        write_default(args.file)
    if args.show:
        _show_entry(entry(args.show, args.file))
        return 0
    entries = load(args.file)
    for e in entries:
        kind = f"({e['type'][0]}, {e['type'][1]}) {e['form']}" if e["kind"] == "rational" else \
            f"degree {e['degree']}"
        print(f"{e['name']:<40} {kind:<18} {e['basis']}({e['variable']}) on [{e['interval'][0]:g}, "
              f"{e['interval'][1]:g}]  max error {e['max_error']:.4g}")
    print(f"{len(entries)} entries checked (re-evaluated against their targets)", file=sys.stderr)
    return 0


def _show_entry(e: dict) -> None:
    """One stored coefficient set, every field needed to evaluate it (checked against its target)."""
    from .report.labels import basis_label, variable_text

    lo, hi = e["interval"]
    lines = [("name", e["name"]), ("target", e["target"]),
             ("params", ", ".join(f"{k}={v:g}" for k, v in e["params"].items()) or "catalogue defaults"),
             ("method", e["method"]), ("basis", basis_label(e["basis"], e["variable"])),
             ("variable", variable_text(e["variable"], lo, hi)), ("interval", f"[{lo:g}, {hi:g}]")]
    if e["kind"] == "rational":
        m, n = e["type"]
        lines += [("type", f"({m}, {n}): P of degree {m} over Q of degree {n}"),
                  ("form", f"{e['form']}: {FORM_TEXT.get(e['form'], e['form'])}")]
    else:
        lines.append(("degree", e["degree"]))
    lev = e.get("levelled_error")
    lines += [("max_error", e["max_error"]), ("rms_error", e["rms_error"]),
              ("levelled_error", math.nan if lev is None else lev), ("created", e["created"])]
    for k, v in lines:
        print(f"{k:>20}: {_fmt(v)}")
    _print_coefficients(e["coefficients"], e["denominator"] if e["kind"] == "rational" else None)
    if e["kind"] == "polynomial":
        print(f"{'in python':>20}: SLAF.from_coefficients({e['name']!r})  (slaf_approx.nn)")


SCRATCH = Path(".scratch")


def _default_out(args, command: str, partial: bool) -> Path:
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


def _count_degrees(items) -> list[int] | None:
    """--degrees for --counts: integers or ranges A-B, space- or comma-separated."""
    if not items:
        return None
    out = []
    for tok in ",".join(items).replace(" ", ",").split(","):
        if tok:
            out += _degrees(tok)
    return out


def cmd_bench(args) -> int:
    """Time the benchmark suite (the suite shipped in slaf_approx.benchmarks.suite), save the run for this
    machine, write kernels.md and check the budgets; --check compares with the newest saved runs instead of
    saving; --counts counts instructions; --history draws the saved runs; --trial measures the check."""
    try:
        from .benchmarks import command
    except ImportError as exc:
        raise UsageError(f"slaf-approx bench needs pytest and pytest-benchmark ({exc})") from None

    def say(line: str) -> None:
        print(f"slaf-approx bench: {line}", file=sys.stderr, flush=True)

    command.validate(args)
    degrees = _count_degrees(args.degrees) if args.counts else None
    if args.history:
        outcome = command.history(args, Path(args.out or "reports"), say)
    elif args.trial:
        from .benchmarks.trial import FULL

        prep = command.prepare(args)
        out = _out_folder(str(_default_out(args, "bench", args.trial < FULL)))
        work = Path(args.out) / "trial" if args.out else SCRATCH / "bench" / "trial"
        outcome = command.trial(args, prep, out, work, say)
    elif args.counts:
        benches = command.counts_plan(args, degrees)
        out = args.out or _default_out(args, "bench", command.is_partial(args)) / "bench"
        outcome = command.counts(args, benches, _out_folder(str(out)), say)
    else:
        prep = command.prepare(args)
        if args.report_only:
            outcome = command.timed(args, prep, Path(args.out or "reports"), False, say)
        else:
            partial = command.is_partial(args)
            out = _out_folder(str(_default_out(args, "bench", partial)))
            outcome = command.timed(args, prep, out, partial, say)
    if outcome.text:
        print(outcome.text)
    return outcome.code


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slaf-approx")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from . import __version__

        return f"{__version__} (not installed)"


def _add_run_options(p) -> None:
    from .executors import EXECUTORS

    p.add_argument("--resume", action="store_true",
                   help="reuse the fits already in OUT's journal (same specification), compute the rest")
    p.add_argument("--workers", type=_positive, default=None,
                   help="parallel worker processes (default: the number of cores)")
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="process (a local pool of --workers), serial, or dask (the cluster at --scheduler)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="the Dask scheduler's address, e.g. tcp://scheduler-host:8786 (with --executor dask)")


def _add_problem_options(p) -> None:
    """The options of the fitting problem and of its record, shared by `fit` and `sweep` (one fit or every
    fit of the sweep)."""
    from .coefround import COEF_DTYPES
    from .precision import DTYPES
    from .problem import ERROR_KINDS, PARITIES

    p.add_argument("--weight", default="uniform",
                   help="lstsq: the measure; minimax: max |w (f-p)|; allowed: uniform, normal, normal:SIGMA")
    p.add_argument("--error", choices=ERROR_KINDS, default="absolute",
                   help="minimax: the error minimised, f - p or (f - p)/f (simple zeros of f are pinned)")
    p.add_argument("--pin", type=float, action="append", metavar="X",
                   help="impose p(X) = f(X) (lstsq, minimax; repeatable), e.g. --pin 0 for SLAF(0) = f(0)")
    p.add_argument("--parity", choices=PARITIES, default=None,
                   help="force even or odd fits (lstsq, minimax; an interval symmetric about 0)")
    p.add_argument("--coef-dtype", choices=COEF_DTYPES, default=None,
                   help="polynomial coefficients representable in this format, fitted for it "
                        "(rounding-aware; the record gives naive rounding's error too); default: float64, "
                        "not rounded")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="achieved_error/achieved_rms: the fit evaluated in this dtype as the kernels "
                        "evaluate it, against the float64 target at the dtype's inputs (part of a sweep's "
                        "fit keys; default: not measured)")


def _add_dtypes(p) -> None:
    from .precision import DTYPES

    p.add_argument("--dtypes", nargs="*", choices=DTYPES, default=None, metavar="DTYPE",
                   help="the report's floor: the minimax fits' achieved errors in these dtypes, drawn and "
                        f"summarised; allowed: {', '.join(DTYPES)}; default: float32 bfloat16 float16; "
                        "the flag alone: no floor")


def _dtypes(args) -> tuple[str, ...]:
    from .report.data import REPORT_DTYPES

    return REPORT_DTYPES if args.dtypes is None else tuple(args.dtypes)


def build_parser() -> argparse.ArgumentParser:
    from .bases import BASES, VARIABLES
    from .expand import MAX_TERMS_LIMIT
    from .fit import ALL_METHODS, METHODS, OPTIMIZERS
    from .rational import FORMS

    degree_help = "an integer in [0, 64]"
    p = _Parser(prog="slaf-approx", description="Approximation benchmarks for self-learnable activations.",
                formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add = lambda name, help: sub.add_parser(name, help=help, description=help, formatter_class=_Help)  # noqa: E731

    t = add("targets", "list the target catalogue")
    t.add_argument("--schema", action="store_true",
                   help="print the catalogue page instead: every field, function and operator (default: off)")
    t.set_defaults(func=cmd_targets)

    f = add("fit", "fit one target")
    f.add_argument("target", help="a catalogue name (slaf-approx targets lists them)")
    f.add_argument("--degree", "-n", type=_degree, default=None,
                   help=f"polynomial degree; rational methods: m + n of type (m, n); {degree_help}; with "
                        "--tol: the largest degree tried (default 64); required without --tol")
    f.add_argument("--tol", type=float, default=None, metavar="EPS",
                   help="lstsq and minimax: fit the lowest degree whose max error is <= EPS; default: off")
    f.add_argument("--method", choices=ALL_METHODS, default="lstsq", help="fitting method")
    f.add_argument("--basis", choices=list(BASES), default=None,
                   help="basis of the coefficients; default: chebyshev, and power (raw x, the Padé "
                        "activation units' convention) for the rational methods")
    f.add_argument("--variable", choices=VARIABLES, default=None,
                   help="power basis: raw x (default, the paper's form) or mapped t in [-1, 1]; other bases: "
                        "mapped (default)")
    f.add_argument("--interval", nargs=2, type=float, metavar=("LO", "HI"), default=(-3.0, 3.0),
                   help="fitting interval, finite LO < HI")
    f.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="target parameter, e.g. beta=2 (repeatable); default: the catalogue's values")
    _add_problem_options(f)
    f.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="gradient fits: the optimizer")
    f.add_argument("--steps", type=_positive, default=2000, help="gradient fits: optimizer steps")
    f.add_argument("--seed", type=_seed, default=0, help="gradient fits: random seed (an integer)")
    f.add_argument("--form", choices=FORMS, default=None,
                   help="rational methods: denominator form; default: pau for rational, standard for "
                        "rational-minimax")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=cmd_fit)

    s = add("sweep", "targets x bases x degrees x methods x intervals -> results table")
    s.add_argument("--targets", nargs="+", default=["relu", "gelu", "swish", "tanh"],
                   help="catalogue names")
    s.add_argument("--bases", nargs="+", default=["power", "chebyshev", "legendre"],
                   help=f"allowed: {', '.join(BASES)}; power:mapped fits powers of the mapped variable")
    s.add_argument("--degrees", type=_degrees, default="1-20", help="A-B or A,B,C, each in [0, 64]")
    s.add_argument("--methods", nargs="+", default=list(METHODS), help=f"allowed: {', '.join(ALL_METHODS)}")
    s.add_argument("--interval", nargs=2, type=float, action="append", metavar=("LO", "HI"),
                   help="fitting interval, finite LO < HI (repeatable); default: [-3, 3]")
    s.add_argument("--steps", type=_positive, default=2000, help="gradient fits: optimizer steps")
    _add_problem_options(s)
    s.add_argument("--out", default="reports", help="folder for results.csv and results.jsonl")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_run_options(s)
    s.set_defaults(func=cmd_sweep)

    r = add("report", "tables and plots from a results table")
    r.add_argument("results", nargs="?", default="reports/results.csv",
                   help="a results table (.csv or .jsonl)")
    r.add_argument("--out", default="reports", help="folder for README.md and the PNG figures")
    r.add_argument("--overlay-degree", type=_degree, default=8,
                   help=f"degree of the overlay figures (the closest present); {degree_help}")
    r.add_argument("--bench", default=None, metavar="RUN.json",
                   help="a benchmark run for the Summary's kernel costs; default: OUT/bench/run-cpu.json (or "
                        "-cuda), else beside the results table; none found: 'not measured'")
    _add_dtypes(r)
    r.set_defaults(func=cmd_report)

    e = add("expand", "a random Linear/SLAF network as an explicit polynomial")
    e.add_argument("--inputs", type=_positive, required=True, help="number of inputs (≥ 1); required")
    e.add_argument("--widths", type=_positive, nargs="+", required=True,
                   help="hidden widths (each ≥ 1), e.g. 4 4; required")
    e.add_argument("--degree", "-n", type=_degree, required=True,
                   help=f"degree of every SLAF; {degree_help}; required")
    e.add_argument("--basis", choices=list(BASES), default="chebyshev", help="basis of every SLAF")
    e.add_argument("--seed", type=_seed, default=0, help="random seed of the weights (an integer)")
    e.add_argument("--max-terms", type=_count(1, MAX_TERMS_LIMIT), default=200_000,
                   help=f"refuse an expansion predicted to have more terms (1 to {MAX_TERMS_LIMIT})")
    e.add_argument("--top", type=_nonnegative, default=10, help="how many of the largest terms to print")
    e.add_argument("--json", action="store_true", help="print the whole polynomial as one JSON object")
    e.set_defaults(func=cmd_expand)

    pp = add("paper", "the learning experiments: ReLU against SLAF variants on small tasks")
    pp.add_argument("--tasks", nargs="+", default=None, help="allowed: spirals, cubic, digits; default: all")
    pp.add_argument("--seeds", type=_positive, default=5, help="seeds per task and variant (≥ 1)")
    pp.add_argument("--degrees", type=_degree, nargs="+", default=None,
                    help=f"SLAF degrees, each {degree_help}; default: 3 8 (the first is the main comparison, "
                         "the others test stability)")
    pp.add_argument("--out", default=None, help="folder for paper.md and its figures; default: reports/ for "
                    "the full run, .scratch/paper/ for --quick or a subset of tasks, seeds or degrees")
    pp.add_argument("--quick", action="store_true", help="a fifth of the epochs (a smoke run)")
    pp.add_argument("--quiet", action="store_true", help="no progress lines")
    pp.set_defaults(func=cmd_paper)

    run = add("run", "the default suite, then the report")
    run.add_argument("--out", default=None, help="folder for the results table and the report; default: "
                     "reports/ for the full run, .scratch/run/ for --quick or --steps")
    run.add_argument("--steps", type=_positive, default=None,
                     help=f"gradient fits: optimizer steps; default: {FULL_STEPS}; {QUICK_STEPS} with "
                          "--quick")
    run.add_argument("--quick", action="store_true", help="a smoke run: 200 optimizer steps, a short "
                     "kernel table, into .scratch/run/")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dtypes(run)
    _add_run_options(run)
    run.set_defaults(func=cmd_run)

    c = add("coefficients", "list and check (or regenerate) a coefficient file, or show one set")
    c.add_argument("file", nargs="?", default=None,
                   help="a coefficient file; default: the shipped slaf_approx/data/coefficients.json")
    c.add_argument("--show", metavar="NAME", default=None,
                   help="print one set: basis, variable, interval, coefficients, errors; default: list all")
    c.add_argument("--write", action="store_true", help="regenerate the file first")
    c.set_defaults(func=cmd_coefficients)

    b = add("bench", "time the kernel and fitting benchmarks, report, check the budgets")
    b.add_argument("--device", default="cpu", help="allowed: cpu, cuda")
    b.add_argument("--dtype", nargs="+", default=None, help="float32, bfloat16 (default: float32 on CPU, "
                   "both on CUDA)")
    b.add_argument("--backends", nargs="+", default=None, help="SLAF backends (default: every backend "
                   "available on the device; triton on CUDA only)")
    b.add_argument("--peers", nargs="+", default=None, help="horner:eager horner:compile recurrence:compile "
                   "pau:eager pau:compile (the default), or none")
    b.add_argument("--sizes", nargs="+", default=None, help="element counts (default CPU: 2^10 2^16 2^20 "
                   "2^24; CUDA: 2^20 .. 2^28)")
    b.add_argument("--degrees", nargs="+", default=None, help=f"SLAF degrees, each {degree_help}; "
                   "default: 2 4 8 16")
    b.add_argument("--quick", action="store_true", help="one size (CPU 2^20) and degree (8), eager and "
                   "compiled Horner as peers, no layer, no default sweep")
    b.add_argument("--kernels-only", action="store_true", help="skip the fitting-engine benchmarks")
    b.add_argument("--check", action="store_true", help="exit 1, with one table, if a budget breaks or a "
                   "benchmark is slower than the newest saved runs of this machine (this run is not saved)")
    b.add_argument("--threshold", type=_fraction, default=None, metavar="FRACTION",
                   help="--check: the least change reported, e.g. 10%% or 0.1; timed: raised by the "
                   "machine's measured run-to-run spread (default 15%%); --counts: instructions "
                   "(default 2%%)")
    b.add_argument("--budgets", default=None, help="budgets file (default: the shipped "
                   "slaf_approx/benchmarks/budgets.toml)")
    b.add_argument("--out", default=None, help="kernels.md and PNGs here, the JSON in OUT/bench/ (default: "
                   "reports/ for a full run, .scratch/bench/ for a quick or partial one)")
    b.add_argument("--json", default=None, help="the run's JSON (default OUT/bench/run-DEVICE.json)")
    b.add_argument("--storage", default=None, metavar="DIR", help="the saved runs (default "
                   ".benchmarks/HOST-DEVICE): saved here, compared with the newest here with --check")
    b.add_argument("--rounds", type=_positive, default=None, help="fixed timed rounds per benchmark")
    b.add_argument("--warmup", type=int, default=None, help="CUDA: warm-up rounds per benchmark; default: "
                   "pytest-benchmark's")
    b.add_argument("--deadline", type=_finite_positive, default=None, metavar="SECONDS",
                   help="skip the benchmarks left after this many seconds (what ran is still reported); "
                        "default: no deadline")
    b.add_argument("--history", action="store_true", help="draw each benchmark across the saved runs in "
                   "commit order (OUT/kernels_history.png and .md); times nothing")
    b.add_argument("--history-of", default="median", metavar="QUANTITY", help="the quantity --history "
                   "draws: median (default), anchored (time / paired copy), or a counted field")
    b.add_argument("--report-only", nargs="+", default=None, metavar="RUN.json",
                   help="re-render the report (and check the budgets) from saved runs, timing nothing; "
                        "default: time a new run")
    b.add_argument("--counts", action="store_true", help="count instructions under valgrind instead of "
                   "timing (CPU, one thread): OUT/counts.json and OUT/counts.md; with --check, exit 1 if a "
                   "count grew above --threshold (default 2%%) over the saved baseline of this machine and "
                   "tools")
    b.add_argument("--save", action="store_true", help="--counts: save this run as the baseline (the first "
                   "run of a machine, tools and selection is saved anyway), in --storage (default "
                   ".benchmarks/counts)")
    b.add_argument("--trial", type=_positive, default=None, metavar="N",
                   help="measure the check: 5 saved quick runs, N quick checks of the same code (false "
                   "alarms) and N with every SLAF op 25%% slower (detections), and whether every budget "
                   "held -> OUT/bench/false_alarm.md (OUT: reports/ for N >= 10, else .scratch/bench/); "
                   "the runs go to .scratch/bench/trial (or OUT/trial)")
    b.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                   help="after --: more pytest arguments, e.g. slaf-approx bench -- "
                        "--benchmark-max-time=2; default: none")
    b.set_defaults(func=cmd_bench)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr (no file, line number or source): the user did not write that code."""
    text = " ".join(str(message).split())
    print(f"slaf-approx: warning: {text} ({category.__name__})", file=file or sys.stderr)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():  # restores showwarning afterwards (the CLI may run in-process)
            warnings.showwarning = _one_line_warning
            return args.func(args)
    except (UsageError, ValueError, OSError) as exc:
        msg = " ".join(str(exc).split())
        print(f"slaf-approx: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"slaf-approx: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("slaf-approx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
