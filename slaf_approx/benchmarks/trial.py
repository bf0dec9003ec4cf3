"""`slaf-approx bench --trial N`: how far the wall-clock check's verdicts can be trusted on this machine.

One command measures the three things issue 10 asks of the check:

1. BASE_RUNS saved `bench --quick` runs of the current code (they give the run-to-run spread the threshold
   comes from, see :mod:`.compare`);
2. N `bench --quick --check` runs of the same code: each exit 1 is a false alarm;
3. N `bench --quick --check` runs with the test hook SLAF_APPROX_BENCH_SLOWDOWN=1.25 (every SLAF op
   benchmark 25% slower): a check that exits 1 naming a SLAF op benchmark slower is a detection;

and, for every run of unchanged code (the saved ones and the checks), whether every [budget.*] held.
Each run is a child `python -m slaf_approx.cli bench` with its own JSON; the verdicts are read back from
the child's exit status and recomputed from its JSON with the same functions (which benchmarks were
slower, which budgets broke). The runs, their logs and the saved runs go to WORK (a scratch folder); the
result is a Markdown page, `false_alarm.md`, that kernels.md includes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .._markdown import table
from . import compare, runs
from .budgets import Budget, check_budgets
from .workloads import SLOWDOWN_ENV

BASE_RUNS = 5
SLOWDOWN = 1.25
#: a trial of this many checks each way is the full one, the one the published report records
FULL = 10


@dataclass
class RunResult:
    kind: str  # "saved", "unchanged" or "slowed"
    index: int
    exit: int
    slower: list[str] = field(default_factory=list)  # the benchmarks the check found slower
    broken: list[str] = field(default_factory=list)  # the budgets that did not hold
    load: float = 0.0  # the 1-minute load average when the run ended

    @property
    def slaf_flagged(self) -> list[str]:
        return [n for n in self.slower if n.startswith("test_slaf")]


def _load() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def verdicts(run: dict, saved: Sequence[dict], budgets: Sequence[Budget], floor: float = compare.FLOOR
             ) -> tuple[list[str], list[str]]:
    """(benchmarks slower than the saved runs, budgets broken) for `run`, as `bench --check` finds them."""
    broken = [r.budget.name for r in check_budgets(runs.records(run), budgets) if r.failed]
    found = compare.check(run, saved, floor)
    return [r.name for r in found.slower] if found else [], broken


def trial(n: int, work: Path, budgets: Sequence[Budget], say: Callable[[str], None],
          bench_args: Sequence[str] = ()) -> tuple[list[RunResult], str]:
    """Run the trial (module docstring) with its files under `work`: (one result per run, the thresholds
    the checks used and where they came from); `bench_args`: more `bench` options for every run. A saved
    run that fails ends the trial (ValueError)."""
    store, logs = work / "store", work / "runs"
    for old in runs.saved_runs(store):  # a fresh spread: only this trial's runs of this code
        old.unlink()
    logs.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    plan = ([("saved", i) for i in range(1, BASE_RUNS + 1)] + [("unchanged", i) for i in range(1, n + 1)]
            + [("slowed", i) for i in range(1, n + 1)])
    for kind, i in plan:
        env = dict(os.environ)
        env.pop(SLOWDOWN_ENV, None)
        if kind == "slowed":
            env[SLOWDOWN_ENV] = f"{SLOWDOWN:g}"
        json_path = logs / f"{kind}-{i}.json"
        argv = [sys.executable, "-m", "slaf_approx.cli", "bench", "--quick", "--out", str(work / "out"),
                "--storage", str(store), "--json", str(json_path), *(["--check"] if kind != "saved" else []),
                *bench_args]
        saved = [runs.load_run(p) for p in runs.saved_runs(store)]
        with open(logs / f"{kind}-{i}.log", "w") as fh:
            rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        if not json_path.is_file():
            if kind == "saved":
                raise ValueError(f"saved run {i} of the trial failed (exit {rc}): see {logs}/{kind}-{i}.log")
            results.append(RunResult(kind, i, rc, ["(no run: see the log)"], [], _load()))
            say(f"trial: {kind} {i}: exit {rc}, no run written")
            continue
        run = runs.load_run(json_path)
        slower, broken = verdicts(run, saved if kind != "saved" else [], budgets)
        results.append(RunResult(kind, i, rc, slower, broken, _load()))
        say(f"trial: {kind} {i}: exit {rc}; slower: {', '.join(slower) or 'none'}; budgets broken: "
            f"{', '.join(broken) or 'none'}; load {results[-1].load:.2f}")
    saved = [runs.load_run(p) for p in runs.saved_runs(store)]
    return results, compare.thresholds(compare.spread(saved), min(len(saved), compare.BASELINE_RUNS))[1]


def summary(results: Sequence[RunResult]) -> dict:
    """The trial's rates: false alarms, detections, runs whose budgets all held."""
    same = [r for r in results if r.kind == "unchanged"]
    slow = [r for r in results if r.kind == "slowed"]
    code = [r for r in results if r.kind in ("saved", "unchanged")]
    return {
        "checks": len(same),
        "false_alarms": sum(r.exit != 0 for r in same),
        "detected": sum(r.exit == 1 and bool(r.slaf_flagged) for r in slow),
        "slowed": len(slow),
        "budget_runs": len(code),
        "budgets_held": sum(not r.broken for r in code),
    }


def markdown(results: Sequence[RunResult], started: datetime, ended: datetime, how: str, thresholds: str = ""
             ) -> str:
    """The page kernels.md includes: when and how it was measured, the thresholds, the rates, one row per
    run."""
    s = summary(results)
    loads = [r.load for r in results]
    head = (
        f"Measured with `slaf-approx bench --trial {s['checks']}` ({how}), "
        f"{started:%Y-%m-%d %H:%M}–{ended:%H:%M} UTC, load average {min(loads):.2f}–{max(loads):.2f} "
        f"on {os.cpu_count()} cores: {BASE_RUNS} saved `bench --quick` runs of unchanged code, then "
        f"{s['checks']} `bench --quick --check` runs on the same code and {s['slowed']} with "
        f"`{SLOWDOWN_ENV}={SLOWDOWN:g}` (every SLAF op benchmark {SLOWDOWN - 1:.0%} slower)."
        + (f" Thresholds: {thresholds}." if thresholds else "")
        + "\n\n"
    )
    rates = table(
        ["measure", "result", "goal"],
        [
            ["false alarms (exit 1 on unchanged code)", f"{s['false_alarms']} of {s['checks']}", "0"],
            [f"detections of the {SLOWDOWN - 1:.0%} slowdown", f"{s['detected']} of {s['slowed']}",
             f"{s['slowed']} of {s['slowed']}"],
            ["runs of unchanged code in which every budget held",
             f"{s['budgets_held']} of {s['budget_runs']}", f"{s['budget_runs']} of {s['budget_runs']}"],
        ],
        "lrr",
    )
    rows = [
        [f"{r.kind} {r.index}", r.exit, ", ".join(f"`{n}`" for n in r.slower) or "–",
         ", ".join(r.broken) or "–", f"{r.load:.2f}"]
        for r in results
    ]
    detail = table(["run", "exit", "found slower", "budgets broken", "load"], rows, "lrllr")
    return head + rates + "\n" + detail


def stamp() -> datetime:
    return datetime.now(UTC)
