"""`slaf-approx bench` once parsed: the pytest command line of the suite shipped in this package (run
from any directory), the timed run with its saved runs, check and report, the instruction counts, the
history. cli parses the options, picks the output folder, prints and maps errors to exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .settings import BenchSettings

SUITE = Path(__file__).resolve().with_name("suite")
#: --quick keeps the Remez benchmarks of this degree (a -k keyword: it matches the parameter id)
QUICK_REMEZ = "20"


def pytest_command(
    settings: BenchSettings,
    json_path,
    *,
    quick: bool = False,
    python: str = "python",
    deadline: float | None = None,
    fit: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """argv timing the suite: the kernel benchmarks and, on CPU with `fit`, the fitting engine's; the run
    goes to `json_path` (pytest-benchmark's JSON). `quick` leaves out the default sweep and the layer;
    `deadline` skips the benchmarks left after that many seconds; `extra`: more pytest arguments."""
    files = [str(SUITE / "test_bench_kernels.py")]
    if fit and settings.device == "cpu":  # the fitting engine runs on the CPU whatever the device
        files.append(str(SUITE / "test_bench_fit.py"))
    argv = [
        python,
        "-m",
        "pytest",
        *files,
        "-p",
        "no:cacheprovider",
        "-q",
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        "--bench-device",
        settings.device,
        "--bench-dtype",
        ",".join(settings.dtypes),
        "--bench-sizes",
        ",".join(map(str, settings.sizes)),
        "--bench-peers",
        ",".join(settings.peers) or "none",
        "--bench-degrees",
        ",".join(map(str, settings.degrees)),
        "--bench-warmup",
        str(settings.warmup),
    ]
    if settings.backends:
        argv += ["--bench-backends", ",".join(settings.backends)]
    if settings.rounds:
        argv += ["--bench-rounds", str(settings.rounds)]
    if quick:
        # the layer, the sweep and the Remez fits but the highest degree's (the ids end in "-DEGREE]") out
        argv += ["-k", f"not test_default_sweep and not test_layer and (not test_remez or {QUICK_REMEZ})"]
    if deadline is not None:
        argv += ["--bench-deadline", f"{deadline:g}"]
    return argv + list(extra)


# ----------------------------------------------------------------------------------------------------
# `slaf-approx bench`: what the command does once cli has parsed it. Nothing here prints: notes for
# stderr go to `say`, the verdict text for stdout comes back in an Outcome; bad input is a ValueError.
# ----------------------------------------------------------------------------------------------------
Say = Callable[[str], None]


@dataclass
class Outcome:
    code: int  # the exit status: 0, or 1 for a failed check or run
    text: str = ""  # for stdout


_TIMING_ONLY = ("quick", "report_only", "json", "sizes", "dtype", "rounds", "warmup", "deadline",
                "pytest_args")


def validate(args) -> None:
    """Bad combinations of `slaf-approx bench` options, before any work: ValueError."""
    from . import counts as pc

    if args.trial:
        flags = (("--check", args.check), ("--counts", args.counts), ("--history", args.history),
                 ("--report-only", args.report_only), ("--json", args.json))
        clash = [f for f, v in flags if v]
        if clash:
            raise ValueError(f"--trial runs its own saved runs and checks; it does not go with {clash[0]}")
    if args.counts:
        given = [name for name in _TIMING_ONLY if getattr(args, name)]
        if given:
            flag = "pytest arguments" if given[0] == "pytest_args" else "--" + given[0].replace("_", "-")
            raise ValueError(f"{flag} is a timing option; --counts counts {pc.SIZE} {pc.DTYPE} elements per "
                             "kernel call (select with --backends, --degrees, --kernels-only)")
        if args.device != "cpu":
            raise ValueError(f"--counts counts CPU instructions under valgrind; there is no counts mode on "
                             f"device {args.device!r}")
        try:
            pc.require_tools()
        except pc.CountsError as exc:
            raise ValueError(str(exc)) from None
    elif args.save:
        raise ValueError("--save goes with --counts (a full timed run is saved anyway)")


def is_partial(args) -> bool:
    """True for a run that must not rewrite the published report: a check, a quick run or any selection."""
    if args.counts:
        return bool(args.check or args.backends or args.degrees or args.kernels_only)
    chosen = (args.dtype, args.sizes, args.backends, args.degrees, args.peers, args.rounds, args.deadline)
    return bool(args.quick or args.check or args.kernels_only or args.pytest_args
                or any(v is not None for v in chosen))


def counts_plan(args, degrees: Sequence[int] | None = None) -> list:
    """What --counts counts (ValueError for a backend or degree it cannot count); `degrees`: the kernels'
    (default counts.DEGREES)."""
    from . import counts as pc

    return pc.plan(args.backends, degrees or pc.DEGREES, fits=not args.kernels_only)


def counts(args, benches: Sequence, out: Path, say: Say) -> Outcome:
    """bench --counts: the instructions of `benches` counted under valgrind -> OUT/counts.json and
    OUT/counts.md; --check compares with the saved baseline of this machine, tools and selection."""
    from . import counts as pc

    threshold = pc.THRESHOLD if args.threshold is None else args.threshold
    storage = Path(args.storage) if args.storage else Path(".benchmarks") / "counts"
    say(f"counting {len(benches)} benchmarks under valgrind (one thread)")
    try:
        found, meta = pc.run(benches)
    except pc.CountsError as exc:
        say(" ".join(str(exc).split()))
        return Outcome(1)
    doc = pc.document(found, meta, benches)
    json_path, md_path = pc.write(doc, out)
    say(f"counts -> {json_path}, {md_path}")
    baseline = pc.baseline_path(storage, doc)
    text, code = pc.summary(doc), 0
    if args.check and baseline.is_file():
        changes = pc.compare(doc, pc.load(baseline))
        text = pc.compare_table(changes, threshold)
        worse = [c.name for c in changes if c.regressed(threshold)]
        if worse:
            say(f"{len(worse)} benchmark(s) executed more than {100 * threshold:g}% more instructions than "
                f"the baseline {baseline}: {', '.join(worse)}")
            code = 1
        else:
            say(f"no count above +{100 * threshold:g}% of the baseline {baseline}")
    elif args.check:
        say(f"no baseline for this machine, tools and selection ({baseline}): nothing to compare")
    if not args.check:
        say(f"kept for the history -> {pc.save_history(storage, doc)}")
    if args.save or not baseline.is_file():
        pc.save(doc, baseline)
        say(f"baseline saved -> {baseline}")
    return Outcome(code, text)


@dataclass
class Prepared:
    budgets: list
    settings: object | None  # a BenchSettings; None with --report-only


def prepare(args) -> Prepared:
    """The budgets and the settings of a timed run, every option checked (ValueError) before any work."""
    from . import budgets as bu
    from . import workloads
    from .settings import bench_settings

    args.budgets = args.budgets or bu.BUDGETS_FILE
    budgets = bu.load_budgets(args.budgets)
    workloads.slowdown()  # a bad test-hook value is bad input, before any work
    if args.report_only:
        return Prepared(budgets, None)
    settings = bench_settings(args.device, args.dtype, args.sizes, args.backends, args.degrees,
                              peers=args.peers, rounds=args.rounds, warmup=args.warmup, quick=args.quick)
    return Prepared(budgets, settings)


def timed(args, prep: Prepared, out: Path, partial: bool, say: Say) -> Outcome:
    """Time the suite (pytest-benchmark in a child process), save the run for this machine (or, with
    --check, compare it with the newest saved one), write the report, check the budgets; with
    --report-only, the report and budgets of saved runs."""
    import subprocess
    import sys

    from .._io import atomic_write
    from . import compare, runs

    budgets, settings = prep.budgets, prep.settings
    if args.report_only:
        return finish(args, [(p, runs.load_run(p)) for p in args.report_only], budgets, out, say=say)
    storage = storage_of(args, settings.device)
    json_path = Path(args.json) if args.json else out / "bench" / f"run-{settings.device}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = json_path.with_name(f".{json_path.name}.partial")
    log = json_path.with_name(f"pytest-{settings.device}.log")
    argv = pytest_command(settings, tmp.resolve(), quick=args.quick, python=sys.executable,
                          deadline=args.deadline, fit=not args.kernels_only, extra=args.pytest_args)
    say(f"timing (pytest log -> {log})")
    with open(log, "w") as fh:
        rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    if not tmp.is_file():
        why = "no benchmark ran (all skipped or deselected)" if rc in (0, 5) else "pytest failed"
        say(f"{why}: pytest exited with status {rc} and wrote no benchmark JSON; see {log}")
        return Outcome(rc or 1)
    run = runs.compact(runs.load_run(tmp))
    run["slaf_approx"] = runs.code_version() | {"quick": bool(args.quick), "device": settings.device}
    tmp.unlink()
    files = runs.saved_runs(storage)
    saved = [runs.load_run(p) for p in files]
    comparison, slower = None, []
    if args.check:
        found = compare.check(run, saved, compare.FLOOR if args.threshold is None else args.threshold)
        if found is None:
            say(f"no saved run under {storage} to compare with (`slaf-approx bench` saves one); checking the "
                "budgets only")
        else:
            slower, base = found.slower, found.base
            newest = files[max(i for i, r in enumerate(saved) if r is base[-1])].name
            source = (f"the saved run {newest}" if len(base) == 1 else
                      f"the median of {len(base)} saved runs of the same code (the newest {newest})")
            comparison = compare.compare_table(found.rows, found.how, source)
    else:
        run["slaf_approx"]["spread"] = compare.spread([*saved, run])
        say(f"saved -> {runs.save_run(storage, run)}")
    atomic_write(json_path, (json.dumps(run, indent=1) + "\n").encode("utf-8"))
    all_runs = [(str(json_path), run)]
    gpu = Path("reports") / "gpu" / "kernels.json"
    if settings.device == "cpu" and not partial and gpu.is_file():
        all_runs.append((str(gpu), runs.load_run(gpu)))
    outcome = finish(args, all_runs, budgets, out, comparison, slower, storage=storage, full=not partial,
                     say=say)
    if rc not in (0, 5):
        failed = [line for line in log.read_text(errors="replace").splitlines()
                  if line.startswith(("FAILED", "ERROR"))]
        say(f"pytest exited with status {rc}: {'; '.join(failed[:5]) or 'see the log'} ({log})")
        return Outcome(1, outcome.text)
    return outcome


def trial(args, prep: Prepared, out: Path, work: Path, say: Say) -> Outcome:
    """bench --trial N: false alarms, detections and budgets held (see :mod:`.trial`) -> the page
    OUT/bench/false_alarm.md, which kernels.md includes; exit 1 if a goal of the trial is not met."""
    from . import budgets as bu
    from . import trial as tr

    budgets = prep.budgets
    shipped = Path(args.budgets).resolve() == Path(bu.BUDGETS_FILE).resolve()
    extra = [] if shipped else ["--budgets", str(args.budgets)]
    say(f"trial: {tr.BASE_RUNS} saved runs, {args.trial} checks of unchanged code, {args.trial} with a "
        f"{tr.SLOWDOWN - 1:.0%} slowdown; the runs and logs -> {work}")
    started = tr.stamp()
    results, thresholds = tr.trial(args.trial, work, budgets, say, extra)
    how = "the full trial" if args.trial >= tr.FULL else f"a partial trial of {args.trial}"
    page = tr.markdown(results, started, tr.stamp(), how, thresholds)
    from .report import write_text

    path = write_text(out / "bench" / "false_alarm.md", page)
    say(f"trial -> {path}")
    s = tr.summary(results)
    met = not s["false_alarms"] and s["detected"] == s["slowed"] and s["budgets_held"] == s["budget_runs"]
    return Outcome(0 if met else 1, page)


def counts_storage_of(args) -> Path:
    """Where the counts runs are kept: beside the saved timed runs (--storage DIR: DIR/../counts)."""
    return Path(args.storage).parent / "counts" if args.storage else Path(".benchmarks") / "counts"


def storage_of(args, device: str) -> Path:
    from .runs import storage_path

    return Path(args.storage) if args.storage else storage_path(Path.cwd(), device)


def history(args, out: Path, say: Say) -> Outcome:
    """bench --history: each benchmark across the saved runs in commit order, time and instructions (the
    counts baselines saved by `bench --counts --save`), one PNG and OUT/kernels_history.md; times
    nothing."""
    from . import history as hi
    from .report import write_figures_and_text
    from .runs import load_run, saved_runs

    storage = storage_of(args, args.device)
    files = saved_runs(storage)
    counts_store = counts_storage_of(args)
    counted = hi.count_runs(counts_store)
    if not files and not counted:
        raise ValueError(f"no saved runs under {storage} nor counts under {counts_store}: `slaf-approx "
                         "bench` saves one per run, `slaf-approx bench --counts` keeps one")
    timed_runs = hi.ordered([load_run(p) for p in files])
    text, figure = hi.history_markdown(timed_runs, counted, args.history_of)
    md = "# Benchmark history\n\n" + text + "\n![history](kernels_history.png)\n"
    path = write_figures_and_text(out, md, {"kernels_history.png": figure}, name="kernels_history.md")
    say(f"history -> {path}")
    return Outcome(0, text)


def finish(args, runs_, budgets, out: Path, comparison: str | None = None, slower=(), *,
           storage: Path | None = None, full: bool = False, say: Say) -> Outcome:
    """The report and the verdict of a run (or of saved runs with --report-only)."""
    from . import budgets as bu
    from . import compare, report
    from . import history as hi
    from .runs import load_run, records, saved_runs

    recs = [r for _, run in runs_ for r in records(run)]
    results = bu.check_budgets(recs, budgets)
    hist_md, hist_fig = None, None
    if storage is not None and full:
        saved = hi.ordered([load_run(p) for p in saved_runs(storage)])
        counted = hi.count_runs(counts_storage_of(args))
        if len(saved) > 1 or len(counted) > 1:
            text, hist_fig = hi.history_markdown(saved, counted, args.history_of, level=3)
            hist_md = text + "\n![history](kernels_history.png)\n"
    shipped = Path(args.budgets).resolve() == Path(bu.BUDGETS_FILE).resolve()
    source = "slaf_approx/benchmarks/budgets.toml" if shipped else str(args.budgets)
    md, figures = report.kernel_report(runs_, results, budgets_source=source, comparison=comparison,
                                       history=hist_md)
    md = md.rstrip() + "\n\n## The regression check\n\n" + compare.rule_markdown()
    trial = Path(out) / "bench" / "false_alarm.md"  # the measured rates of `bench --trial`, when recorded
    if trial.is_file():
        md += "\n### False alarms and detection\n\n" + trial.read_text()
    if hist_fig is not None:
        figures["kernels_history.png"] = hist_fig
    if full:  # the published report is rewritten whole: no figure of an earlier layout is left behind
        for stale in Path(out).glob("kernels_*.png"):
            if stale.name not in figures:
                stale.unlink()
    path = report.write_figures_and_text(out, md, figures)
    fit_runs = [run for _, run in runs_ if any(r.get("op") is None for r in records(run))]
    if fit_runs:
        report.write_text(out / "bench" / "fit.md", report.fit_markdown(fit_runs[0], results))
    failed = [r for r in results if r.failed]
    say(f"report -> {path}")
    if args.check and (failed or slower):
        say(f"check failed: {len(slower)} benchmarks slower, {len(failed)} budgets broken")
        return Outcome(1, failure_table(failed, slower))
    parts = [bu.budget_table(results)]
    if comparison:
        parts.append(comparison)
    parts += [report.short_summary(run, results if i == len(runs_) - 1 else ()) for i, (_, run) in
              enumerate(runs_)]
    return Outcome(0, "\n".join(parts))


def failure_table(failed, slower) -> str:
    """One table: the broken budgets and the slower benchmarks."""
    from .._markdown import table
    from .budgets import measured_text

    rows = [["budget", r.budget.name, measured_text(r), r.budget.limit(),
             r.status + (f" ({r.detail})" if r.detail else "")] for r in failed]
    rows += [["slower", r.name, f"{r.ratio - 1:+.1%}",
              f"saved interval ends at {r.ci_before[1]:.4g}, now starts at {r.ci_after[0]:.4g}", "slower"]
             for r in slower]
    return table(["check", "name", "measured", "limit", "status"], rows, "llrll")
