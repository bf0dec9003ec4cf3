"""The wall-clock regression check: this run against the newest saved run of the same machine, as
distributions, with a threshold set by the machine's own measured run-to-run spread.

Each benchmark carries per-round samples: for a kernel, the ratio of each round's time to the copy timed
just before it in the same round (interleaved rounds), which cancels the machine's load as it drifts; for
the fitting engine, the seconds of each round (or the ratio to a paired reference fit). As asv's
``compare`` does, a benchmark is reported slower only when the change is both *significant* and *large*:

* significant: the 99% bootstrap confidence intervals of the two medians do not overlap (this run's lower
  bound is above the saved run's upper bound). The intervals see the noise *within* a run only;
* large: the ratio of the medians exceeds 1 + threshold. The threshold covers the noise *between* runs,
  which the intervals cannot see (the machine's state, frequency, memory placement move a whole run):

  - `spread` measures it. Over the pairs of consecutive saved runs that ran the same code (same commit and
    digest of any uncommitted change; the newest MAX_PAIRS pairs), each judged (:func:`guarded`) benchmark
    gives d = log(median now / median before). The d of one kind of sample ("anchored" ratios, raw
    "seconds") are pooled over benchmarks and pairs - the benchmarks of one run share the machine's state,
    and one pair alone gives ten-odd values where a benchmark alone would give one - into
    sigma = sqrt(mean(d^2)) (the mean of d is 0 for unchanged code);
  - few pairs measure sigma loosely, so the threshold uses its one-sided SIGMA_LEVEL upper confidence bound
    sigma_up = sigma * sqrt(n / chi2_(1 - SIGMA_LEVEL)(n)), n the number of values pooled;
  - threshold = max(FLOOR, exp(Z * sigma_up) - 1). Z = 3.5 leaves each judged benchmark a one-sided
    normal tail of 2.3e-4: a quick check judges about 15, ten checks about 150, so about 0.04 false alarms
    are expected in ten. FLOOR = 10% keeps a 25% slowdown well clear; with no pair of runs of one code yet
    the threshold is DEFAULT_THRESHOLD.

A machine whose spread puts the threshold above 25% cannot resolve a 25% slowdown: the verdict line says
so (`resolves`) rather than lowering the threshold into its noise.
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
Z = 3.5
SIGMA_LEVEL = 0.95
FLOOR = 0.10
DEFAULT_THRESHOLD = 0.15
MAX_PAIRS = 20
#: the slowdown the check is meant to catch (`bench --trial` injects it)
RESOLVE = 0.25
#: the kinds of samples: ratios to the paired copy (kernels, lstsq) and raw seconds (the other fits)
KINDS = ("anchored", "seconds")


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
        "layer, the fitting engine) slower than the newest saved run only when the change is significant "
        f"and large, as asv's `compare` does: the {LEVEL:.0%} bootstrap intervals of the two medians do not "
        "overlap (the noise within a run), and the ratio of the medians exceeds 1 + threshold (the noise "
        "between runs, which the intervals cannot see). The threshold comes from the saved runs of the "
        "same code: sigma, the rms of log(median ratio) pooled over the judged benchmarks and the "
        f"consecutive pairs (the newest {MAX_PAIRS}); its one-sided {SIGMA_LEVEL:.0%} upper confidence bound "
        "(chi-square, as few pairs measure it loosely); threshold = "
        f"max({FLOOR:.0%}, exp({Z:g} × bound) - 1), {DEFAULT_THRESHOLD:.0%} before any pair is saved. "
        f"A machine whose threshold exceeds {RESOLVE:.0%} "
        f"cannot resolve a {RESOLVE:.0%} slowdown, and the check says so.\n"
    )


def _samples(b: Mapping) -> list[float] | None:
    s = (b.get("extra_info") or {}).get("samples")
    return [float(v) for v in s] if s else None


def _key(b: Mapping) -> str:
    return b.get("fullname", b["name"])


def _kind(b: Mapping) -> str:
    return (b.get("extra_info") or {}).get("sample_kind", "seconds")


#: the benchmarks of this package's own code: only these can fail the check. The peers, the native
#: activations, the copies and numpy's fit time the machine and torch, not a change of ours, and an eager
#: peer's allocations make it swing by half between runs of unchanged code.
OWN_OPS = ("slaf", "slaf_layer")
OWN_FIT_TESTS = ("test_lstsq_ours", "test_remez", "test_default_sweep")


def guarded(b: Mapping) -> bool:
    """True for a benchmark of slaf-approx's own code (a SLAF kernel or layer, or the fitting engine)."""
    if (b.get("extra_info") or {}).get("op") in OWN_OPS:
        return True
    return b.get("name", "").split("[")[0] in OWN_FIT_TESTS


def _same_code(a: Mapping, b: Mapping) -> bool:
    ca, cb = (a.get("slaf_approx") or {}), (b.get("slaf_approx") or {})
    return bool(ca.get("commit")) and all(ca.get(k) == cb.get(k) for k in ("commit", "dirty", "diff"))


def spread(runs: Sequence[Mapping], max_pairs: int = MAX_PAIRS) -> dict:
    """The run-to-run spread of `runs` (saved runs, oldest first), from the newest `max_pairs` consecutive
    pairs that ran the same code: {"by_kind": {kind: {"sigma": rms of the log median ratios of the
    :func:`guarded` benchmarks, "n": how many}}, "pairs": how many pairs, "benchmarks": how many values}.
    The peers and copies are left out: an eager peer's swings would set everyone's threshold."""
    pairs = [(a, b) for a, b in zip(runs, runs[1:], strict=False) if _same_code(a, b)][-max_pairs:]
    values: dict[str, list[float]] = {}
    for a, b in pairs:
        before = {_key(x): _samples(x) for x in a["benchmarks"]}
        for x in b["benchmarks"]:
            s, p = _samples(x), before.get(_key(x))
            if guarded(x) and s and p and np.median(p) > 0 and np.median(s) > 0:
                values.setdefault(_kind(x), []).append(math.log(np.median(s) / np.median(p)))
    by_kind = {
        k: {"sigma": math.sqrt(float(np.mean(np.square(d)))), "n": len(d)} for k, d in values.items()
    }
    return {"by_kind": by_kind, "pairs": len(pairs), "benchmarks": sum(len(d) for d in values.values())}


def sigma_upper(sigma: float, n: int, level: float = SIGMA_LEVEL) -> float:
    """The one-sided `level` upper confidence bound of a normal sigma measured as the rms of n values of
    mean 0 (n * sigma^2 / true sigma^2 is chi-square with n degrees of freedom)."""
    from scipy.stats import chi2

    if n < 1:
        raise ValueError(f"n is the number of values measured, at least 1, got {n}")
    return sigma * math.sqrt(n / chi2.ppf(1.0 - level, n))


def threshold_of(sigma: float, n: int, floor: float = FLOOR, z: float = Z) -> float:
    """The threshold for a measured spread: max(floor, exp(z * sigma_up) - 1)."""
    return max(floor, math.expm1(z * sigma_upper(sigma, n)))


def thresholds(measured: Mapping, floor: float = FLOOR) -> tuple[dict[str, float], str]:
    """Per kind of sample, from :func:`spread`'s result: (thresholds, one line saying where they come
    from)."""
    out, how = {}, []
    by_kind = measured.get("by_kind") or {}
    for kind in KINDS:
        m = by_kind.get(kind)
        if not m or not m.get("n") or not math.isfinite(m.get("sigma", math.nan)):
            out[kind] = max(floor, DEFAULT_THRESHOLD)
            how.append(f"{kind} {out[kind]:.1%} (no spread measured yet: the default)")
            continue
        out[kind] = threshold_of(m["sigma"], m["n"], floor)
        note = "" if out[kind] < RESOLVE else f"; cannot resolve a {RESOLVE:.0%} slowdown on this machine"
        how.append(
            f"{kind} {out[kind]:.1%} (run-to-run sigma {m['sigma']:.1%} from {m['n']} values of "
            f"{measured.get('pairs', 0)} pairs of runs, upper bound {sigma_upper(m['sigma'], m['n']):.1%}, "
            f"z {Z:g}, floor {floor:.0%}{note})"
        )
    return out, "; ".join(how)


@dataclass(frozen=True)
class CompareRow:
    name: str
    kind: str  # "anchored" (time / paired copy) or "seconds"
    before: float
    after: float
    ratio: float
    ci_before: tuple[float, float]
    ci_after: tuple[float, float]
    slower: bool
    faster: bool


def compare_runs(
    current: Mapping, previous: Mapping, thresh: float | Mapping[str, float]
) -> list[CompareRow]:
    """Every benchmark with samples in both runs (same fullname): slower when the intervals do not overlap
    and the ratio exceeds 1 + thresh (a number, or one per kind of sample), for the :func:`guarded` ones;
    faster in the mirror case."""
    before = {_key(b): b for b in previous.get("benchmarks", [])}
    rows = []
    for b in current.get("benchmarks", []):
        p = before.get(_key(b))
        s, sp = _samples(b), _samples(p) if p else None
        if not s or not sp or _kind(b) != _kind(p):  # ratios and seconds do not compare
            continue
        m, mp = float(np.median(s)), float(np.median(sp))
        if mp <= 0:
            continue
        ci, cip = median_ci(s), median_ci(sp)
        ratio = m / mp
        kind = _kind(b)
        t = thresh if isinstance(thresh, (int, float)) else thresh.get(kind, DEFAULT_THRESHOLD)
        rows.append(
            CompareRow(
                b["name"],
                kind,
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


def _v(v: float, kind: str) -> str:
    return f"{v:.4g}×" if kind == "anchored" else f"{v * 1e3:.4g} ms"


def compare_table(rows: Sequence[CompareRow], how: str, source: str = "", only_slower: bool = True) -> str:
    """Markdown: a one-line verdict, then the benchmarks found slower (or all, with only_slower=False)."""
    bad = [r for r in rows if r.slower]
    fast = [r for r in rows if r.faster]
    head = (
        f"{len(rows)} benchmarks compared with the saved run{f' {source}' if source else ''}: "
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
