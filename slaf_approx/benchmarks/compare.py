"""The wall-clock regression check: this run against the newest saved runs of the same code on the same
machine, as distributions, with a threshold set by the machine's own measured run-to-run spread.

Each benchmark carries per-round samples: for a kernel, the ratio of each round's time to the copy timed
just before it in the same round (interleaved rounds), which cancels the machine's load as it drifts; for
the fitting engine, the ratio to a paired reference job. As asv's ``compare`` does, a benchmark is reported
slower only when the change is both *significant* and *large*:

* significant: the 99% bootstrap confidence intervals of the two medians do not overlap (this run's lower
  bound above the baseline's upper bound). The intervals see the noise *within* a run only;
* large: this run's median exceeds the baseline by more than the threshold. The threshold covers the noise
  *between* runs, which the intervals cannot see (the machine's state, frequency and memory placement move
  a whole run).

The baseline (:func:`baseline`) is the newest saved run that has the benchmarks and up to BASELINE_RUNS - 1
saved runs of the same code before it; its value for a benchmark is the median of the runs' medians. One
saved run was the old baseline, and the trial of 2026-11-30 showed why that fails: the run saved last was a
fast one (10% under its neighbours), which put every later run of unchanged code "slower" and forced a
threshold so wide that half of the 25% slowdowns went unseen.

The threshold (:func:`spread`, :func:`thresholds`) is measured per *group*, the benchmarks of one test
function (the SLAF kernels, the Remez fits, ...), which share their noise: on the reference VM a kernel
ratio moves 3-4% between runs and a Remez fit 5-10%, and one pooled figure gave the kernels the fits'
threshold. Among the newest MAX_RUNS saved runs, those of one code form a cluster; each run r of a cluster
of two or more gives, for each judged (:func:`guarded`) benchmark, u = max(0, log(m_r / median of the other
runs' m)): how far the run lies *above* the others. Only the upper half counts, because a false alarm is a
run above its baseline, while this machine's outliers are fast runs (one in five, up to 10%) which the
median baseline absorbs. For normal run-to-run scatter sigma, E[u^2] = sigma^2 (1 + v_k) / 2, v_k the
variance of the median of the k others in units of sigma^2 (:func:`median_variance`), which gives sigma;
comparing a run with a baseline of k runs then has a spread sigma * sqrt(1 + v_k), and

    threshold = max(FLOOR, exp(Z * sigma * sqrt(1 + v_k)) - 1).

Z = 3 leaves each judged benchmark a one-sided normal tail of 1.3e-3: a quick check judges 7, ten checks
70, so about 0.1 false alarms are expected in ten, *if* sigma were known. Measured from 5 saved runs made
within minutes it is not: the machine's state moves on longer time scales. The second trial of 2026-11-30
(10:26, tests/data/trial_2026-11-30b.json) measured sigma 2.4% for the kernels, so Z * sigma gave 8.5%, and
two of its 10 checks of unchanged code lay +10% and +11% above the baseline. FLOOR is therefore set from
the recorded trials, not from one run's sigma: unchanged runs lay at most +11% above the 5-run baseline and
the runs with the 25% slowdown at least +18% (each run's larger kernel change at least +21%), so FLOOR =
15% splits them, and replayed from every window of 5 saved runs in both trials it gives 0 false alarms and
110 of 110 detections each (a chi-square upper bound on sigma instead lost a third to two thirds of the
detections). Changes under 15% are the instruction counts' to catch (`bench --counts --check`, 2%,
deterministic). A group with no cluster of two runs yet gets DEFAULT_THRESHOLD. A group whose threshold
exceeds RESOLVE cannot resolve a 25% slowdown on this machine, and the verdict line says so rather than
lowering the threshold into the noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._markdown import table

#: the bootstrap: resamples and confidence level of each median's interval
BOOTSTRAP, LEVEL = 2000, 0.99
#: the threshold's parts (see the module docstring)
Z = 3.0
FLOOR = 0.15
DEFAULT_THRESHOLD = 0.20
#: the saved runs of one code a check compares with, and the newest saved runs the spread is measured on
BASELINE_RUNS = 5
MAX_RUNS = 20
#: the slowdown the check is meant to catch (`bench --trial` injects it)
RESOLVE = 0.25

def median_ci(
    samples: Sequence[float], level: float = LEVEL, n: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float]:
    """A bootstrap (percentile) confidence interval of the median of `samples`, seeded (reproducible)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    meds = np.median(x[rng.integers(0, x.size, (n, x.size))], axis=1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(meds, a)), float(np.quantile(meds, 1.0 - a))


def rule_markdown() -> str:
    """The rule, for kernels.md (its numbers are this module's constants)."""
    return (
        "`slaf-approx bench --check` reports a benchmark of slaf-approx's own code (the SLAF kernels and "
        "layer, the fitting engine) slower than the saved runs only when the change is significant and "
        f"large, as asv's `compare` does: the {LEVEL:.0%} bootstrap intervals of the medians do not overlap "
        "(the noise within a run), and the median exceeds the baseline, the median of the newest "
        f"{BASELINE_RUNS} saved runs of the same code, by more than the threshold (the noise between runs, "
        "which the intervals cannot see). The threshold is measured per test function (the kernels, the "
        f"Remez fits, ...) on the newest {MAX_RUNS} saved runs: sigma from how far each run of a code lies "
        "above the median of the other runs of that code (only the upper half: a false alarm is a run above "
        "its baseline, and this machine's outliers are fast runs); threshold = "
        f"max({FLOOR:.0%}, exp({Z:g} × sigma × sqrt(1 + v)) - 1), v the variance of the baseline's median "
        f"in units of sigma², {DEFAULT_THRESHOLD:.0%} before two runs of one code are saved. A group whose "
        f"threshold exceeds {RESOLVE:.0%} cannot resolve a {RESOLVE:.0%} slowdown, and the check says so.\n"
    )


def _samples(b: Mapping) -> list[float] | None:
    s = (b.get("extra_info") or {}).get("samples")
    return [float(v) for v in s] if s else None


def _key(b: Mapping) -> str:
    return b.get("fullname", b["name"])


def _kind(b: Mapping) -> str:
    return (b.get("extra_info") or {}).get("sample_kind", "seconds")


def _anchor(b: Mapping) -> str:
    return (b.get("extra_info") or {}).get("anchor", "x.clone()")  # runs before 2026-11-30 11:00: the clone


def group(b: Mapping) -> str:
    """The benchmarks that share a threshold: those of one test function (``test_slaf[...]`` ->
    ``test_slaf``)."""
    return b.get("name", "").split("[")[0]


#: the benchmarks of this package's own code: only these can fail the check. The peers, the native
#: activations, the copies and numpy's fit time the machine and torch, not a change of ours, and an eager
#: peer's allocations make it swing by half between runs of unchanged code.
OWN_OPS = ("slaf", "slaf_layer")
OWN_FIT_TESTS = ("test_lstsq_ours", "test_remez", "test_default_sweep")


def guarded(b: Mapping) -> bool:
    """True for a benchmark of slaf-approx's own code (a SLAF kernel or layer, or the fitting engine)."""
    if (b.get("extra_info") or {}).get("op") in OWN_OPS:
        return True
    return group(b) in OWN_FIT_TESTS


def _code(run: Mapping) -> tuple | None:
    c = run.get("slaf_approx") or {}
    return (c["commit"], c.get("dirty"), c.get("diff")) if c.get("commit") else None


def _medians(run: Mapping) -> dict[str, float]:
    """{fullname: median of the samples} of the judged benchmarks with positive samples."""
    out = {}
    for b in run.get("benchmarks", []):
        s = _samples(b)
        if guarded(b) and s and np.median(s) > 0:
            out[_key(b)] = float(np.median(s))
    return out


def baseline(saved: Sequence[Mapping], run: Mapping, k: int = BASELINE_RUNS) -> list[Mapping]:
    """What `run` is compared with: the newest of `saved` (oldest first) that shares a benchmark name with
    it, and up to k - 1 saved runs of the same code before it (oldest first); [] if none shares one."""
    names = {b["name"] for b in run.get("benchmarks", [])}
    newest = next((i for i in reversed(range(len(saved)))
                   if {b["name"] for b in saved[i].get("benchmarks", [])} & names), None)
    if newest is None:
        return []
    code = _code(saved[newest])
    same = [r for r in saved[:newest] if code is not None and _code(r) == code]
    return [*same[-(k - 1):], saved[newest]] if k > 1 else [saved[newest]]


#: the variance of the median of k independent normal values, in units of sigma^2, for k = 1..7 (order
#: statistics of the normal distribution; the tests check them by simulation); beyond, pi / (2k), the
#: large-k limit, which lies above the exact values (conservative)
_MEDIAN_VARIANCE = (1.0, 0.5, 0.4487, 0.2982, 0.2868, 0.2147, 0.2104)


def median_variance(k: int) -> float:
    """v_k: the variance of the median of k normal values of variance 1."""
    if k < 1:
        raise ValueError(f"k is a number of runs, at least 1, got {k}")
    return _MEDIAN_VARIANCE[k - 1] if k <= len(_MEDIAN_VARIANCE) else math.pi / (2 * k)


def spread(runs: Sequence[Mapping], max_runs: int = MAX_RUNS) -> dict:
    """The run-to-run spread of the newest `max_runs` of `runs` (saved runs, oldest first), per group of
    :func:`guarded` benchmarks (module docstring): {"by_group": {group: {"sigma": the scatter of one run,
    "n": how many values}}, "runs": how many runs had another of the same code, "benchmarks": values}."""
    runs = list(runs)[-max_runs:]
    clusters: dict[tuple, list[Mapping]] = {}
    for r in runs:
        if _code(r) is not None:
            clusters.setdefault(_code(r), []).append(r)
    groups = {_key(b): group(b) for r in runs for b in r.get("benchmarks", [])}
    values: dict[str, list[float]] = {}
    used = 0
    for members in clusters.values():
        if len(members) < 2:
            continue
        used += len(members)
        meds = [_medians(r) for r in members]
        for i, m in enumerate(meds):
            for name, v in m.items():
                others = [o[name] for j, o in enumerate(meds) if j != i and name in o]
                if others:
                    u = max(0.0, math.log(v / float(np.median(others))))
                    # E[u^2] = sigma^2 (1 + v_k) / 2: each value, scaled, estimates sigma^2 / 2
                    values.setdefault(groups[name], []).append(u * u / (1.0 + median_variance(len(others))))
    by_group = {g: {"sigma": math.sqrt(2.0 * float(np.mean(v))), "n": len(v)} for g, v in values.items()}
    return {"by_group": by_group, "runs": used, "benchmarks": sum(len(v) for v in values.values())}


def threshold_of(sigma: float, k: int = BASELINE_RUNS, floor: float = FLOOR, z: float = Z) -> float:
    """The threshold for one run's scatter `sigma` against a baseline of k runs:
    max(floor, exp(z sigma sqrt(1 + v_k)) - 1)."""
    return max(floor, math.expm1(z * sigma * math.sqrt(1.0 + median_variance(k))))


def thresholds(measured: Mapping, k: int = BASELINE_RUNS, floor: float = FLOOR
               ) -> tuple[dict[str, float], str]:
    """Per group, from :func:`spread`'s result and a baseline of k runs: (thresholds, one line saying where
    they come from). A group not measured gets DEFAULT_THRESHOLD (see :func:`threshold_for`)."""
    out, how = {}, []
    for g, m in sorted((measured.get("by_group") or {}).items()):
        if not m.get("n") or not math.isfinite(m.get("sigma", math.nan)):
            continue
        out[g] = threshold_of(m["sigma"], k, floor)
        note = "" if out[g] < RESOLVE else f", cannot resolve a {RESOLVE:.0%} slowdown on this machine"
        how.append(f"{g} {out[g]:.1%} (sigma {m['sigma']:.1%} from {m['n']} values{note})")
    runs_, default = measured.get("runs", 0), max(floor, DEFAULT_THRESHOLD)
    head = (f"from {runs_} saved runs, z {Z:g}, floor {floor:.0%}, a baseline of {k} run{'s' * (k != 1)}: "
            if how else "")
    tail = f"any other group {default:.1%} (no spread measured yet)"
    return out, head + "; ".join([*how, tail])


def threshold_for(thresh: float | Mapping[str, float], b: Mapping, floor: float = FLOOR) -> float:
    """The threshold that applies to benchmark `b`: a number, or its group's, DEFAULT_THRESHOLD if none."""
    if isinstance(thresh, (int, float)):
        return float(thresh)
    return thresh.get(group(b), max(floor, DEFAULT_THRESHOLD))


@dataclass(frozen=True)
class CompareRow:
    name: str
    kind: str  # "anchored" (time / paired copy or reference job) or "seconds"
    before: float
    after: float
    ratio: float
    ci_before: tuple[float, float]
    ci_after: tuple[float, float]
    slower: bool
    faster: bool


def compare_runs(
    current: Mapping, previous: Mapping | Sequence[Mapping], thresh: float | Mapping[str, float]
) -> list[CompareRow]:
    """Every benchmark of `current` with samples in the baseline `previous` (one run, or several: the
    median of their medians, the interval of their pooled samples; same fullname and kind of sample):
    slower when the intervals do not overlap and the ratio exceeds 1 + its threshold (a number, or one per
    :func:`group`), for the :func:`guarded` ones; faster in the mirror case."""
    base = [previous] if isinstance(previous, Mapping) else list(previous)
    before: dict[str, list[Mapping]] = {}
    for r in base:
        for b in r.get("benchmarks", []):
            before.setdefault(_key(b), []).append(b)
    rows = []
    for b in current.get("benchmarks", []):
        s = _samples(b)
        ps = [(p, _samples(p)) for p in before.get(_key(b), [])]
        # ratios and seconds do not compare, nor ratios to different anchors
        ps = [sp for p, sp in ps if sp and _kind(p) == _kind(b) and _anchor(p) == _anchor(b)]
        if not s or not ps:
            continue
        m, mp = float(np.median(s)), float(np.median([np.median(sp) for sp in ps]))
        if mp <= 0:
            continue
        ci, cip = median_ci(s), median_ci([v for sp in ps for v in sp])
        ratio = m / mp
        t = threshold_for(thresh, b)
        rows.append(
            CompareRow(
                b["name"],
                _kind(b),
                mp,
                m,
                ratio,
                cip,
                ci,
                guarded(b) and ci[0] > cip[1] and ratio > 1.0 + t,
                ci[1] < cip[0] and ratio < 1.0 / (1.0 + t),
            )
        )
    return rows


@dataclass(frozen=True)
class Check:
    """What `bench --check` found: one row per compared benchmark, where the thresholds came from, and the
    saved runs compared with (oldest first)."""

    rows: list[CompareRow]
    how: str
    base: list[Mapping]

    @property
    def slower(self) -> list[CompareRow]:
        return [r for r in self.rows if r.slower]


def check(run: Mapping, saved: Sequence[Mapping], floor: float = FLOOR) -> Check | None:
    """`run` against its :func:`baseline` among `saved`, each group at its threshold from the saved runs'
    :func:`spread`; None when no saved run has its benchmarks."""
    base = baseline(saved, run)
    if not base:
        return None
    thresh, how = thresholds(spread(saved), len(base), floor)
    return Check(compare_runs(run, base, thresh), how, base)


def _v(v: float, kind: str) -> str:
    return f"{v:.4g}×" if kind == "anchored" else f"{v * 1e3:.4g} ms"


def compare_table(rows: Sequence[CompareRow], how: str, source: str = "", only_slower: bool = True) -> str:
    """Markdown: a one-line verdict, then the benchmarks found slower (or all, with only_slower=False)."""
    bad = [r for r in rows if r.slower]
    fast = [r for r in rows if r.faster]
    head = (
        f"{len(rows)} benchmarks compared with {source or 'the saved runs'}: "
        f"{len(bad)} slower, {len(fast)} faster (thresholds: {how}; {LEVEL:.0%} bootstrap "
        "intervals of the medians must not overlap)."
    )
    show = bad if only_slower else rows
    if not show:
        return head + "\n"
    body = [
        [
            r.name,
            _v(r.before, r.kind),
            f"{_v(r.ci_before[0], r.kind)} – {_v(r.ci_before[1], r.kind)}",
            _v(r.after, r.kind),
            f"{_v(r.ci_after[0], r.kind)} – {_v(r.ci_after[1], r.kind)}",
            f"{r.ratio - 1:+.1%}",
            "**slower**" if r.slower else "faster" if r.faster else "same",
        ]
        for r in sorted(show, key=lambda r: -r.ratio)
    ]
    return (
        head
        + "\n\n"
        + table(
            ["benchmark", "saved median", "interval", "now", "interval", "change", "verdict"], body, "lrrrrrl"
        )
    )
