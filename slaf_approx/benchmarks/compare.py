"""The wall-clock regression check: this run against the newest saved run of the same machine, as
distributions, with a threshold set by the machine's own measured run-to-run spread.

Each benchmark carries per-round samples: for a kernel, the ratio of each round's time to the copy timed
just before it in the same round (interleaved rounds), which cancels the machine's load as it drifts; for
the fitting engine, the seconds of each round. A benchmark is reported slower, as asv reports a change,
only when both hold:

* the bootstrap confidence intervals of the two medians do not overlap (this run's lower bound is above
  the saved run's upper bound), and
* the ratio of the medians exceeds 1 + threshold, where threshold = max(floor, spread): `spread` is the
  machine's run-to-run spread, the 90th percentile over benchmarks of |median ratio - 1| between
  consecutive saved runs of unchanged code (same commit and uncommitted diff), stored with each saved run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._markdown import table

#: the bootstrap: resamples and confidence level of each median's interval
BOOTSTRAP, LEVEL = 2000, 0.99
#: the threshold when no spread has been measured yet (fewer than two saved runs of one commit)
DEFAULT_SPREAD = 0.10
FLOOR = 0.05
SPREAD_QUANTILE = 0.9
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


def spread(runs: Sequence[Mapping]) -> dict:
    """The run-to-run spread of `runs` (saved runs, oldest first): over consecutive pairs that ran the same
    code (commit, and the digest of any uncommitted change), |median ratio - 1| per :func:`guarded`
    benchmark (the ones the check judges; an eager peer's swings would set everyone's threshold);
    {"spread": its SPREAD_QUANTILE quantile over all benchmarks (None without such a pair), "by_kind": the
    same per kind of sample ("anchored" ratios to the paired copy, raw "seconds"), "pairs": how many pairs,
    "benchmarks": how many values}."""
    values: dict[str, list[float]] = {}
    pairs = 0
    for a, b in zip(runs, runs[1:], strict=False):
        ca, cb = (a.get("slaf_approx") or {}), (b.get("slaf_approx") or {})
        same = [ca.get(k) == cb.get(k) for k in ("commit", "dirty", "diff")]
        if not ca.get("commit") or not all(same):
            continue
        pairs += 1
        before = {_key(x): _samples(x) for x in a["benchmarks"]}
        for x in b["benchmarks"]:
            s, p = _samples(x), before.get(_key(x))
            if guarded(x) and s and p and np.median(p) > 0:
                values.setdefault(_kind(x), []).append(abs(float(np.median(s) / np.median(p)) - 1.0))
    every = [v for vs in values.values() for v in vs]
    q = float(np.quantile(every, SPREAD_QUANTILE)) if every else None
    by_kind = {k: float(np.quantile(vs, SPREAD_QUANTILE)) for k, vs in values.items()}
    return {"spread": q, "by_kind": by_kind, "pairs": pairs, "benchmarks": len(every)}


def threshold(previous: Mapping, floor: float = FLOOR, kind: str | None = None) -> tuple[float, str]:
    """(threshold, where it comes from) for a comparison with the saved run `previous`: the measured
    spread of benchmarks of this `kind` of sample (of all, without a kind), at least `floor`."""
    sp = (previous.get("slaf_approx") or {}).get("spread") or {}
    s = (sp.get("by_kind") or {}).get(kind) if kind else None
    s = sp.get("spread") if s is None else s
    if s is None or not math.isfinite(s):
        return max(floor, DEFAULT_SPREAD), f"no spread measured yet: default {DEFAULT_SPREAD:.0%}"
    return max(floor, s), f"measured spread {s:.1%}, floor {floor:.0%}"


def thresholds(previous: Mapping, floor: float = FLOOR) -> tuple[dict[str, float], str]:
    """Per kind of sample: (thresholds, one line saying where they come from)."""
    out, how = {}, []
    for kind in KINDS:
        out[kind], h = threshold(previous, floor, kind)
        how.append(f"{kind} {out[kind]:.1%} ({h})")
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
        t = thresh if isinstance(thresh, (int, float)) else thresh.get(kind, DEFAULT_SPREAD)
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
