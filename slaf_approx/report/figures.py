"""The report's figures: error against degree, and the fits overlaid on the target.

Figures are :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, never through pyplot, so
nothing is displayed and nothing stays registered after a figure is saved. Rules every figure keeps:

- series that give the same numbers (:data:`~slaf_approx.report.data.SAME_RTOL`) are drawn once, labelled
  "method/basis = basis = ...", and a note under the figure says so;
- a diverging series (:func:`~slaf_approx.report.data.diverges`) does not set the y-axis: its points above
  the axis are drawn on the top edge as open triangles, and its label gives its largest error;
- a panel has at most :data:`MAX_LEGEND` legend entries (series are spread over more panels if needed);
- theory lines are drawn above the data (z-order), in black and grey, with line styles no series uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..problem import approximant
from .data import (
    ROUNDOFF,
    SAME_RTOL,
    Floor,
    Group,
    diverges,
    find_group,
    merge_same,
    same_numbers,
    series,
    target_of,
    theory_curves,
)
from .labels import base_method, fmt, interval, method_label, series_label
from .tables import bundle_label

METHOD_COLOURS = {"lstsq": "tab:blue", "minimax": "tab:red", "gradient": "tab:green",
                  "rational": "tab:purple", "rational-minimax": "tab:orange"}
#: in the overlay's error panel, a fit whose errors are under this fraction of the largest looks flat
FLAT = 0.02
#: the overlay's line style per method, where it differs from solid (gradient fits often lie on lstsq's)
OVERLAY_STYLES = {"gradient": (0, (4, 2))}
METHOD_Z = {"lstsq": 3, "minimax": 4, "gradient": 2, "rational": 3, "rational-minimax": 4}
#: which methods share a panel of the error figure (others get one each)
FAMILIES = (("least squares and minimax", ("lstsq", "minimax")), ("gradient descent", ("gradient",)),
            ("rational P/Q (at m + n)", ("rational", "rational-minimax")))
BASIS_STYLES = {  # marker, linestyle, marker size
    "chebyshev": ("o", "-", 5.5),
    "legendre": ("x", "-.", 6.0),
    "power": ("^", ":", 5.0),
    "hermite": ("d", (0, (3, 1, 1, 1, 1, 1)), 5.0),
}
#: theory lines: black/grey, dash patterns no series uses, short enough to show twice in a legend sample
THEORY_STYLES = [("black", (0, (4, 2))), ("0.35", (0, (5, 1.5, 1, 1.5))), ("black", (0, (1, 1.2)))]
THEORY_WIDTH = 1.7
#: the achieved-error lines, one colour per dtype (data.REPORT_DTYPES order)
DTYPE_COLOURS = ("tab:purple", "tab:brown", "tab:olive", "tab:cyan")
#: legend samples, in font sizes: long enough to show two periods of every dash pattern used
LEGEND_HANDLE = 4.5
LEGEND_FONT = 7.5
THEORY_Z = 10
MAX_LEGEND = 7
DPI = 100


def _positive(xs, ys):
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    return x[ok], y[ok]


def title(group: Group) -> str:
    """'<catalogue title> (params that differ from the catalogue defaults) on [lo, hi]'."""
    tg = target_of(group)
    name = getattr(tg, "title", None) or group.target
    defaults = dict(getattr(target_of(Group(group.target, 0.0, 1.0, {})), "params", {}) or {})
    changed = {k: v for k, v in group.params.items() if defaults.get(k) != v}
    extra = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in changed.items())
    return f"{name}{f' ({extra})' if extra else ''} on {interval(group.lo, group.hi)}"


def _style(key) -> dict:
    m, b, _, _ = key
    marker, ls, ms = BASIS_STYLES.get(b, ("o", "-", 5.0))
    return dict(color=METHOD_COLOURS.get(base_method(m)), zorder=METHOD_Z.get(base_method(m), 2),
                marker=marker,
                linestyle=ls, markersize=ms, linewidth=1.3, markerfacecolor="none" if b == "power" else None,
                alpha=0.9)


def panels(bundles: Sequence[Sequence], n_theory: int) -> list[tuple[str, list]]:
    """(panel title, bundles) per panel: methods of one family together, at most MAX_LEGEND legend entries
    (the theory lines count) per panel."""
    by_family: dict[str, list] = {}
    names = {m: name for name, ms in FAMILIES for m in ms}
    for b in bundles:
        m = base_method(b[0][0])
        by_family.setdefault(names.get(m, m), []).append(b)
    room = max(1, MAX_LEGEND - n_theory)
    out = []
    for name, bs in by_family.items():
        chunks = [bs[i:i + room] for i in range(0, len(bs), room)]
        out += [(name if len(chunks) == 1 else f"{name} ({i + 1}/{len(chunks)})", c)
                for i, c in enumerate(chunks)]
    return out


def _floor_column(cols) -> int | None:
    """The column holding the polynomial minimax series (where the achieved errors per dtype are drawn)."""
    return next((i for i, (_, bs) in enumerate(cols) if any(b[0][0] == "minimax" for b in bs)), None)


def _draw_floors(ax, fls: Sequence[Floor], handles: list, labels: list) -> None:
    """Per dtype: the minimax series' achieved max error (dashed) and the native op's error (dotted)."""
    for fl, colour in zip(fls, DTYPE_COLOURS, strict=False):
        x, y = _positive(list(fl.achieved), list(fl.achieved.values()))
        (h,) = ax.plot(x, y, color=colour, linestyle=(0, (5, 2)), linewidth=1.4, marker=".", markersize=4,
                       zorder=THEORY_Z + 1)
        label = f"minimax/chebyshev in {fl.dtype} (- -)"
        if fl.native is not None and fl.native > 0:
            ax.axhline(fl.native, color=colour, linestyle=(0, (1, 1.5)), linewidth=1.2, zorder=THEORY_Z + 1)
            label += f"; native op in {fl.dtype} (···)"
        elif fl.native == 0:
            label += f"; native op exact in {fl.dtype}"
        handles.append(h)
        labels.append(label)


def error_figure(rows, target: str, interval_=None, *, params: Mapping | None = None,
                 floors: Sequence[Floor] = ()) -> Figure:
    """Max error (top row, with theory curves) and rms error (bottom row) against degree, log scale; one
    column per family of methods, each with its own legend under it (never over the data). `floors`
    (:func:`~.data.floors`): the minimax series' achieved errors per dtype, drawn dashed in its column with
    the native activation's error in that dtype dotted."""
    g = find_group(rows, target, interval_, params)
    ss = series(g)
    bundles = merge_same(ss)
    degrees = np.array([d for d in g.degrees if d >= 1] or g.degrees, dtype=float)
    curves = theory_curves(g, degrees)
    cols = panels(bundles, len(curves) + len(floors)) or [("", [])]
    fcol = _floor_column(cols) if floors else None
    fvals = [v for fl in floors for v in [*fl.achieved.values(), fl.native or 0.0]]
    div = {b[0]: diverges(ss[b[0]]) for b in bundles}
    fig = Figure(figsize=(1.2 + 4.3 * len(cols), 9.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, len(cols), sharex=True, squeeze=False)
    clipped = False
    legends: dict[int, tuple[list, list]] = {}
    for what, row in (("max_error", 0), ("rms_error", 1)):
        for col, (_, bs) in enumerate(cols):
            ax = axes[row, col]
            lim = _limits(ss, [b for b in bs if div[b[0]] is None], what,
                          ([c[:1] for c in curves.values()] if row == 0 else [])
                          + ([fvals] if row == 0 and col == fcol else []))
            handles, labels = [], []
            for b in bs:
                s = ss[b[0]]
                x, y = _positive(list(s), [r[what] for r in s.values()])
                label = bundle_label(b)
                if div[b[0]] is not None and lim is not None and (y > lim[1]).any():
                    over = y > lim[1]
                    style = _style(b[0])
                    (h,) = ax.plot(x, np.minimum(y, lim[1]), **style)
                    ax.plot(x[over], np.full(over.sum(), lim[1]), linestyle="none", marker="^", markersize=9,
                            color=style["color"], markerfacecolor="none", clip_on=False, zorder=5)
                    label += f" (diverges; clipped: up to {fmt(float(y.max()))})"
                    clipped = True
                else:
                    (h,) = ax.plot(x, y, **_style(b[0]))
                    label += " (diverges)" if div[b[0]] is not None else ""
                handles.append(h)
                labels.append(label)
            if row == 0:
                for (name, curve), (colour, ls) in zip(curves.items(), THEORY_STYLES, strict=False):
                    x, y = _positive(degrees, curve)
                    (h,) = ax.plot(x, y, color=colour, linestyle=ls, linewidth=THEORY_WIDTH, zorder=THEORY_Z)
                    handles.append(h)
                    labels.append(f"theory: {name}")
                if col == fcol:
                    _draw_floors(ax, floors, handles, labels)
            if lim is not None:
                ax.set_ylim(*lim)
            rational = any(base_method(k[0]) != k[0] for k in ss)
            _axes(ax, what, degrees, row == 1, rational, log=lim is not None)
            if row == 0:
                ax.set_title(cols[col][0], fontsize=10)
                legends[col] = (handles, labels)
    for col, (handles, labels) in legends.items():  # the top row's lines, named under the column
        axes[1, col].legend(handles, labels, fontsize=LEGEND_FONT, loc="upper center",
                            bbox_to_anchor=(0.5, -0.16), frameon=False, handlelength=LEGEND_HANDLE)
    merged = [b for b in bundles if len(b) > 1]
    notes = []
    if merged:
        notes.append("Series joined by '=' give the same max and rms errors (to "
                     f"{SAME_RTOL:g} relative, or {ROUNDOFF:g} absolute) and are drawn once.")
    if clipped:
        notes.append("▵ on the top edge: a diverging series' errors above the axis (clipped).")
    if notes:
        fig.supxlabel("   ".join(notes), fontsize=8, color="0.25")
    fig.suptitle(f"{title(g)}: error against degree", fontsize=11)
    return fig


def _limits(ss, bundles, what: str, extra) -> tuple[float, float] | None:
    """A log y-range holding the (non-diverging) series' values and the `extra` values."""
    kept = [v for b in bundles for v in _positive(list(ss[b[0]]), [r[what] for r in ss[b[0]].values()])[1]]
    kept += [v for c in extra for v in np.asarray(c, dtype=float) if math.isfinite(v) and v > 0]
    return (min(kept) / 4, max(kept) * 3) if kept else None


def _axes(ax, what: str, degrees, bottom: bool, rational: bool, log: bool = True) -> None:
    ax.set_yscale("log" if log else "linear")  # a log axis with nothing positive on it cannot be drawn
    if bottom:
        ax.set_xlabel("degree n (rational P/Q: m + n)" if rational else "degree n")
    ax.set_ylabel({"max_error": "max |f − p|", "rms_error": "rms error"}[what])
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    if len(degrees) and degrees.max() <= 30:
        ax.set_xticks(np.arange(0, degrees.max() + 1, 2 if degrees.max() > 10 else 1))


def pick_overlay(g: Group, degree: int) -> tuple[int, dict[str, dict]]:
    """The available degree closest to `degree` and, per method, its row (chebyshev basis preferred)."""
    from .labels import BASIS_ORDER, order

    ds = g.degrees
    d = min(ds, key=lambda k: (abs(k - degree), k))
    rank = {b: i for i, b in enumerate(BASIS_ORDER)}
    chosen: dict[str, dict] = {}
    for key, s in series(g).items():
        m, b, v, w = key
        if d not in s or w != "uniform" or not all(math.isfinite(c) for c in s[d]["coefficients"]):
            continue
        best = chosen.get(m)
        if best is None or (rank.get(b, 9), v != "mapped") < (rank.get(best["basis"], 9),
                                                              best["variable"] != "mapped"):
            chosen[m] = s[d]
    return d, dict(sorted(chosen.items(), key=lambda kv: order((kv[0], "", "", ""))))


def _real_poles(p, a: float, b: float) -> list[float]:
    """The real poles of a rational approximant in [a, b] (none for a polynomial)."""
    poles = getattr(p, "poles", None)
    if poles is None:
        return []
    z = np.asarray(poles())
    tol = 1e-9 * max(1.0, b - a)
    return sorted(float(v.real) for v in z if abs(v.imag) <= tol and a <= v.real <= b)


def overlay_figure(rows, target: str, degree: int = 8, interval_=None, *,
                   params: Mapping | None = None) -> Figure:
    """The target and each method's fit at the degree closest to `degree` (top; 10% beyond the interval on
    each side, shaded), and the signed error f − p on [lo, hi] (bottom)."""
    g = find_group(rows, target, interval_, params)
    tg = target_of(g)
    if tg is None:
        raise ValueError(f"target {target!r} is not in the catalogue: cannot evaluate it")
    d, chosen = pick_overlay(g, degree)
    lo, hi = g.lo, g.hi
    w = hi - lo
    kinks = [k for k in getattr(tg, "kinks", ()) if lo - 0.1 * w < k < hi + 0.1 * w]
    x = np.unique(np.concatenate([np.linspace(lo - 0.1 * w, hi + 0.1 * w, 1201), kinks, [lo, hi]]))
    inside = (x >= lo) & (x <= hi)
    with np.errstate(all="ignore"):
        f = np.asarray(tg(x), dtype=float)
    fig = Figure(figsize=(9, 6.5), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for ax in (top, bottom):
        ax.axvspan(lo - 0.1 * w, lo, color="0.9", zorder=0)
        ax.axvspan(hi, hi + 0.1 * w, color="0.9", zorder=0)
        ax.grid(True, alpha=0.3)
    top.plot(x, f, color="black", linewidth=2.4, label=getattr(tg, "title", target), zorder=2)
    drawn: list[list[str]] = []  # methods whose fits give the same numbers are drawn once
    for m, r in chosen.items():
        same = next((b for b in drawn if same_numbers({d: chosen[b[0]]}, {d: r})), None)
        if same is not None:
            same.append(m)
        else:
            drawn.append([m])
    peaks: dict[str, float] = {}  # per drawn fit, its largest |f - p| on [lo, hi]
    for ms in drawn:
        m, r = ms[0], chosen[ms[0]]
        p = approximant(r)
        with np.errstate(all="ignore"):
            y = np.asarray(p(x), dtype=float)
        label = " = ".join(series_label((k, chosen[k]["basis"], chosen[k]["variable"], "uniform"))
                           for k in ms)
        label += f": max err {fmt(r['max_error'])}"
        colour = METHOD_COLOURS.get(base_method(m))
        z = METHOD_Z.get(base_method(m), 2) + 1
        ls = OVERLAY_STYLES.get(base_method(m), "-")
        poles = _real_poles(p, lo - 0.1 * w, hi + 0.1 * w)
        if len(poles):  # a spike outside the interval: say what it is
            label += f"; pole at x = {', '.join(f'{v:.3g}' for v in poles)}"
            for v in poles:
                top.axvline(v, color=colour, linewidth=0.8, linestyle=":", zorder=1)
        top.plot(x, y, color=colour, linewidth=1.3, label=label, zorder=z, linestyle=ls)
        bottom.plot(x[inside], (f - y)[inside], color=colour, linewidth=1.2, label=m, zorder=z, linestyle=ls)
        peaks[method_label(m)] = float(np.nanmax(np.abs((f - y)[inside]), initial=0.0))
        if base_method(m) in ("minimax", "rational-minimax") and math.isfinite(r["max_error"]):
            for s in (-1, 1):
                bottom.axhline(s * r["max_error"], color=colour, linewidth=0.8, linestyle=":")
    finite = f[np.isfinite(f)]
    if finite.size:
        span = max(finite.max() - finite.min(), 1e-12)
        top.set_ylim(finite.min() - 0.25 * span, finite.max() + 0.25 * span)
    top.set_xlim(lo - 0.1 * w, hi + 0.1 * w)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    top.set_ylabel("f(x), p(x)")
    top.set_title(f"{title(g)}: degree-{d} fits (shaded: outside the fitting interval)", fontsize=11)
    top.legend(fontsize=8, loc="best")
    bottom.set_ylabel("f − p on [lo, hi]")
    top_peak = max(peaks.values(), default=0.0)
    flat = [m for m, v in peaks.items() if v < FLAT * top_peak]
    if flat:  # a curve lying on zero is not an exact fit: its errors are below this scale
        bottom.set_title(f"flat at this scale (errors under {FLAT:.0%} of the largest; max errors in the "
                         f"legend): {', '.join(flat)}", fontsize=8, color="0.25")
    bottom.set_xlabel("x")
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    return fig


