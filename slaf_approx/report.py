"""The report: README.md with tables and figures, from a results table (one row per fit).

Everything here is a pure function of the rows (dicts from memory, or rows read back from CSV through
``csv.DictReader`` / JSON Lines: :func:`normalise_row` restores their types). Figures are built as
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, never through pyplot, so nothing is
displayed and nothing stays registered after a figure is saved.

Rows are grouped per (target, interval, target parameters): one section, one error figure and one overlay
figure each. Within a group a *series* is one (method, basis, variable, weight); where a series has several
rows for the same degree, the last one wins. Rational rows (a ``form``) are series of their own, method
"rational (pau)" etc., plotted and tabulated at their polynomial-equivalent degree m + n (equal parameter
count); methods the report does not know are shown with default styles.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from . import theory
from ._io import atomic_write, save_figure
from .sweep import normalise_row

#: degrees shown in the tables (those present), plus the largest degree present
TABLE_DEGREES = (1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64)
#: a gradient fit whose loss exceeds the least-squares optimum by more than this fraction has stalled
STALL_GAP = 0.1
#: errors below this are at the float64 rounding floor and say nothing about convergence rates
ROUNDOFF = 1e-12

METHOD_ORDER = ("lstsq", "minimax", "gradient", "rational", "rational-minimax")
BASIS_ORDER = ("chebyshev", "legendre", "power", "hermite")
METHOD_COLOURS = {"lstsq": "tab:blue", "minimax": "tab:red", "gradient": "tab:green",
                  "rational": "tab:purple", "rational-minimax": "tab:orange"}
METHOD_Z = {"lstsq": 3, "minimax": 4, "gradient": 2, "rational": 3, "rational-minimax": 4}
#: how a method is named in labels, where that differs from its name
METHOD_LABELS = {"rational": "rational-lstsq"}
#: the max error of the (5, 4) GELU coefficients on [-3, 3] published with the Padé activation unit package
#: (Molina et al., ICLR 2020), as quoted in our issue; we compare against the number only.
PAU_GELU_54_MAX_ERROR = 4.1e-3
BASIS_STYLES = {  # marker, linestyle, marker size
    "chebyshev": ("o", "-", 5.5),
    "legendre": ("x", "-.", 6.0),
    "power": ("^", ":", 5.0),
    "hermite": ("d", (0, (3, 1, 1, 1, 1, 1)), 5.0),
}
THEORY_STYLES = [("0.1", "--"), ("0.35", (0, (6, 2, 1, 2))), ("0.1", (0, (1, 1.5)))]
DPI = 100



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
        return (self.target, self.lo, self.hi, _params_key(self.params))

    @property
    def degrees(self) -> list[int]:
        return sorted({r["degree"] for r in self.rows})


def _params_key(params: Mapping) -> str:
    return json.dumps(dict(params), sort_keys=True)


def groups(rows: Iterable) -> list[Group]:
    """Rows (normalised) split into groups per (target, interval, params), in order of first appearance."""
    out: dict[tuple, Group] = {}
    for row in rows:
        r = normalise_row(row)
        g = Group(r["target"], r["lo"], r["hi"], dict(r.get("params") or {}))
        out.setdefault(g.key, g).rows.append(r)
    return list(out.values())


def _group(rows, target: str, interval=None, params: Mapping | None = None) -> Group:
    """The group of `target` (on `interval`, with `params` when given; else the first one found).

    `rows` may also be a :class:`Group` already (write_report passes its groups), returned as it is.
    """
    if isinstance(rows, Group):
        return rows
    found = [g for g in groups(rows) if g.target == target
             and (interval is None or (g.lo, g.hi) == (float(interval[0]), float(interval[1])))
             and (params is None or _params_key(g.params) == _params_key(params))]
    if not found:
        where = "" if interval is None else f" on [{interval[0]}, {interval[1]}]"
        raise ValueError(f"no rows for target {target!r}{where}")
    return found[0]


SeriesKey = tuple[str, str, str, str]  # method, basis, variable, weight


def _method_key(r: Mapping) -> str:
    """The series' method: the row's method, plus its form for a rational row ("rational (pau)")."""
    form = r.get("form") or ""
    return f"{r['method']} ({form})" if form else r["method"]


def _base(m: str) -> str:
    """The method name of a series' method key ("rational (pau)" -> "rational")."""
    return m.split(" (")[0]


def _order(key: SeriesKey) -> tuple:
    m, b, v, w = key
    mi = METHOD_ORDER.index(_base(m)) if _base(m) in METHOD_ORDER else len(METHOD_ORDER)
    bi = BASIS_ORDER.index(b) if b in BASIS_ORDER else len(BASIS_ORDER)
    return (mi, m, bi, b, v != "raw", v, w != "uniform", w)


def series(group: Group, method: str | None = None) -> dict[SeriesKey, dict[int, dict]]:
    """The group's series (method, basis, variable, weight) -> {degree: row}, in a fixed order."""
    out: dict[SeriesKey, dict[int, dict]] = {}
    for r in group.rows:
        if method is None or r["method"] == method:
            out.setdefault((_method_key(r), r["basis"], r["variable"], r["weight"]), {})[r["degree"]] = r
    return {k: dict(sorted(out[k].items())) for k in sorted(out, key=_order)}


def basis_label(basis: str, variable: str, weight: str = "uniform") -> str:
    """'chebyshev', 'power(raw)', 'power(mapped)', plus ' [weight]' for a non-uniform weight."""
    s = basis if (variable == "mapped" and basis != "power") else f"{basis}({variable})"
    return s if weight == "uniform" else f"{s} [{weight}]"


def series_label(key: SeriesKey) -> str:
    m, b, v, w = key
    base = _base(m)
    return f"{METHOD_LABELS.get(base, base)}{m[len(base):]}/{basis_label(b, v, w)}"


# --------------------------------------------------------------------------------------------
# Targets and theory
# --------------------------------------------------------------------------------------------
def _target(group: Group):
    """The catalogue Target of a group, or None when the catalogue does not have it."""
    try:
        from .targets import get_target

        return get_target(group.target, **group.params)
    except (ImportError, ValueError, KeyError, TypeError):
        return None


def _reference(group: Group) -> tuple[SeriesKey, dict[int, dict]] | None:
    """The series that best stands for E_n: minimax, else lstsq, chebyshev basis preferred."""
    ss = series(group)
    for method in ("minimax", "lstsq", "gradient"):
        cands = [k for k in ss if k[0] == method and k[3] == "uniform"]
        if cands:
            key = ([k for k in cands if k[1] == "chebyshev"] or cands)[0]
            return key, ss[key]
    return next(iter(ss.items()), None)


def _anchor(group: Group) -> tuple[float, float] | None:
    """(degree, max error) of the reference series at its median degree above the rounding floor."""
    ref = _reference(group)
    if not ref:
        return None
    ref = ref[1]
    pts = [(d, r["max_error"]) for d, r in ref.items()
           if d >= 1 and math.isfinite(r["max_error"]) and r["max_error"] > ROUNDOFF]
    return pts[len(pts) // 2] if pts else None


def _theory(group: Group, degrees) -> dict[str, np.ndarray]:
    tg = _target(group)
    if tg is None:
        return {}
    return theory.theory_curves(tg, group.lo, group.hi, np.asarray(degrees, dtype=float), _anchor(group))


def _bound_columns(group: Group, degrees) -> dict[str, np.ndarray]:
    """Theory curves that are bounds or asymptotes (not the anchored rate line)."""
    return {k: v for k, v in _theory(group, degrees).items() if not k.startswith("ρ")}


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------
def fmt(v, digits: int = 3) -> str:
    """A number with `digits` significant digits; '–' for missing."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "–"
    return f"{v:.{digits}g}"


def _cell(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


def _complex(z: complex) -> str:
    if z.real == 0:
        return f"{z.imag:.4g}i"
    return f"{z.real:.4g}{z.imag:+.4g}i"


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
def summary_table(rows, target: str, interval=None, *, params: Mapping | None = None) -> str:
    """Markdown: one row per degree in :func:`table_degrees`; max error per series, then theory bounds."""
    g = _group(rows, target, interval, params)
    ss = series(g)
    degrees = table_degrees(g.degrees)
    bounds = _bound_columns(g, degrees)
    header = ["n", *(series_label(k) for k in ss), *bounds]
    body = []
    for i, d in enumerate(degrees):
        cells = [str(d)] + [fmt(s[d]["max_error"]) if d in s else "–" for s in ss.values()]
        cells += [fmt(v[i]) if math.isfinite(v[i]) else "–" for v in bounds.values()]
        body.append(cells)
    return _markdown(header, body)


def minimax_table(rows, target: str | None = None) -> str:
    """Markdown certificates of the minimax rows: degree, levelled h, max E, (E - h)/E, converged, note.

    One line per (target, interval, degree in :func:`table_degrees`, plus every degree where a fit did not
    converge or left a note); E and (E - h)/E from the chebyshev basis when present, with the worst
    relative gap over all bases beside it; notes of all bases joined. Rows of all targets unless `target`
    is given; '' when there are no minimax rows.
    """
    header = ["target", "interval", "n", "levelled h", "max E", "(E−h)/E", "worst (E−h)/E", "converged",
              "iter", "note"]
    body = []
    for g in groups(rows):
        if target is not None and g.target != target:
            continue
        by_degree: dict[int, list[dict]] = {}
        for s in series(g, "minimax").values():
            for d, r in s.items():
                by_degree.setdefault(d, []).append(r)
        if not by_degree:
            continue
        flagged = {d for d, rs in by_degree.items() if not all(r["converged"] for r in rs)}
        for d in sorted(set(table_degrees(by_degree)) | flagged):
            rs = by_degree[d]
            main = next((r for r in rs if r["basis"] == "chebyshev"), rs[0])
            worst = max(rs, key=lambda r: _rel_gap(r) if math.isfinite(_rel_gap(r)) else math.inf)
            notes = sorted({r["note"] for r in rs if r["note"]})
            body.append([g.target, _interval(g.lo, g.hi), str(d), fmt(main["levelled_error"]),
                         fmt(main["max_error"]), fmt(_rel_gap(main)),
                         f"{fmt(_rel_gap(worst))} ({basis_label(worst['basis'], worst['variable'])})",
                         "yes" if all(r["converged"] for r in rs) else "**no**",
                         str(max(r["iterations"] for r in rs)), _cell("; ".join(notes))])
    return _markdown(header, body) if body else ""


def _rel_gap(r: dict) -> float:
    e, h = r["max_error"], r["levelled_error"]
    if not (math.isfinite(e) and math.isfinite(h)) or e <= 0:
        return math.nan
    return (e - abs(h)) / e


def gradient_table(rows, target: str, interval=None, *, params: Mapping | None = None) -> str:
    """Markdown: gradient fits' relative loss gap to the least-squares optimum, per degree and basis."""
    g = _group(rows, target, interval, params)
    ss = series(g, "gradient")
    if not ss:
        return ""
    degrees = table_degrees(d for s in ss.values() for d in s)
    header = ["n", *(f"gap {basis_label(k[1], k[2], k[3])}" for k in ss),
              *(f"max E {basis_label(k[1], k[2], k[3])}" for k in ss)]
    body = [[str(d), *(fmt(s[d]["gap"]) if d in s else "–" for s in ss.values()),
             *(fmt(s[d]["max_error"]) if d in s else "–" for s in ss.values())] for d in degrees]
    return _markdown(header, body)


def _is_rational(r: Mapping) -> bool:
    return bool(r.get("form"))


def _poly_minimax(g: Group) -> dict[int, dict]:
    """The group's polynomial minimax series (chebyshev basis preferred), {} if none."""
    cands = [(k, s) for k, s in series(g, "minimax").items() if k[3] == "uniform"]
    return ([s for k, s in cands if k[1] == "chebyshev"] or [s for _, s in cands] or [{}])[0]


def rational_table(rows, target: str | None = None) -> str:
    """Markdown: the rational fits beside the polynomial minimax at the same parameter count.

    One line per (target, interval, rational series, degree in :func:`table_degrees` plus every degree that
    did not converge): type (m, n), max and rms error, the certificate h and (E - h)/E (rational-minimax),
    the polynomial minimax max error at degree m + n and the ratio poly / rational. '' without rational rows.
    """
    header = ["target", "interval", "n", "type (m, n)", "method", "max E", "rms", "levelled h", "(E−h)/E",
              "poly minimax E_n", "poly / rational", "converged", "note"]
    body = []
    for g in groups(rows):
        if target is not None and g.target != target:
            continue
        poly = _poly_minimax(g)
        for key, s in series(g).items():
            if not any(_is_rational(r) for r in s.values()):
                continue
            flagged = {d for d, r in s.items() if not r["converged"]}
            for d in sorted(set(table_degrees(s)) | flagged):
                r = s[d]
                mn = (len(r["coefficients"]) - 1, len(r.get("denominator") or ()))
                p = poly.get(d, {}).get("max_error", math.nan)
                ratio = p / r["max_error"] if r["max_error"] > 0 and math.isfinite(p) else math.nan
                body.append([g.target, _interval(g.lo, g.hi), str(d), f"({mn[0]}, {mn[1]})",
                             series_label(key), fmt(r["max_error"]), fmt(r["rms_error"]),
                             fmt(r["levelled_error"]), fmt(_rel_gap(r)), fmt(p), fmt(ratio),
                             "yes" if r["converged"] else "**no**", _cell(r["note"])])
    return _markdown(header, body) if body else ""


def pau_reference(rows) -> str:
    """A line setting our GELU (5, 4) rational fits on [-3, 3] against PAU's published 4.1e-3; '' if none."""
    found = []
    for g in groups(rows):
        if (g.target, g.lo, g.hi) != ("gelu", -3.0, 3.0):
            continue
        for key, s in series(g).items():
            r = s.get(9)
            if r is not None and _is_rational(r) and len(r["coefficients"]) == 6 \
                    and len(r.get("denominator") or ()) == 4:
                found.append(f"{series_label(key)} {fmt(r['max_error'])} "
                             f"({fmt(PAU_GELU_54_MAX_ERROR / r['max_error'])}× smaller)")
    if not found:
        return ""
    return (f"GELU, type (5, 4) on [-3, 3]: the coefficients published with the Padé activation unit package "
            f"(Molina et al., ICLR 2020) have max error {PAU_GELU_54_MAX_ERROR:g}; here: " + "; ".join(found)
            + ".")


# --------------------------------------------------------------------------------------------
# Findings: what the data shows, in words
# --------------------------------------------------------------------------------------------
def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def findings(group: Group) -> list[str]:
    """Plain statements the group's data supports (minimax vs lstsq, bounds, observed rates)."""
    out = []
    ss = series(group)
    tg = _target(group)

    # minimax <= lstsq in max error, basis by basis
    parts, ratios = [], []
    for (m, b, v, _), mm in ss.items():
        if m != "minimax":
            continue
        ls = ss.get(("lstsq", b, v, "uniform"))
        if not ls:
            continue
        common = [d for d in mm if d in ls and math.isfinite(mm[d]["max_error"])
                  and math.isfinite(ls[d]["max_error"])]
        if not common:
            continue
        bad = [d for d in common if mm[d]["max_error"] > ls[d]["max_error"] * (1 + 1e-9)]
        ratios += [ls[d]["max_error"] / mm[d]["max_error"] for d in common if mm[d]["max_error"] > 0]
        text = f"{basis_label(b, v)} {len(common) - len(bad)}/{len(common)}"
        if bad:
            text += f" (not at n = {_degree_list(bad)})"
        parts.append(text)
    if parts:
        out.append("Minimax max error ≤ lstsq max error at: " + "; ".join(parts) + " degrees."
                   + (f" Median lstsq/minimax max-error ratio: {np.median(ratios):.3g}." if ratios else ""))

    # rational against polynomial minimax at equal parameter count
    poly = _poly_minimax(group)
    for key, s in ss.items():
        common = [d for d, r in s.items() if _is_rational(r) and d in poly and d >= 2
                  and math.isfinite(r["max_error"]) and math.isfinite(poly[d]["max_error"])
                  and poly[d]["max_error"] > ROUNDOFF]
        if common:
            better = [d for d in common if s[d]["max_error"] < poly[d]["max_error"]]
            d = common[-1]
            out.append(f"{series_label(key)} (type (⌈n/2⌉, ⌊n/2⌋), as many parameters as degree n) has a "
                       f"smaller max error than the polynomial minimax at {len(better)} of {len(common)} "
                       f"degrees; at n = {d}: {fmt(s[d]['max_error'])} against {fmt(poly[d]['max_error'])}.")

    # Jackson's bound
    if tg is not None and math.isfinite(getattr(tg, "lipschitz", math.nan)):
        above = []
        for k, s in ss.items():
            ds = [d for d, r in s.items()
                  if r["max_error"] > theory.jackson_bound(tg.lipschitz, group.lo, group.hi, d)]
            if ds:
                above.append(f"{series_label(k)} at n = {_degree_list(ds)}")
        if above:
            out.append("Above Jackson's bound (π/2)·L·((hi−lo)/2)/(n+1): " + "; ".join(above) + ".")
        else:
            out.append("Every fit's max error lies below Jackson's bound (π/2)·L·((hi−lo)/2)/(n+1).")

    # observed rate against the theory
    if ss:
        key, ref = _reference(group)
        name = series_label(key)
        pts = [(d, r["max_error"]) for d, r in ref.items()
               if d >= 1 and math.isfinite(r["max_error"]) and r["max_error"] > ROUNDOFF]
        rho = theory.analytic_rate(tg, group.lo, group.hi) if tg is not None else None
        if len(pts) >= 3:
            n = np.array([p[0] for p in pts], dtype=float)
            e = np.log([p[1] for p in pts])
            if rho is None:
                order = -_slope(np.log(n), e)
                out.append(f"{name}: max error decays like n^−{order:.2f} over n = {int(n[0])}…{int(n[-1])} "
                           "(kinked target: algebraic convergence, Jackson's order is n^−1).")
            else:
                rho_obs = math.exp(-_slope(n, e))
                pred = ("entire target: theory predicts faster than any geometric rate" if math.isinf(rho)
                        else f"predicted ρ = {rho:.3g}")
                out.append(f"{name}: max error decays geometrically, E_n ≈ C·ρ^−n with observed ρ ≈ "
                           f"{rho_obs:.3g} over n = {int(n[0])}…{int(n[-1])} ({pred}).")
        even = [d for d in ref if d >= 2 and d % 2 == 0 and math.isfinite(ref[d]["max_error"])]
        asym = theory.bernstein_asymptote(tg, group.lo, group.hi, even) if tg is not None and even else None
        if asym is not None:
            label, values = asym
            d, value = even[-1], float(values[-1])
            ratio = ref[d]["max_error"] / value
            out.append(f"{name} against {label}: at n = {d}, E_n / asymptote = {ratio:.4g} "
                       f"(β = {theory.BERNSTEIN_BETA:.4g}; the ratio tends to 1 as n → ∞ along even n).")
    return out


def gradient_findings(group: Group) -> list[str]:
    """Which bases' gradient fits stall (gap > STALL_GAP), with the design's condition number."""
    out = []
    for (_, b, v, w), s in series(group, "gradient").items():
        stalled = [d for d, r in s.items() if not (r["gap"] <= STALL_GAP)]
        label = basis_label(b, v, w)
        dmax = max(s)
        cond = s[dmax]["condition_number"]
        cond_text = f"; condition number at n = {dmax}: {fmt(cond)}" if math.isfinite(cond) else ""
        steps = sorted({r["iterations"] for r in s.values()})
        steps_text = f" after {steps[0]} steps" if len(steps) == 1 else ""
        if stalled:
            out.append(f"{label}: gradient descent stalls{steps_text} (loss more than {1 + STALL_GAP:g}× the "
                       f"lstsq optimum) at {len(stalled)} of {len(s)} degrees, n = {_degree_list(stalled)}"
                       f"{cond_text}.")
        else:
            out.append(f"{label}: within {STALL_GAP:g} of the lstsq optimum at every degree{steps_text}"
                       f"{cond_text}.")
    return out


def _degree_list(ds: Sequence[int]) -> str:
    """1, 2, 3, 7, 9, 10 -> '1–3, 7, 9–10'."""
    ds = sorted(ds)
    runs, start = [], ds[0]
    for a, b in zip(ds, [*ds[1:], None], strict=True):
        if b != a + 1:
            runs.append(f"{start}" if start == a else f"{start}–{a}")
            start = b
    return ", ".join(runs)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _positive(xs, ys):
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    return x[ok], y[ok]


def _title(group: Group) -> str:
    """'<catalogue title> (params that differ from the catalogue defaults) on [lo, hi]'."""
    tg = _target(group)
    title = getattr(tg, "title", None) or group.target
    defaults = dict(getattr(_target(Group(group.target, 0.0, 1.0, {})), "params", {}) or {})
    changed = {k: v for k, v in group.params.items() if defaults.get(k) != v}
    extra = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in changed.items())
    return f"{title}{f' ({extra})' if extra else ''} on {_interval(group.lo, group.hi)}"


def error_figure(rows, target: str, interval=None, *, params: Mapping | None = None) -> Figure:
    """Max error (left, with theory curves) and rms error (right) against degree, log scale."""
    g = _group(rows, target, interval, params)
    ss = series(g)
    fig = Figure(figsize=(11, 4.5), dpi=DPI, layout="constrained")
    ax_max, ax_rms = fig.subplots(1, 2, sharex=True)
    handles, labels = [], []
    lows, highs = [], []
    for key, s in ss.items():
        m, b, _, _ = key
        marker, ls, ms = BASIS_STYLES.get(b, ("o", "-", 5.0))
        style = dict(color=METHOD_COLOURS.get(_base(m)), zorder=METHOD_Z.get(_base(m), 2), marker=marker,
                     linestyle=ls,
                     markersize=ms, linewidth=1.3, markerfacecolor="none" if b == "power" else None,
                     alpha=0.9)
        x, y = _positive(list(s), [r["max_error"] for r in s.values()])
        (h,) = ax_max.plot(x, y, **style)
        lows += list(y)
        highs += list(y)
        x, y = _positive(list(s), [r["rms_error"] for r in s.values()])
        ax_rms.plot(x, y, **style)
        handles.append(h)
        labels.append(series_label(key))
    degrees = np.array([d for d in g.degrees if d >= 1] or g.degrees, dtype=float)
    for (name, curve), (colour, ls) in zip(_theory(g, degrees).items(), THEORY_STYLES, strict=False):
        x, y = _positive(degrees, curve)
        (h,) = ax_max.plot(x, y, color=colour, linestyle=ls, linewidth=1.6)
        handles.append(h)
        labels.append(name)
        highs += list(y[:1])
    if lows:
        ax_max.set_ylim(min(lows) / 4, max(highs) * 3)
    rational = any(_base(k[0]) != k[0] for k in ss)
    for ax, what in ((ax_max, "max |f − p|"), (ax_rms, "rms error")):
        ax.set_yscale("log")
        ax.set_xlabel("degree n (rational P/Q: m + n, equal parameter count)" if rational else "degree n")
        ax.set_ylabel(what)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        if len(degrees) and degrees.max() <= 30:
            ax.set_xticks(np.arange(0, degrees.max() + 1, 2 if degrees.max() > 10 else 1))
    ax_max.set_title("max error (theory: dashed)", fontsize=10)
    ax_rms.set_title("rms error", fontsize=10)
    fig.suptitle(f"{_title(g)}: error against degree", fontsize=11)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return fig


def approximant(r: Mapping):
    """The fitted function of a row: a SlafPolynomial, or a RationalFunction for a rational row."""
    from .bases import SlafPolynomial
    from .rational import RationalFunction

    if r.get("form"):
        return RationalFunction(tuple(r["coefficients"]), tuple(r.get("denominator") or ()),
                                (r["lo"], r["hi"]), r["variable"], r["form"], r["basis"])
    return SlafPolynomial(r["basis"], tuple(r["coefficients"]), (r["lo"], r["hi"]), r["variable"])


def _pick_overlay(g: Group, degree: int) -> tuple[int, dict[str, dict]]:
    """The available degree closest to `degree` and, per method, its row (chebyshev basis preferred)."""
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
    return d, dict(sorted(chosen.items(), key=lambda kv: _order((kv[0], "", "", ""))))


def overlay_figure(rows, target: str, degree: int = 8, interval=None, *,
                   params: Mapping | None = None) -> Figure:
    """The target and each method's fit at the degree closest to `degree` (top; 10% beyond the interval on
    each side, shaded), and the signed error f − p on [lo, hi] (bottom)."""
    g = _group(rows, target, interval, params)
    tg = _target(g)
    if tg is None:
        raise ValueError(f"target {target!r} is not in the catalogue: cannot evaluate it")
    d, chosen = _pick_overlay(g, degree)
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
    for m, r in chosen.items():
        p = approximant(r)
        with np.errstate(all="ignore"):
            y = np.asarray(p(x), dtype=float)
        label = f"{series_label((m, r['basis'], r['variable'], 'uniform'))}: max err {fmt(r['max_error'])}"
        colour = METHOD_COLOURS.get(_base(m))
        z = METHOD_Z.get(_base(m), 2) + 1
        top.plot(x, y, color=colour, linewidth=1.3, label=label, zorder=z)
        bottom.plot(x[inside], (f - y)[inside], color=colour, linewidth=1.2, label=m, zorder=z)
        if _base(m) in ("minimax", "rational-minimax") and math.isfinite(r["max_error"]):
            for s in (-1, 1):
                bottom.axhline(s * r["max_error"], color=colour, linewidth=0.8, linestyle=":")
    finite = f[np.isfinite(f)]
    if finite.size:
        span = max(finite.max() - finite.min(), 1e-12)
        top.set_ylim(finite.min() - 0.25 * span, finite.max() + 0.25 * span)
    top.set_xlim(lo - 0.1 * w, hi + 0.1 * w)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    top.set_ylabel("f(x), p(x)")
    top.set_title(f"{_title(g)}: degree-{d} fits (shaded: outside the fitting interval)", fontsize=11)
    top.legend(fontsize=8, loc="best")
    bottom.set_ylabel("f − p on [lo, hi]")
    bottom.set_xlabel("x")
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    return fig


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def _file_tags(gs: Sequence[Group]) -> dict[tuple, str]:
    """Per group the file-name stem: the target, plus interval/params when the target has several groups."""
    tags = {}
    for g in gs:
        same = [h for h in gs if h.target == g.target]
        tag = g.target
        if len(same) > 1:
            if len({(h.lo, h.hi) for h in same}) > 1:
                tag += f"_{g.lo:g}_{g.hi:g}"
            if len({_params_key(h.params) for h in same}) > 1:
                tag += "_" + "_".join(f"{k}={v:g}" for k, v in sorted(g.params.items()))
        tags[g.key] = _slug(tag)
    return tags


META_ORDER = ("machine", "python", "numpy", "torch", "date", "command", "seconds")


def _meta_line(meta: Mapping | None) -> str:
    if not meta:
        return "**Machine and date:** not recorded."
    keys = [k for k in META_ORDER if k in meta] + [k for k in meta if k not in META_ORDER]
    parts = []
    for k in keys:
        v = meta[k]
        if k == "command":
            parts.append(f"command `{v}`")
        elif k == "seconds":
            parts.append(f"default-suite fitting time {v} s")
        else:
            parts.append(f"{k} {v}")
    return "**Machine and date:** " + "; ".join(parts) + "."


def _target_lines(g: Group) -> list[str]:
    tg = _target(g)
    if tg is None:
        return ["Not in the target catalogue: no formula, no theory curves, no overlay."]
    formula = getattr(tg, "formula", "")
    lines = [f"- Formula: `{formula}`" if formula else f"- {tg.title}"]
    lines.append(f"- Lipschitz constant: {fmt(tg.lipschitz, 4)}")
    kinks = getattr(tg, "kinks", ())
    lines.append(f"- Kinks: {', '.join(fmt(k, 4) for k in kinks)}" if kinks else "- Kinks: none")
    rho = theory.analytic_rate(tg, g.lo, g.hi)
    if rho is None:
        lines.append("- Not analytic (kinked): algebraic convergence, no Bernstein ellipse.")
    elif math.isinf(rho):
        lines.append("- Entire: no singularity, ρ = ∞ (faster than any geometric rate).")
    else:
        z = min(tg.singularities, key=lambda s: theory.ellipse_rho(s, g.lo, g.hi))
        lines.append(f"- Nearest singularity: {_complex(z)}; Bernstein ellipse ρ = {rho:.4g} on "
                     f"{_interval(g.lo, g.hi)}")
    return lines


def write_report(rows, outdir, *, overlay_degree: int = 8, title: str = "slaf-approx report",
                 meta: dict | None = None, kernel_table: str | None = None) -> Path:
    """Write README.md, error_<target>.png and overlay_<target>.png into `outdir`; returns README's path.

    Each file is written to a temporary file in `outdir` and moved into place, so a reader never sees a
    half-written file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    gs = groups(rows)
    tags = _file_tags(gs)
    nrows = sum(len(g.rows) for g in gs)
    all_rows = [r for g in gs for r in g.rows]
    methods = sorted({r["method"] for r in all_rows}, key=lambda m: _order((m, "", "", "")))
    bases = sorted({basis_label(r["basis"], r["variable"]) for r in all_rows})
    degrees = sorted({r["degree"] for r in all_rows})

    md = [f"# {title}", "", _meta_line(meta), ""]
    if gs:
        md += [f"{nrows} fits: {len(gs)} target/interval group(s); methods {', '.join(methods)}; bases "
               f"{', '.join(bases)}; degrees {_degree_list(degrees)}. Errors are measured on the fitting "
               "interval; numbers have 3 significant digits.", ""]
    else:
        md += ["No results.", ""]

    for g in gs:
        tag = tags[g.key]
        md += [f"## {g.target} on {_interval(g.lo, g.hi)}", "", f"**{_title(g)}**", ""]
        md += _target_lines(g) + [""]
        name = f"error_{tag}.png"
        save_figure(error_figure(g, g.target), outdir / name)
        md += [f"![max and rms error against degree for {g.target}]({name})", ""]
        md += [f"- {s}" for s in findings(g)] + [""]
        md += ["Max error by degree (theory columns: Jackson's bound; Bernstein's asymptote where it "
               "applies):", "", summary_table(g, g.target)]
        if _target(g) is not None and g.rows:
            name = f"overlay_{tag}.png"
            d, _ = _pick_overlay(g, overlay_degree)
            save_figure(overlay_figure(g, g.target, overlay_degree), outdir / name)
            md += [f"Fits at degree {d} (chebyshev basis where present) and their signed errors:", "",
                   f"![degree-{d} fits of {g.target}]({name})", ""]

    cert = minimax_table(all_rows)
    if cert:
        mm = [r for r in all_rows if r["method"] == "minimax"]
        bad = [r for r in mm if not r["converged"]]
        gaps = [(_rel_gap(r), r) for r in mm if math.isfinite(_rel_gap(r))]
        md += ["## Minimax certificates", "",
               "The Remez exchange's levelled error h and the measured max error E bracket the best error: "
               "h ≤ E_n(f) ≤ E. (E−h)/E is the certificate's relative gap.", ""]
        text = (f"All {len(mm)} minimax fits converged." if not bad else
                f"{len(bad)} of {len(mm)} minimax fits did not converge: "
                + "; ".join(f"{r['target']} {basis_label(r['basis'], r['variable'])} n = {r['degree']}"
                            for r in bad[:12]) + ("; …" if len(bad) > 12 else "") + ".")
        if gaps:
            gmax, r = max(gaps, key=lambda t: t[0])
            text += (f" Largest (E−h)/E: {fmt(gmax)} ({r['target']}, "
                     f"{basis_label(r['basis'], r['variable'])}, n = {r['degree']}).")
        md += [text, "", cert]

    rat = rational_table(all_rows)
    if rat:
        ref = pau_reference(all_rows)
        md += ["## Rational approximants", "",
               "P/Q of type (m, n) = (⌈n/2⌉, ⌊n/2⌋) has m + 1 + n = n + 1 parameters, as many as a degree-n "
               "polynomial, and is shown at degree n. Form pau: Q = 1 + |q₁v + … + qₙvⁿ| (Padé activation "
               "units, Molina et al., ICLR 2020); standard: Q = 1 + q₁v + … + qₙvⁿ. rational-minimax rows "
               "carry de la Vallée Poussin's certificate h ≤ E_mn(f) ≤ E.", ""]
        md += ([ref, ""] if ref else []) + [rat]

    grad = [(g, gradient_table(g, g.target)) for g in gs]
    grad = [(g, t) for g, t in grad if t]
    if grad:
        md += ["## Gradient fits", "",
               "Gap = (loss − optimal loss) / optimal loss on the training points, the optimum being the "
               f"least-squares solution in the same basis. A gap above {STALL_GAP:g} means the optimizer "
               "stalled.",
               ""]
        for g, t in grad:
            md += [f"### {g.target} on {_interval(g.lo, g.hi)}", ""]
            md += [f"- {s}" for s in gradient_findings(g)] + ["", t]

    if all_rows:
        md += ["## Cost of the fits", "",
               "Wall-clock seconds per fit as recorded in the table (gradient fits of several degrees train "
               "together; each row holds its share).", "", cost_table(all_rows)]
    if kernel_table:
        md += ["## Cost of an SLAF layer", "",
               "Measured in this run (torch.utils.benchmark); the full suite is `slaf-approx bench` "
               "([kernels.md](kernels.md) when present).", "", kernel_table.strip(), ""]
    bench = outdir / "bench" / "fit.md"
    if bench.is_file():
        md += ["## Benchmarks", "",
               "From the last `tox -e bench` run (pytest-benchmark; budgets in "
               "`slaf_approx/benchmarks/budgets.toml`; [full table](bench/fit.md)):", "",
               bench.read_text().strip(), ""]

    readme = outdir / "README.md"
    atomic_write(readme, ("\n".join(md).rstrip() + "\n").encode("utf-8"))
    return readme


def cost_table(rows) -> str:
    """Markdown: per (method, basis) the number of fits, median and total seconds."""
    by = {}
    for r in rows:
        by.setdefault((r["method"], basis_label(r["basis"], r["variable"])), []).append(r["seconds"])
    lines = ["| method | basis | fits | median s/fit | total s |", "|---|---|---:|---:|---:|"]
    for (m, b), s in sorted(by.items(), key=lambda kv: (_order((kv[0][0], "", "", "")), kv[0][1])):
        lines.append(f"| {m} | {b} | {len(s)} | {fmt(float(np.median(s)))} | {fmt(float(np.sum(s)))} |")
    return "\n".join(lines) + "\n"
