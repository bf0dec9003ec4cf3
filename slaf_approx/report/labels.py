"""How the report names things: bases, series, methods, numbers, degree lists (no figures, no data access).

The command line prints fits with the same labels, so a fit reads the same in a terminal and in a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METHOD_ORDER = ("lstsq", "minimax", "gradient", "rational", "rational-minimax")
BASIS_ORDER = ("chebyshev", "legendre", "power", "hermite")
#: how a method is named in labels, where that differs from its name
METHOD_LABELS = {"rational": "rational-lstsq"}

SeriesKey = tuple[str, str, str, str]  # method, basis, variable, weight


def basis_label(basis: str, variable: str, weight: str = "uniform") -> str:
    """'chebyshev', 'power(raw)', 'power(mapped)', plus ' [weight]' for a non-uniform weight.

    A basis that only exists in the mapped variable is named alone; one that may also take the raw x (the
    power basis) always says which variable its coefficients are in.
    """
    s = basis if (variable == "mapped" and basis != "power") else f"{basis}({variable})"
    return s if weight == "uniform" else f"{s} [{weight}]"


def variable_text(variable: str, lo: float, hi: float) -> str:
    """A coefficient vector's variable in words: 'raw x' or 'mapped t = (2x - lo - hi)/(hi - lo) ...'."""
    if variable == "raw":
        return "raw x"
    return f"mapped t = (2x - lo - hi)/(hi - lo) in [-1, 1], lo = {lo:g}, hi = {hi:g}"


def method_key(r) -> str:
    """The series' method: the row's method, plus its form for a rational row ("rational (pau)")."""
    form = r.get("form") or ""
    return f"{r['method']} ({form})" if form else r["method"]


def base_method(m: str) -> str:
    """The method name of a series' method key ("rational (pau)" -> "rational")."""
    return m.split(" (")[0]


def method_label(m: str) -> str:
    """A method key as labels show it ('rational (pau)' -> 'rational-lstsq (pau)')."""
    base = base_method(m)
    return f"{METHOD_LABELS.get(base, base)}{m[len(base):]}"


def order(key: SeriesKey) -> tuple:
    m, b, v, w = key
    mi = METHOD_ORDER.index(base_method(m)) if base_method(m) in METHOD_ORDER else len(METHOD_ORDER)
    bi = BASIS_ORDER.index(b) if b in BASIS_ORDER else len(BASIS_ORDER)
    return (mi, m, bi, b, v != "raw", v, w != "uniform", w)


def series_label(key: SeriesKey) -> str:
    m, b, v, w = key
    return f"{method_label(m)}/{basis_label(b, v, w)}"


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


def interval(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


def complex_text(z: complex) -> str:
    if z.real == 0:
        return f"{z.imag:.4g}i"
    return f"{z.real:.4g}{z.imag:+.4g}i"


def degree_list(ds: Sequence[int]) -> str:
    """1, 2, 3, 7, 9, 10 -> '1–3, 7, 9–10'."""
    ds = sorted(ds)
    runs, start = [], ds[0]
    for a, b in zip(ds, [*ds[1:], None], strict=True):
        if b != a + 1:
            runs.append(f"{start}" if start == a else f"{start}–{a}")
            start = b
    return ", ".join(runs)
