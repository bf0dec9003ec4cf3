"""Error norms of an approximation p to a target f on [lo, hi], computed to near float64 accuracy.

* ``rms_error``: sqrt( 1/(hi - lo) * integral of (f - p)^2 ), by composite Gauss-Legendre quadrature on
  panels split at the target's kinks, so that each panel's integrand is analytic.
* ``max_error``: sup |f - p|, from a dense grid refined at every local extremum by golden-section search.
* ``signed_extrema``: one extremum of the error per run of constant sign, the Remez exchange's input.

References:
    L. N. Trefethen, Approximation Theory and Approximation Practice, SIAM 2013: Gauss quadrature
    converges like rho**(-2N) for integrands analytic in the Bernstein ellipse of parameter rho (ch. 19).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

Fn = Callable[[np.ndarray], np.ndarray]

#: golden-section iterations: shrink a grid bracket by 0.618**48 ~ 1e-10, so the value at a smooth maximum
#: (error quadratic in the offset) is found to ~1e-20 of the bracket's curvature scale.
_GOLDEN_STEPS = 48
_INVPHI = (math.sqrt(5.0) - 1.0) / 2.0


def target_values(tg, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """tg(x) as float64; ValueError naming the first point where the target is not finite."""
    y = np.asarray(tg(x), dtype=float)
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"target {tg.name!r} is not finite on [{lo}, {hi}]: f({x[bad][0]!r}) = {y[bad][0]}")
    return y


def breakpoints(lo: float, hi: float, kinks: Sequence[float] = ()) -> np.ndarray:
    """lo, the kinks strictly inside (lo, hi), hi — sorted."""
    inner = sorted(k for k in kinks if lo < k < hi)
    return np.array([lo, *inner, hi], dtype=float)


def panels(lo: float, hi: float, kinks: Sequence[float] = (), max_len: float = math.inf) -> np.ndarray:
    """Breakpoints of a subdivision of [lo, hi] at the kinks, each piece no longer than max_len."""
    b = breakpoints(lo, hi, kinks)
    pieces = [b[:1]]
    for a, c in zip(b[:-1], b[1:], strict=True):
        m = max(1, math.ceil((c - a) / max_len)) if math.isfinite(max_len) else 1
        pieces.append(np.linspace(a, c, m + 1)[1:])
    return np.concatenate(pieces)


@cache
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def gauss_nodes(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite n-point Gauss-Legendre nodes and weights on the panels between `edges`."""
    t, w = _gauss_legendre(n)
    a, b = edges[:-1, None], edges[1:, None]
    half = 0.5 * (b - a)
    return (half * t + 0.5 * (a + b)).ravel(), (half * w).ravel()


def quadrature_for(lo, hi, kinks=(), degree=0, singularity_distance=math.nan):
    """Nodes and weights integrating (f - p)^2 for p of `degree` to ~1e-13 relative on [lo, hi].

    Each panel is at most as long as the distance to the target's nearest complex singularity (and at
    most 2), so the Bernstein ellipse of every panel has rho >= 1 + sqrt(2); with 2*degree + 64 nodes
    the polynomial part (degree 2n) is integrated exactly and the analytic part to rho**(-128).
    """
    d = singularity_distance if math.isfinite(singularity_distance) else 2.0
    return gauss_nodes(panels(lo, hi, kinks, min(2.0, d)), 2 * degree + 64)


def rms_error(f: Fn, p: Fn, lo: float, hi: float, kinks=(), degree=0, singularity_distance=math.nan) -> float:
    """sqrt( 1/(hi - lo) * integral_lo^hi (f - p)^2 dx )."""
    x, w = quadrature_for(lo, hi, kinks, degree, singularity_distance)
    e = f(x) - p(x)
    return math.sqrt(float(np.dot(w, e * e)) / (hi - lo))


def _grid(edges: np.ndarray, per_panel: int) -> np.ndarray:
    """Chebyshev-clustered points on each panel, panel ends included once."""
    s = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, per_panel + 1))
    a, b = edges[:-1, None], edges[1:, None]
    pts = (a + (b - a) * s[None, :-1]).ravel()
    return np.append(pts, edges[-1])


def _golden_max(g: Fn, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised golden-section search for the maximum of g on each bracket [a_i, b_i]."""
    a, b = a.copy(), b.copy()
    c = b - _INVPHI * (b - a)
    d = a + _INVPHI * (b - a)
    gc, gd = g(c), g(d)
    for _ in range(_GOLDEN_STEPS):
        left = gc >= gd  # the maximum lies in [a, d]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        new = np.where(left, b - _INVPHI * (b - a), a + _INVPHI * (b - a))
        gnew = g(new)
        c, d, gc, gd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, gnew, gd), np.where(left, gc, gnew))
    x = np.where(gc >= gd, c, d)
    return x, np.maximum(gc, gd)


def signed_extrema(e: Fn, edges: np.ndarray, per_panel: int) -> tuple[np.ndarray, np.ndarray]:
    """For each maximal run of grid points where e has one sign, the point of largest |e| and e there.

    The points are refined by golden-section search within their two grid neighbours (clipped to the
    panel, so a maximum sitting on a kink or an end is kept). Consecutive results alternate in sign.
    """
    x = _grid(edges, per_panel)
    v = e(x)
    sign = np.where(v >= 0.0, 1.0, -1.0)
    starts = np.flatnonzero(np.r_[True, sign[1:] != sign[:-1]])
    stops = np.r_[starts[1:], len(x)]
    best = np.array([s + int(np.argmax(np.abs(v[s:t]))) for s, t in zip(starts, stops, strict=True)])
    sgn = sign[best]
    lo = x[np.maximum(best - 1, 0)]
    hi = x[np.minimum(best + 1, len(x) - 1)]
    # keep each bracket inside the panel that holds the grid maximum (a kink must stay a bracket end)
    k = np.searchsorted(edges, x[best], side="right") - 1
    k = np.clip(k, 0, len(edges) - 2)
    on_edge = np.isin(x[best], edges)
    lo = np.where(on_edge, lo, np.maximum(lo, edges[k]))
    hi = np.where(on_edge, hi, np.minimum(hi, edges[k + 1]))
    xr, gr = _golden_max(lambda z: sgn * e(z), lo, hi)
    better = gr > sgn * v[best]
    xs = np.where(better, xr, x[best])
    return xs, np.where(better, sgn * gr, v[best])


def grid_size(degree: int) -> int:
    """Grid points per panel: enough to separate the <= degree + 2 extrema of a degree-n error."""
    return 8 * (degree + 2) + 32


def max_error(f: Fn, p: Fn, lo: float, hi: float, kinks=(), degree=0) -> tuple[float, float]:
    """(sup over [lo, hi] of |f - p|, where it is attained)."""
    xs, es = signed_extrema(lambda z: f(z) - p(z), breakpoints(lo, hi, kinks), grid_size(degree))
    i = int(np.argmax(np.abs(es)))
    return float(abs(es[i])), float(xs[i])
