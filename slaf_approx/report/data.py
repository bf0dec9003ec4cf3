"""The report's view of a results table: groups, series, theory, and the facts the summary and plots use.

Rows (dicts from memory, or rows read back from CSV / JSON Lines: ``normalise_row`` restores their types) are
grouped per (target, interval, target parameters). Within a group a *series* is one (method, basis,
variable, weight); where a series has several rows for the same degree, the last one wins. Rational rows (a
``form``) are series of their own, method "rational (pau)" etc., at their polynomial-equivalent degree m + n.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import theory
from ..results import normalise_row
from .labels import SeriesKey, method_key, order

#: degrees shown in the tables (those present), plus the largest degree present
TABLE_DEGREES = (1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64)
#: a gradient fit whose loss exceeds the least-squares optimum by more than this fraction has stalled
STALL_GAP = 0.1
#: errors below this are at the float64 rounding floor and say nothing about convergence rates
ROUNDOFF = 1e-12
#: the max errors the summary asks each method to reach
TOLERANCES = (1e-2, 1e-3, 1e-4)
#: two bases give "the same numbers" when every max and rms error agrees to this relative tolerance, or
#: within ROUNDOFF (the resolution of the error measurement, ~1e-12 of the target's scale: near that floor
#: the same function written in another basis differs by a few 1e-14 from the rounding of its coefficients)
SAME_RTOL = 1e-9
#: a series diverges when, past its smallest max error, the error grows by more than this factor ...
DIVERGE_FACTOR = 10.0
#: ... to above this level (growth below it is rounding, amplified in an ill-conditioned basis)
DIVERGE_FLOOR = 1e-9


def table_degrees(degrees: Iterable[int]) -> list[int]:
    """The degrees a table shows: those of TABLE_DEGREES present in `degrees`, plus the largest one."""
    have = sorted(set(int(d) for d in degrees))
    if not have:
        return []
    return sorted({d for d in TABLE_DEGREES if d in have} | {have[-1]})


@dataclass
class Group:
    """The rows of one target on one interval, with one set of target parameters."""

    target: str
    lo: float
    hi: float
    params: dict
    rows: list[dict] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return (self.target, self.lo, self.hi, params_key(self.params))

    @property
    def degrees(self) -> list[int]:
        return sorted({r["degree"] for r in self.rows})


def params_key(params: Mapping) -> str:
    return json.dumps(dict(params), sort_keys=True)


def groups(rows: Iterable) -> list[Group]:
    """Rows (normalised) split into groups per (target, interval, params), in order of first appearance."""
    out: dict[tuple, Group] = {}
    for row in rows:
        r = normalise_row(row)
        g = Group(r["target"], r["lo"], r["hi"], dict(r.get("params") or {}))
        out.setdefault(g.key, g).rows.append(r)
    return list(out.values())


def find_group(rows, target: str, interval=None, params: Mapping | None = None) -> Group:
    """The group of `target` (on `interval`, with `params` when given; else the first one found).

    `rows` may also be a :class:`Group` already, returned as it is.
    """
    if isinstance(rows, Group):
        return rows
    found = [g for g in groups(rows) if g.target == target
             and (interval is None or (g.lo, g.hi) == (float(interval[0]), float(interval[1])))
             and (params is None or params_key(g.params) == params_key(params))]
    if not found:
        where = "" if interval is None else f" on [{interval[0]}, {interval[1]}]"
        raise ValueError(f"no rows for target {target!r}{where}")
    return found[0]


def series(group: Group, method: str | None = None) -> dict[SeriesKey, dict[int, dict]]:
    """The group's series (method, basis, variable, weight) -> {degree: row}, in a fixed order."""
    out: dict[SeriesKey, dict[int, dict]] = {}
    for r in group.rows:
        if method is None or r["method"] == method:
            out.setdefault((method_key(r), r["basis"], r["variable"], r["weight"]), {})[r["degree"]] = r
    return {k: dict(sorted(out[k].items())) for k in sorted(out, key=order)}


def is_rational(r: Mapping) -> bool:
    return bool(r.get("form"))


# --------------------------------------------------------------------------------------------
# Targets and theory
# --------------------------------------------------------------------------------------------
def target_of(group: Group):
    """The catalogue Target of a group, or None when the catalogue does not have it."""
    from ..problem import resolve_target

    try:
        return resolve_target(group.target, group.params)
    except (ValueError, TypeError):  # not in this catalogue, or params it does not take
        return None


def estimated_fields(tg) -> frozenset:
    """The target's fields whose values were estimated rather than declared (none when it does not say)."""
    return frozenset(getattr(tg, "estimated", None) or ())


def reference(group: Group) -> tuple[SeriesKey, dict[int, dict]] | None:
    """The series that best stands for E_n: minimax, else lstsq, chebyshev basis preferred."""
    ss = series(group)
    for method in ("minimax", "lstsq", "gradient"):
        cands = [k for k in ss if k[0] == method and k[3] == "uniform"]
        if cands:
            key = ([k for k in cands if k[1] == "chebyshev"] or cands)[0]
            return key, ss[key]
    return next(iter(ss.items()), None)


def anchor(group: Group) -> tuple[float, float] | None:
    """(degree, max error) of the reference series at its median degree above the rounding floor."""
    ref = reference(group)
    if not ref:
        return None
    pts = [(d, r["max_error"]) for d, r in ref[1].items()
           if d >= 1 and math.isfinite(r["max_error"]) and r["max_error"] > ROUNDOFF]
    return pts[len(pts) // 2] if pts else None


def theory_curves(group: Group, degrees) -> dict[str, np.ndarray]:
    tg = target_of(group)
    if tg is None:
        return {}
    return theory.theory_curves(tg, group.lo, group.hi, np.asarray(degrees, dtype=float), anchor(group))


def bound_columns(group: Group, degrees) -> dict[str, np.ndarray]:
    """Theory curves that are bounds or asymptotes (not the anchored rate line)."""
    return {k: v for k, v in theory_curves(group, degrees).items() if not k.startswith("ρ")}


def poly_minimax(g: Group) -> dict[int, dict]:
    """The group's polynomial minimax series (chebyshev basis preferred), {} if none."""
    cands = [(k, s) for k, s in series(g, "minimax").items() if k[3] == "uniform"]
    return ([s for k, s in cands if k[1] == "chebyshev"] or [s for _, s in cands] or [{}])[0]


def rel_gap(r: Mapping) -> float:
    e, h = r["max_error"], r["levelled_error"]
    if not (math.isfinite(e) and math.isfinite(h)) or e <= 0:
        return math.nan
    return (e - abs(h)) / e


# --------------------------------------------------------------------------------------------
# Facts for the summary and the figures
# --------------------------------------------------------------------------------------------
def lowest_degree(s: Mapping[int, Mapping], tol: float) -> int | None:
    """The lowest degree of a series whose max error is at most `tol`; None if no degree reaches it."""
    return next((d for d, r in sorted(s.items()) if r["max_error"] <= tol), None)


def reach(group: Group, tol: float) -> dict[str, tuple[int, SeriesKey] | None]:
    """Per method (key, e.g. 'rational (pau)'): the lowest degree over its uniform-weight series reaching a
    max error of `tol`, with the series that reaches it (bases in report order break ties); None if none."""
    out: dict[str, tuple[int, SeriesKey] | None] = {}
    for key, s in series(group).items():
        if key[3] != "uniform":
            continue
        d = lowest_degree(s, tol)
        best = out.get(key[0])
        if d is not None and (best is None or d < best[0]):
            out[key[0]] = (d, key)
        else:
            out.setdefault(key[0], None)
    return out


def same_numbers(a: Mapping[int, Mapping], b: Mapping[int, Mapping], rtol: float = SAME_RTOL) -> bool:
    """Whether two series have the same degrees and max and rms errors agreeing at each to `rtol` relative
    (or to ROUNDOFF absolute)."""
    if a.keys() != b.keys():
        return False
    for d in a:
        for k in ("max_error", "rms_error"):
            x, y = a[d][k], b[d][k]
            if not (x == y or (math.isfinite(x) and math.isfinite(y)
                               and abs(x - y) <= rtol * max(abs(x), abs(y)) + ROUNDOFF)):
                return False
    return True


def merge_same(ss: Mapping[SeriesKey, Mapping]) -> list[list[SeriesKey]]:
    """Series of one method and weight that give the same numbers, in bundles (first = the one drawn)."""
    bundles: list[list[SeriesKey]] = []
    for key in ss:
        for b in bundles:
            k0 = b[0]
            if (k0[0], k0[3]) == (key[0], key[3]) and same_numbers(ss[k0], ss[key]):
                b.append(key)
                break
        else:
            bundles.append([key])
    return bundles


def diverges(s: Mapping[int, Mapping]) -> tuple[int, float, int, float] | None:
    """(degree, error) of a series' smallest max error and of its largest max error at a higher degree, when
    the error grows past the minimum by more than DIVERGE_FACTOR (or to infinity/NaN); else None."""
    pts = [(d, r["max_error"]) for d, r in sorted(s.items())]
    finite = [(d, e) for d, e in pts if math.isfinite(e)]
    if not finite:
        return None
    dmin, emin = min(finite, key=lambda t: t[1])
    later = [(d, e if not math.isnan(e) else math.inf) for d, e in pts if d > dmin]
    if not later:
        return None
    dmax, emax = max(later, key=lambda t: t[1])
    if emax > DIVERGE_FACTOR * emin and emax > DIVERGE_FLOOR:
        return dmin, emin, dmax, emax
    return None


def kernel_cost(bench: Sequence[Mapping] | None, degree: int) -> str:
    """The SLAF kernel's cost at `degree` from benchmark records (``benchmarks.records``): the fastest
    backend's forward time per element at the largest size measured, at the smallest measured degree ≥
    `degree`; 'not measured' without records or without such a degree."""
    if not bench:
        return "not measured"
    slaf = [r for r in bench if r.get("op") == "slaf" and r.get("mode") == "forward" and r.get("median")
            and r.get("size") and isinstance(r.get("degree"), int) and r["degree"] >= degree]
    if not slaf:
        return "not measured"
    d = min(r["degree"] for r in slaf)
    at = [r for r in slaf if r["degree"] == d]
    size = max(r["size"] for r in at)
    best = min((r for r in at if r["size"] == size), key=lambda r: r["median"] / r["size"])
    where = "" if d == degree else f" (measured at n = {d})"
    return (f"{best['median'] / best['size'] * 1e9:.3g} ns/element, {best['backend']} forward, "
            f"{best.get('dtype', '')} {best.get('device', '')}{where}").replace("  ", " ")


# --------------------------------------------------------------------------------------------
# The floor in a dtype: the polynomial minimax series evaluated as the kernels evaluate it
# --------------------------------------------------------------------------------------------
#: the dtypes whose achieved errors the report draws and summarises
REPORT_DTYPES = ("float32", "bfloat16", "float16")
#: a higher degree "gains nothing" in a dtype once the achieved error is within this factor of the best
#: achieved error of that dtype (rounding, not the approximation, then sets the error)
FLOOR_FACTOR = 1.5


@dataclass
class Floor:
    """The achieved max error in `dtype` by degree of a group's polynomial minimax series, and the native
    activation's error in the same dtype (None: torch has no op for the target)."""

    dtype: str
    achieved: dict[int, float]
    native: float | None
    exact: dict[int, float]  # the same fits' float64 max errors

    @property
    def best(self) -> float:
        return min(self.achieved.values())

    def floor_degree(self) -> int | None:
        """The lowest degree whose achieved error is within FLOOR_FACTOR of the best: beyond it a higher
        degree gains nothing in this dtype. None while the exact error still sets the achieved one at the
        highest degree (achieved < FLOOR_FACTOR times exact there): the series has not reached the floor."""
        top = max(self.achieved)
        if self.achieved[top] < FLOOR_FACTOR * self.exact[top]:
            return None
        return min(d for d, e in self.achieved.items() if e <= FLOOR_FACTOR * self.best)

    def native_degree(self) -> int | None:
        """The lowest degree at least as accurate as the native activation in this dtype (None: none)."""
        if self.native is None:
            return None
        return next((d for d, e in sorted(self.achieved.items()) if e <= self.native), None)


def floors(group: Group, dtypes: Sequence[str] = REPORT_DTYPES) -> list[Floor]:
    """Per dtype the :class:`Floor` of the group's polynomial minimax series (chebyshev preferred); [] when
    the group has no such series or its target is not in the catalogue. Measured here, from the rows'
    coefficients (slaf_approx.precision), not read from the table: one fit serves every dtype."""
    from ..precision import achieved_error, native_error

    s = {d: r for d, r in poly_minimax(group).items() if d >= 1 and math.isfinite(r["max_error"])}
    tg = target_of(group)
    if not s or tg is None:
        return []
    exact = {d: r["max_error"] for d, r in s.items()}
    return [Floor(dt, {d: achieved_error(r, dt, target=tg).max_error for d, r in s.items()},
                  getattr(native_error(tg, group.lo, group.hi, dt), "max_error", None), exact)
            for dt in dtypes]
