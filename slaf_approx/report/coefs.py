"""The section on coefficients stored in a narrow format: the rounding-aware fit against naive rounding.

Rows whose ``coef_dtype`` is not float64 hold coefficients fitted for that format
(:mod:`slaf_approx.coefround`); their ``max_error`` is that of the stored coefficients and ``naive_error``
that of the float64 fit's coefficients rounded to nearest. They are kept out of the report's other tables
and plots, which compare float64 fits, and shown here beside the float64 fit of the same series.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._markdown import split_table
from .data import table_degrees
from .labels import basis_label, fmt, interval, order

#: each format's columns: exact errors of naive and aware coefficients, the floor, errors in the format
COLUMNS = ("naive_error", "max_error", "coef_floor", "naive_achieved_error", "coef_achieved_error")
#: the formats in the order the table shows them
FORMAT_ORDER = ("bfloat16", "float16", "float32")


def is_rounded(row) -> bool:
    return (row.get("coef_dtype") or "float64") != "float64"


def _series(r) -> tuple:
    return (r["target"], r["lo"], r["hi"], r["method"], r["basis"], r["variable"], r.get("weight", "uniform"))


def rounding_section(rounded: Sequence[dict], plain: Sequence[dict]) -> list[str]:
    """The section's Markdown lines (none without rounded rows): per series, naive against rounding-aware
    error per format at the table degrees, the float64 fit's error first, and how often each won."""
    if not rounded:
        return []
    dtypes = sorted({r["coef_dtype"] for r in rounded},
                    key=lambda d: (FORMAT_ORDER.index(d) if d in FORMAT_ORDER else len(FORMAT_ORDER), d))
    best = {(_series(r), r["degree"]): r for r in plain if not r.get("form")}
    by = {(_series(r), r["coef_dtype"], r["degree"]): r for r in rounded}
    md = ["## Coefficients in a storage format", "",
          "An SLAF stores its coefficients in a parameter of some dtype. *Naive*: the float64 fit's "
          "coefficients rounded to nearest. *Aware*: chosen for the format (`--coef-dtype`, "
          "`slaf_approx.coefround`): the largest coefficients are rounded first, each down or up, whichever "
          "leaves the smaller error once the coefficients still free are refitted (a discrete minimax); then "
          "one-ulp moves while they help. Both errors are exact max errors of the polynomial with the stored "
          "coefficients (inputs and arithmetic in float64), and the better is kept, so aware ≤ naive. "
          "*Floor*: a proven lower bound for every polynomial in the basis whose constant coefficient is in "
          "the format (Chebyshev and Legendre polynomials of degree ≥ 1 have mean 0 under their measure, so "
          "the error is at least the distance from f's mean to the format's nearest value). *naive in* / "
          "*aware in* the format: the max error evaluated in that dtype (every representable input in the "
          "interval, the coefficients, the SLAF kernel's arithmetic and its output; `slaf_approx.precision`) "
          "against the float64 target.", ""]
    counts = []
    for d in dtypes:
        rs = [r for r in rounded if r["coef_dtype"] == d]
        wins = sum(r["max_error"] < r["naive_error"] for r in rs)
        worse = sum(r["max_error"] > r["naive_error"] for r in rs)
        counts.append(f"{d}: aware beats naive in {wins} of {len(rs)} fits"
                      + (f", **worse in {worse}**" if worse else ", never worse") + _in_format(rs, d))
    md += ["; ".join(counts) + ".", ""]
    keys = sorted({_series(r) for r in rounded},
                  key=lambda s: (s[0], s[1], s[2], order(s[3:])))
    header = ["n", "float64"] + [h for d in dtypes for h in (f"{d} naive", f"{d} aware", f"{d} floor",
                                                               f"naive in {d}", f"aware in {d}")]
    for s in keys:
        degrees = table_degrees(r["degree"] for r in rounded if _series(r) == s)
        rows = []
        for n in degrees:
            f64 = best.get((s, n))
            row = [n, fmt(f64["max_error"]) if f64 else "–"]
            for d in dtypes:
                r = by.get((s, d, n))
                row += [fmt(r.get(k)) if r else "–" for k in COLUMNS]
            rows.append(row)
        md += [f"**{s[0]} on {interval(s[1], s[2])}, {s[3]}, {basis_label(s[4], s[5], s[6])}**", "",
               split_table(header, rows, keep=1)]
    return md


def _in_format(rs: Sequence[dict], dtype: str) -> str:
    """How the two roundings compare when evaluated in the format itself (where that was measured): the
    search minimises the exact error, and the format's own arithmetic may dominate either."""
    pairs = [(r.get("coef_achieved_error"), r.get("naive_achieved_error")) for r in rs]
    pairs = [(a, n) for a, n in pairs if a is not None and n is not None and a == a and n == n]
    if not pairs:
        return ""
    better = sum(a < n for a, n in pairs)
    worse = sum(a > n for a, n in pairs)
    return (f" (evaluated in {dtype}: better in {better}, equal in {len(pairs) - better - worse}, worse in "
            f"{worse} of {len(pairs)})")
