"""Accuracy against cost: per target, the achieved error of each approximant in a dtype against its measured
forward+backward time as a ratio to the native activation's, the Pareto front, and the cheapest approximant
reaching each tolerance.

The points of a target (one group of the results table):

* the polynomial SLAF by degree: the minimax series (Chebyshev basis preferred, the SLAF layer's default;
  the rows whose floor the report measures), else per degree the Chebyshev fit of lowest float64 max
  error, timed on the default backend ("auto");
* the PAU-style rational P/Q by type: per type (m, n) with n >= 1, the fit in form "pau" with the lowest
  float64 max error, timed as the PAU formula in eager torch;
* the native activation (F.gelu for GELU, ...) at cost 1, with its own error in the dtype.

Errors come from :mod:`slaf_approx.precision` (the approximant evaluated as the kernels evaluate it, in the
dtype, against the float64 target); times from :mod:`slaf_approx.benchmarks.accuracy` (measured once, in
the same run, on this machine's CPU). Everything here is a function of the rows and those timings; the
error functions are parameters so that tests can give their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from .._markdown import table
from ..executors import one_thread
from .data import TOLERANCES, Floor, Group, is_rational, poly_minimax, target_of
from .labels import fmt, interval

#: the dtypes of the panels: the error in float32 and in bfloat16, against the same (float32) timings
COST_DTYPES = ("float32", "bfloat16")
SLAF_BASIS = "chebyshev"
KIND_STYLE = {  # marker, colour, size, legend text
    "slaf": ("o", "tab:blue", 6.0, "SLAF (Chebyshev), by degree n"),
    "pau": ("s", "tab:purple", 6.0, "PAU P/Q, by m + n"),
    "native": ("*", "black", 13.0, "native activation"),
}


@dataclass(frozen=True)
class CostPoint:
    kind: str  # "slaf", "pau" or "native"
    label: str  # "SLAF n = 8", "PAU (4, 4)", "F.gelu"
    degree: int | None  # n for an SLAF, m + n for a PAU
    cost: float  # forward+backward time over the native activation's
    error: float  # achieved max error in the dtype


# ----------------------------------------------------------------------------------------------------
# Pure selection: the front and the cheapest point per tolerance
# ----------------------------------------------------------------------------------------------------
def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, error) points that no other point dominates (no higher cost and no higher
    error, one of them lower), by increasing cost; a point with a NaN or infinite coordinate is never on
    it. Equal points do not dominate each other: both are on the front."""
    ok = [i for i, (c, e) in enumerate(points) if math.isfinite(c) and math.isfinite(e)]
    ok.sort(key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best = math.inf
    for i in ok:
        c, e = points[i]
        if e < best:
            front.append(i)
            best = e
        elif front and points[front[-1]] == (c, e):
            front.append(i)
    return front


def cheapest(points: Sequence[tuple[float, float]], tol: float) -> int | None:
    """Index of the lowest-cost point with error <= tol (the lower error among equal costs), or None."""
    hits = [i for i, (c, e) in enumerate(points) if math.isfinite(c) and e <= tol]
    return min(hits, key=lambda i: (points[i][0], points[i][1])) if hits else None


# ----------------------------------------------------------------------------------------------------
# The points of a group
# ----------------------------------------------------------------------------------------------------
def candidates(g: Group) -> tuple[dict[int, dict], dict[int, dict]]:
    """({degree: SLAF row}, {m + n: PAU row}). SLAF: the minimax series (chebyshev preferred, the rows
    the report's floor measures) where the group has one, else per degree the chebyshev row of lowest
    float64 max error; PAU: per m + n the form-pau row of lowest float64 max error."""
    mm = {d: r for d, r in poly_minimax(g).items() if d >= 1 and math.isfinite(float(r["max_error"]))}
    slaf: dict[int, dict] = {}
    pau: dict[int, dict] = {}
    for r in g.rows:
        err = r.get("max_error")
        if err is None or not math.isfinite(float(err)):
            continue
        if is_rational(r):
            if r["form"] != "pau" or not r.get("denominator"):
                continue
            pick = pau
        elif r["basis"] == SLAF_BASIS:
            pick = slaf
        else:
            continue
        d = int(r["degree"])
        if d not in pick or float(err) < float(pick[d]["max_error"]):
            pick[d] = r
    return dict(sorted((mm or slaf).items())), dict(sorted(pau.items()))


def _type(r: Mapping) -> tuple[int, int]:
    n = len(r.get("denominator") or ())
    return int(r["degree"]) - n, n


def achieved_max(row, dtype: str) -> float:
    """The row's max error evaluated in `dtype` (slaf_approx.precision)."""
    from ..precision import achieved_error

    return achieved_error(row, dtype).max_error


def native_max(g: Group, dtype: str) -> float | None:
    from ..precision import native_error

    tg = target_of(g)
    a = None if tg is None else native_error(tg, g.lo, g.hi, dtype)
    return None if a is None else a.max_error


def reuse_floors(fls: Sequence[Floor], error: Callable[[Mapping, str], float] | None = None,
                 native: Callable[[Group, str], float | None] | None = None):
    """(error, native) functions that take the achieved errors the report's floor already measured (the
    same minimax rows: degree and float64 max error agree) and compute the others."""
    error = error or achieved_max
    native = native or native_max
    by = {fl.dtype: fl for fl in fls}

    def err(r: Mapping, dt: str) -> float:
        fl = by.get(dt)
        d = int(r["degree"])
        if fl is not None and not is_rational(r) and d in fl.achieved and fl.exact.get(d) == r["max_error"]:
            return fl.achieved[d]
        return error(r, dt)

    def nat(g: Group, dt: str) -> float | None:
        return by[dt].native if dt in by else native(g, dt)

    return err, nat


def group_points(g: Group, timings, dtype: str, *,
                 error: Callable[[Mapping, str], float] | None = None,
                 native: Callable[[Group, str], float | None] | None = None) -> list[CostPoint]:
    """The group's points in `dtype`, costs from `timings` (a benchmarks.accuracy.CostTimings): empty when
    the native activation was not timed (no op, or parameters it does not take) or has no error here.
    `error(row, dtype)` and `native(group, dtype)` default to :func:`achieved_max` and :func:`native_max`."""
    error = error or achieved_max
    native = native or native_max
    if timings.ratio(("native", g.target), g.target) is None:
        return []
    nat = native(g, dtype)
    if nat is None:
        return []
    name = timings.natives.get(g.target, "native")
    pts = [CostPoint("native", name, None, 1.0, float(nat))]
    slaf, pau = candidates(g)
    for d, r in slaf.items():
        c = timings.ratio(("slaf", d), g.target)
        if c is not None:
            pts.append(CostPoint("slaf", f"SLAF n = {d}", d, c, float(error(r, dtype))))
    for d, r in pau.items():
        c = timings.ratio(("pau", d), g.target)
        if c is not None:
            m, n = _type(r)
            pts.append(CostPoint("pau", f"PAU ({m}, {n})", d, c, float(error(r, dtype))))
    return pts


def timed_degrees(gs: Sequence[Group]) -> tuple[list[int], list[int]]:
    """(SLAF degrees, PAU degrees m + n) the groups' points need timed."""
    slaf, pau = set(), set()
    for g in gs:
        s, p = candidates(g)
        slaf |= set(s)
        pau |= set(p)
    return sorted(slaf), sorted(pau)


# ----------------------------------------------------------------------------------------------------
# Words, table and figure
# ----------------------------------------------------------------------------------------------------
def _cost_text(p: CostPoint, native: str) -> str:
    return f"{p.label}: {p.cost:.2f}× {native}'s time, error {fmt(p.error)}"


def reach_table(points: Mapping[str, Sequence[CostPoint]], tolerances=TOLERANCES) -> str:
    """Per tolerance (rows) and dtype (columns): the cheapest approximant (SLAF or PAU, not the native
    activation) reaching it, with its cost and error, or 'none'; the last row gives the native's error."""
    dts = list(points)
    body = []
    for tol in tolerances:
        row = [f"{tol:g}"]
        for dt in dts:
            pts = [p for p in points[dt] if p.kind != "native"]
            native = next((p.label for p in points[dt] if p.kind == "native"), "native")
            i = cheapest([(p.cost, p.error) for p in pts], tol)
            row.append("none" if i is None else _cost_text(pts[i], native))
        body.append(row)
    natives = [next((p for p in points[dt] if p.kind == "native"), None) for dt in dts]
    body.append(["native", *[f"{p.label}: error {fmt(p.error)}" if p else "–" for p in natives]])
    return table(["max error ≤", *[f"cheapest approximant in {dt}" for dt in dts]], body,
                 "l" * (len(dts) + 1))


def front_line(points: Sequence[CostPoint], dtype: str) -> str:
    front = pareto_front([(p.cost, p.error) for p in points])
    return f"Pareto front in {dtype}, cheapest first: " + "; ".join(
        f"{points[i].label} ({points[i].cost:.2f}×, {fmt(points[i].error)})" for i in front) + "."


def timing_note(timings) -> str:
    from ..benchmarks.settings import size_label

    return (f"CPU timings (this machine): forward+backward (gradients for x and for the learnable "
            f"coefficients) of {size_label(timings.size)} {timings.dtype} elements, minimum over "
            f"{timings.rounds} interleaved rounds of {timings.repeat} calls each, {timings.threads} torch "
            f"thread{'s' if timings.threads != 1 else ''}, torch {timings.torch}; "
            f"SLAF on backend auto ({timings.backend}), PAU in eager torch. GPU: not measured.")


def cost_figure(points: Mapping[str, Sequence[CostPoint]], title: str, timings) -> Figure:
    """One panel per dtype: achieved max error against cost (both log), the Pareto front as a staircase,
    the tolerances as dotted lines; the legend under the panels."""
    from ..benchmarks.settings import size_label

    dts = list(points)
    fig = Figure(figsize=(5.2 * len(dts) + 0.6, 5.0))
    axes = fig.subplots(1, len(dts), squeeze=False)[0]
    allc = [p.cost for pts in points.values() for p in pts if math.isfinite(p.cost) and p.cost > 0]
    alle = [p.error for pts in points.values() for p in pts if math.isfinite(p.error) and p.error > 0]
    ymin = min(alle + [min(TOLERANCES)]) / 4
    ymax = max(alle + [max(TOLERANCES)]) * 3
    xmin, xmax = (min(allc) / 1.3, max(allc) * 1.8) if allc else (0.5, 2.0)  # room for the labels
    handles = {}
    for ax, dt in zip(axes, dts, strict=True):
        pts = points[dt]
        for kind, (marker, colour, size, text) in KIND_STYLE.items():
            sel = [p for p in pts if p.kind == kind]
            if not sel:
                continue
            ys = [p.error if p.error > 0 else ymin for p in sel]
            label = sel[0].label + " (native)" if kind == "native" else text
            (h,) = ax.plot([p.cost for p in sel], ys, linestyle="none", marker=marker, color=colour,
                           markersize=size, zorder=4 if kind != "native" else 5,
                           markerfacecolor=colour if kind != "pau" else "none")
            handles.setdefault(label, h)
            if kind != "native":  # degrees beside the points, alternating sides so neighbours stay legible
                for p, y in zip(sel, ys, strict=True):
                    left = p.degree % 2 == 0
                    ax.annotate(str(p.degree), (p.cost, y), textcoords="offset points",
                                xytext=(-4 if left else 4, 2), ha="right" if left else "left",
                                fontsize=6.5, color=colour)
            for p in sel:
                if p.error == 0:
                    ax.annotate("error 0", (p.cost, ymin), textcoords="offset points", xytext=(6, 2),
                                fontsize=7)
        front = pareto_front([(p.cost, p.error if p.error > 0 else ymin) for p in pts])
        if front:
            fx = [pts[i].cost for i in front] + [xmax]
            fy = [max(pts[i].error, ymin) for i in front]
            fy.append(fy[-1])
            (h,) = ax.step(fx, fy, where="post", color="0.45", linestyle=(0, (4, 2)), linewidth=1.2, zorder=3)
            handles.setdefault("Pareto front (lower error and lower cost dominate)", h)
        for tol in TOLERANCES:
            ax.axhline(tol, color="0.7", linestyle=":", linewidth=0.9, zorder=1)
            ax.text(xmax, tol, f" {tol:g}", va="center", ha="left", fontsize=7, color="0.4")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.grid(True, which="major", alpha=0.25)
        ax.set_title(f"achieved max error in {dt}", fontsize=10)
        ax.set_xlabel("forward+backward time / native activation's (CPU timings, this machine)", fontsize=8.5)
        ax.set_ylabel(f"max error in {dt} (log)", fontsize=8.5)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"{title}: accuracy against cost — CPU timings (this machine), "
                 f"{size_label(timings.size)} {timings.dtype} elements; GPU not measured", fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)),
               fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.95, top=0.88, bottom=0.19, wspace=0.25)
    return fig


def section(gs: Sequence[Group], timings, tags: Mapping[tuple, str], *,
            error: Callable[[Mapping, str], float] | None = None,
            native: Callable[[Group, str], float | None] | None = None,
            dtypes: Sequence[str] = COST_DTYPES,
            floors: Mapping[tuple, Sequence[Floor]] | None = None) -> tuple[list[str], dict[str, Figure]]:
    """(Markdown lines of the "Accuracy against cost" section, {PNG name: figure}) for timings taken in
    this run (benchmarks.accuracy.measure_costs). `floors`: per group key the report's floors, whose
    achieved errors are reused (see :func:`reuse_floors`)."""
    md = ["## Accuracy against cost", ""]
    tols = ", ".join(f"{t:g}" for t in TOLERANCES)
    md += [f"Achieved max error in {' and '.join(dtypes)} (each approximant evaluated as its kernel "
           "evaluates it, inputs and output in the dtype, against the float64 target) against the measured "
           "forward+backward time, as a ratio to the native activation's time in the same rounds. Points: "
           "the SLAF polynomial by degree n (the minimax series where fitted, Chebyshev basis preferred), "
           "the PAU-style P/(1 + |Q|) by type (m, n) (the form-pau fit of lowest float64 error), and the "
           "native activation at ratio 1. Both panels use the float32 timings. The tables give, per dtype, "
           f"the cheapest SLAF or PAU that reaches each of {tols}, and the native activation's own error.",
           "",
           timing_note(timings), ""]
    figs: dict[str, Figure] = {}
    for g in gs:
        err, nat = reuse_floors((floors or {}).get(g.key, ()), error, native)
        with one_thread():  # small tensors: a second thread only spins, and on a loaded machine 100x slower
            pts = {dt: group_points(g, timings, dt, error=err, native=nat) for dt in dtypes}
        md += [f"**{g.target} on {interval(g.lo, g.hi)}**", ""]
        if not all(pts.values()):
            md += [f"No native activation timed for {g.target} (torch has no op for it with these "
                   "parameters): no cost ratio.", ""]
            continue
        name = f"accuracy_{tags[g.key]}.png"
        figs[name] = cost_figure(pts, f"{g.target} on {interval(g.lo, g.hi)}", timings)
        md += [f"![achieved error against forward+backward cost for {g.target}]({name})", "",
               reach_table(pts), ""]
        md += [f"- {front_line(p, dt)}" for dt, p in pts.items()] + [""]
    return md, figs
