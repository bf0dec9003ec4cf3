"""The report's Markdown tables, each a pure function of the rows, none wider than MAX_COLUMNS.

Every table is built with :func:`slaf_approx._markdown.table`; a table with more series than fit is split
into several tables that repeat the leading columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .._markdown import cell, table
from .._markdown import split_table as _split
from .data import (
    TOLERANCES,
    Floor,
    Group,
    bound_columns,
    find_group,
    groups,
    is_rational,
    kernel_cost,
    merge_same,
    poly_minimax,
    reach,
    rel_gap,
    series,
    table_degrees,
)
from .labels import basis_label, fmt, interval, method_label, order, series_label

#: the widest table the report writes; wider ones are split
MAX_COLUMNS = 8
#: the max error of the (5, 4) GELU coefficients on [-3, 3] published with the Padé activation unit package
#: (Molina et al., ICLR 2020), as quoted in our issue; we compare against the number only.
PAU_GELU_54_MAX_ERROR = 4.1e-3


def split_table(header: Sequence[str], rows: Sequence[Sequence], keep: int, align: str | Sequence[str] = "r"
                ) -> str:
    """:func:`slaf_approx._markdown.split_table` at MAX_COLUMNS."""
    return _split(header, rows, keep, align, MAX_COLUMNS)


def bundle_label(bundle: Sequence) -> str:
    """'lstsq/chebyshev = legendre = power(raw)': series that give the same numbers, named once."""
    first = series_label(bundle[0])
    return " = ".join([first, *(basis_label(k[1], k[2], k[3]) for k in bundle[1:])])


def summary_table(rows, target: str, interval_=None, *, params: Mapping | None = None) -> str:
    """Markdown: max error per degree in :func:`table_degrees`; theory bounds first, then one column per
    series (series with the same numbers share one); split so that no part is wider than MAX_COLUMNS."""
    g = find_group(rows, target, interval_, params)
    ss = series(g)
    bundles = merge_same(ss)
    degrees = table_degrees(g.degrees)
    bounds = bound_columns(g, degrees)
    header = ["n", *bounds, *(bundle_label(b) for b in bundles)]
    body = []
    for i, d in enumerate(degrees):
        cells = [str(d)] + [fmt(v[i]) if math.isfinite(v[i]) else "–" for v in bounds.values()]
        cells += [fmt(ss[b[0]][d]["max_error"]) if d in ss[b[0]] else "–" for b in bundles]
        body.append(cells)
    return split_table(header, body, keep=1 + len(bounds))


def glance_table(g: Group, bench: Sequence[Mapping] | None = None, tolerances=TOLERANCES) -> str:
    """Markdown for the Summary: per max-error tolerance, the lowest degree each method needs (over its
    bases; '> N' when none of its degrees up to N does), the best method, and the SLAF kernel's cost at the
    lowest polynomial degree that reaches the tolerance (`bench`: ``benchmarks.records`` of a run)."""
    tops: dict[str, int] = {}
    for key, s in series(g).items():
        if key[3] == "uniform":
            tops[key[0]] = max(tops.get(key[0], 0), max(s))
    header = ["max error ≤", *(method_label(m) for m in tops), "best (lowest n)", "SLAF kernel cost"]
    body = []
    for tol in tolerances:
        rs = reach(g, tol)
        cells = [f"{tol:g}", *(str(rs[m][0]) if rs.get(m) else f"> {top}" for m, top in tops.items())]
        reached = sorted((v[0], order(v[1]), v[1]) for v in rs.values() if v)
        if reached:
            d, _, key = reached[0]
            cells.append(f"{method_label(key[0])}/{basis_label(key[1], key[2], key[3])}, n = {d}")
        else:
            cells.append("none measured")
        poly = sorted(v[0] for m, v in rs.items() if v and not m.startswith("rational"))
        cells.append(f"n = {poly[0]}: {kernel_cost(bench, poly[0])}" if poly else "no polynomial reaches it")
        body.append(cells)
    return split_table(header, body, keep=1, align="l" + "r" * len(tops) + "ll")


def minimax_table(rows, target: str | None = None) -> str:
    """Markdown certificates of the minimax rows: degree, levelled h, max E, (E - h)/E, converged, note.

    One line per (target, interval, degree in :func:`table_degrees`, plus every degree where a fit did not
    converge or left a note); E and (E - h)/E from the chebyshev basis when present, with the worst
    relative gap over all bases in a second table; notes of all bases joined. Rows of all targets unless
    `target` is given; '' when there are no minimax rows.
    """
    header = ["target", "n", "levelled h", "max E", "(E−h)/E", "converged (iterations)", "worst (E−h)/E",
              "note"]
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
            worst = max(rs, key=lambda r: rel_gap(r) if math.isfinite(rel_gap(r)) else math.inf)
            notes = sorted({r["note"] for r in rs if r["note"]})
            body.append([f"{g.target} on {interval(g.lo, g.hi)}", str(d), fmt(main["levelled_error"]),
                         fmt(main["max_error"]), fmt(rel_gap(main)),
                         ("yes" if all(r["converged"] for r in rs) else "**no**")
                         + f" ({max(r['iterations'] for r in rs)})",
                         f"{fmt(rel_gap(worst))} ({basis_label(worst['basis'], worst['variable'])})",
                         cell("; ".join(notes), 60)])
    return split_table(header, body, keep=2, align="lrrrrrrl") if body else ""


def gradient_table(rows, target: str, interval_=None, *, params: Mapping | None = None) -> str:
    """Markdown: gradient fits' relative loss gap to the least-squares optimum and their max error, per
    degree and basis (one table of gaps, one of max errors when they do not fit in one)."""
    g = find_group(rows, target, interval_, params)
    ss = series(g, "gradient")
    if not ss:
        return ""
    degrees = table_degrees(d for s in ss.values() for d in s)
    labels = [basis_label(k[1], k[2], k[3]) for k in ss]
    gaps = [[str(d), *(fmt(s[d]["gap"]) if d in s else "–" for s in ss.values())] for d in degrees]
    errs = [[str(d), *(fmt(s[d]["max_error"]) if d in s else "–" for s in ss.values())] for d in degrees]
    if 1 + 2 * len(ss) <= MAX_COLUMNS:
        return table(["n", *(f"gap {b}" for b in labels), *(f"max E {b}" for b in labels)],
                     [a + b[1:] for a, b in zip(gaps, errs, strict=True)])
    return (split_table(["n", *(f"gap {b}" for b in labels)], gaps, keep=1) + "\n"
            + split_table(["n", *(f"max E {b}" for b in labels)], errs, keep=1))


def rational_table(rows, target: str | None = None) -> str:
    """Markdown: the rational fits beside the polynomial minimax at the same parameter count.

    One line per (target, interval, rational series, degree in :func:`table_degrees` plus every degree that
    did not converge): type (m, n), max and rms error, the polynomial minimax max error at degree m + n and
    the ratio poly / rational; a second table holds the certificate h and (E - h)/E (rational-minimax),
    convergence and notes. '' without rational rows.
    """
    header = ["target", "n", "type (m, n)", "method", "max E", "rms", "poly minimax E_n", "poly / rational",
              "levelled h", "(E−h)/E", "converged", "note"]
    body = []
    for g in groups(rows):
        if target is not None and g.target != target:
            continue
        poly = poly_minimax(g)
        for key, s in series(g).items():
            if not any(is_rational(r) for r in s.values()):
                continue
            flagged = {d for d, r in s.items() if not r["converged"]}
            for d in sorted(set(table_degrees(s)) | flagged):
                r = s[d]
                mn = (len(r["coefficients"]) - 1, len(r.get("denominator") or ()))
                p = poly.get(d, {}).get("max_error", math.nan)
                ratio = p / r["max_error"] if r["max_error"] > 0 and math.isfinite(p) else math.nan
                body.append([f"{g.target} on {interval(g.lo, g.hi)}", str(d), f"({mn[0]}, {mn[1]})",
                             series_label(key), fmt(r["max_error"]), fmt(r["rms_error"]), fmt(p), fmt(ratio),
                             fmt(r["levelled_error"]), fmt(rel_gap(r)),
                             "yes" if r["converged"] else "**no**", cell(r["note"], 60)])
    if not body:
        return ""
    first = 8  # up to the ratio: the comparison; then the certificate
    return (table(header[:first], [b[:first] for b in body], "lrrlrrrr")
            + "\n" + table(header[:4] + header[first:], [b[:4] + b[first:] for b in body], "lrrlrrll"))


def pau_reference(rows) -> str:
    """A line setting our GELU (5, 4) rational fits on [-3, 3] against PAU's published 4.1e-3; '' if none."""
    found = []
    for g in groups(rows):
        if (g.target, g.lo, g.hi) != ("gelu", -3.0, 3.0):
            continue
        for key, s in series(g).items():
            r = s.get(9)
            if r is not None and is_rational(r) and len(r["coefficients"]) == 6 \
                    and len(r.get("denominator") or ()) == 4:
                found.append(f"{series_label(key)} {fmt(r['max_error'])} "
                             f"({fmt(PAU_GELU_54_MAX_ERROR / r['max_error'])}× smaller)")
    if not found:
        return ""
    return (f"GELU, type (5, 4) on [-3, 3]: the coefficients published with the Padé activation unit package "
            f"(Molina et al., ICLR 2020) have max error {PAU_GELU_54_MAX_ERROR:g}; here: " + "; ".join(found)
            + ".")


def cost_table(rows) -> str:
    """Markdown: per (method, basis) the number of fits, median and total seconds."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r["method"], basis_label(r["basis"], r["variable"])), []).append(r["seconds"])
    body = [[m, b, str(len(s)), fmt(float(np.median(s))), fmt(float(np.sum(s)))]
            for (m, b), s in sorted(by.items(), key=lambda kv: (order((kv[0][0], "", "", "")), kv[0][1]))]
    return table(["method", "basis", "fits", "median s/fit", "total s"], body, "llrrr")


def floor_table(per_group: Sequence[tuple[Group, Sequence[Floor]]]) -> str:
    """Markdown for the Summary: per target and dtype, the polynomial minimax series' best achieved error,
    the degree beyond which a higher one gains nothing (:meth:`Floor.floor_degree`), the native activation's
    error in the dtype and the lowest degree as accurate as it; '' when nothing was measured."""
    body = []
    for g, fls in per_group:
        for fl in fls:
            top = max(fl.achieved)
            best = min(fl.achieved, key=lambda d: (fl.achieved[d], d))
            floor = fl.floor_degree()
            nd = fl.native_degree()
            body.append([f"{g.target} on {interval(g.lo, g.hi)}", fl.dtype, f"{fmt(fl.best)} (n = {best})",
                         f"n = {floor}" if floor is not None else f"not reached up to n = {top}",
                         "no native op" if fl.native is None else fmt(fl.native),
                         "-" if fl.native is None else f"n = {nd}" if nd is not None
                         else f"none up to n = {top}"])
    if not body:
        return ""
    header = ["target", "dtype", "best achieved error", "no gain beyond", "native op's error",
              "as accurate as native from"]
    return table(header, body, "llrlrl")
