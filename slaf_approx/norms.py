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


#: a target whose |f|, refined towards a local maximum of the grid, exceeds this many times its largest
#: value on the grid grows without bound there (a pole between grid points): a bounded function's local
#: maximum between two grid points of spacing h exceeds their values by O(h**2) relatively
BLOWUP = 1e6


def target_values(tg, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """tg(x) as float64, shaped like x; ValueError naming the first point where the target is not finite."""
    x = np.asarray(x, dtype=float)
    with np.errstate(all="ignore"):
        y = np.asarray(tg(x), dtype=float)
    if y.shape != x.shape:
        try:
            y = np.broadcast_to(y, x.shape).copy()
        except ValueError:
            raise ValueError(f"target {tg.name!r} is not vectorised: {x.shape} points gave values of "
                             f"shape {y.shape}") from None
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"target {tg.name!r} is not finite on [{lo}, {hi}]: f({x[bad][0]!r}) = {y[bad][0]}")
    return y


def check_bounded(f: Fn, edges: np.ndarray, name: str, per_panel: int = 512) -> None:
    """ValueError when f grows without bound in [edges[0], edges[-1]] (a pole the samples step over).

    Every local maximum of |f| on a dense grid is refined by golden-section search between its grid
    neighbours; a pole there drives |f| to ~1/(the final bracket), BLOWUP times past the grid's largest,
    and still growing: halving the search's steps loses a factor 0.618**-24 ~ 1e5 of it. (A narrow bounded
    peak the grid steps over also rises far above the grid, but the longer search no longer raises it.)
    """
    x = _grid(edges, per_panel)
    a = np.abs(f(x))
    nb = np.r_[-np.inf, a, -np.inf]
    i = np.flatnonzero((a >= nb[:-2]) & (a >= nb[2:]))
    absf = lambda z: np.abs(f(z))  # noqa: E731
    lo, hi = x[np.maximum(i - 1, 0)], x[np.minimum(i + 1, len(x) - 1)]
    xr, gr = _golden_max(absf, lo, hi)
    top = float(np.max(a))
    k = int(np.argmax(gr))
    if gr[k] > BLOWUP * max(top, np.finfo(float).tiny) and \
            gr[k] > 100.0 * _golden_max(absf, lo[k:k + 1], hi[k:k + 1], _GOLDEN_STEPS // 2)[1][0]:
        raise ValueError(f"target {name!r} is not finite on [{edges[0]}, {edges[-1]}]: it grows without "
                         f"bound near x = {float(xr[k])!r} (|f| = {float(gr[k]):.3g} there, at most "
                         f"{top:.3g} on a grid)")


def breakpoints(lo: float, hi: float, kinks: Sequence[float] = ()) -> np.ndarray:
    """lo, the kinks strictly inside (lo, hi), hi — sorted."""
    inner = sorted(k for k in kinks if lo < k < hi)
    return np.array([lo, *inner, hi], dtype=float)


def panels(lo: float, hi: float, kinks: Sequence[float] = (), max_len: float = math.inf) -> np.ndarray:
    """Breakpoints of a subdivision of [lo, hi] at the kinks, each piece no longer than max_len."""
    if not max_len > 0:
        raise ValueError(f"panel length must be > 0, got {max_len!r}")
    b = breakpoints(lo, hi, kinks)
    pieces = [b[:1]]
    for a, c in zip(b[:-1], b[1:], strict=True):
        count = (c - a) / max_len
        if count > 1e7:  # a caller's bug, not a target's property: graded_breaks keeps counts logarithmic
            raise ValueError(f"[{a}, {c}] in panels no longer than {max_len:.3g}: more than 1e7 panels")
        m = max(1, math.ceil(count))
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


#: grading towards a singularity or kink stops at this fraction of the interval: closer than that the
#: target is, to float64, not smooth there, and panels of this size resolve it like a kink
_GRADE_FLOOR = 2.0**-50
#: a legacy scalar singularity distance (no position) splits the interval into at most this many panels
MAX_PANELS = 4096


def graded_breaks(lo: float, hi: float, kinks: Sequence[float] = (),
                  foci: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """lo, hi, the kinks inside, and for each focus (c, delta): c and c +- delta * 2**k inside (lo, hi).

    Near a complex singularity at distance delta from its nearest real point c (or a kink, delta = 0), the
    integrand varies on the scale of the distance to c: panels growing geometrically from c keep every panel
    no longer than its distance from the singularity, with O(log(width / delta)) panels (delta is floored
    at 2**-50 of the width).
    """
    w = hi - lo
    pts = [lo, hi, *(k for k in kinks if lo < k < hi)]
    for c, delta in foci:
        delta = max(float(delta), w * _GRADE_FLOOR)
        steps = delta * 2.0 ** np.arange(64)
        steps = steps[steps < w]
        for s in (c - steps, c + steps):
            pts.extend(s[(s > lo) & (s < hi)].tolist())
        if lo < c < hi:
            pts.append(c)
    return np.unique(np.asarray(pts, dtype=float))


def singularity_foci(lo: float, hi: float, singularities=()) -> list[tuple[float, float]]:
    """(nearest real point c in [lo, hi], distance) for each complex singularity closer than 2 (the
    longest panel) to the interval."""
    out = []
    for z in singularities:
        z = complex(z)
        c = min(max(z.real, lo), hi)
        dist = abs(z - c)
        if dist < 2.0:
            out.append((c, dist))
    return out


def quadrature_for(lo, hi, kinks=(), degree=0, singularities=()):
    """Nodes and weights integrating (f - p)^2 for p of `degree` to ~1e-13 relative on [lo, hi].

    `singularities` are the target's complex singularities (conjugates implied). Panels are split at the
    kinks, graded towards each singularity near the interval (:func:`graded_breaks`) and at most 2 long, so
    the Bernstein ellipse of every panel has rho >= 1 + sqrt(2); with 2*degree + 64 nodes the polynomial
    part (degree 2n) is integrated exactly and the analytic part to rho**(-128). A bare number instead is a
    singularity distance of unknown position: uniform panels that long (at most MAX_PANELS of them).
    """
    if np.ndim(singularities) == 0:
        d = float(singularities) if math.isfinite(singularities) else 2.0
        max_len = max(min(2.0, d), (hi - lo) / MAX_PANELS)
        return gauss_nodes(panels(lo, hi, kinks, max_len), 2 * degree + 64)
    edges = graded_breaks(lo, hi, kinks, singularity_foci(lo, hi, singularities))
    return gauss_nodes(panels(lo, hi, edges[1:-1], 2.0), 2 * degree + 64)


def rms_error(f: Fn, p: Fn, lo: float, hi: float, kinks=(), degree=0, singularities=()) -> float:
    """sqrt( 1/(hi - lo) * integral_lo^hi (f - p)^2 dx ); `singularities` as for :func:`quadrature_for`."""
    x, w = quadrature_for(lo, hi, kinks, degree, singularities)
    e = f(x) - p(x)
    return math.sqrt(float(np.dot(w, e * e)) / (hi - lo))


def _grid(edges: np.ndarray, per_panel: int) -> np.ndarray:
    """Chebyshev-clustered points on each panel, panel ends included once."""
    s = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, per_panel + 1))
    a, b = edges[:-1, None], edges[1:, None]
    pts = (a + (b - a) * s[None, :-1]).ravel()
    return np.append(pts, edges[-1])


def _golden_max(g: Fn, a: np.ndarray, b: np.ndarray, steps: int = _GOLDEN_STEPS):
    """Vectorised golden-section search for the maximum of g on each bracket [a_i, b_i]."""
    a, b = a.copy(), b.copy()
    c = b - _INVPHI * (b - a)
    d = a + _INVPHI * (b - a)
    gc, gd = g(c), g(d)
    for _ in range(steps):
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


#: adaptive panels: Chebyshev points per panel, the most panels, the narrowest (relative to the interval),
#: and the width under which a panel marks a kink (f not smooth there, to float64)
_PANEL_POINTS = 33
MAX_ADAPTIVE_PANELS = 4096
_NARROWEST = 2.0**-40
_KINK_WIDTH = 2.0**-30


def adaptive_panels(f: Fn, lo: float, hi: float):
    """Panels on which f is resolved to rounding by its degree-32 Chebyshev interpolant, found by bisection.

    A panel whose interpolant's last 8 coefficients exceed 64 eps max|f| is halved, down to 2**-40 of the
    interval. Bisection grades the panels geometrically towards kinks and near singularities, as the fitting
    and the error measurement need. Where it went below 2**-30 of the interval, f is not smooth to float64:
    each such cluster of panels is a kink, placed at its narrowest panel's midpoint. Returns (interior
    breakpoints, kinks), or None when f needs more than MAX_ADAPTIVE_PANELS panels (noise, or oscillation
    the panels cannot resolve).
    """
    t = np.cos(np.pi * np.arange(_PANEL_POINTS) / (_PANEL_POINTS - 1))
    vscale = max(float(np.max(np.abs(f(np.linspace(lo, hi, 1025))))), np.finfo(float).tiny)
    tol, w = 64 * np.finfo(float).eps * vscale, hi - lo
    todo, done = [(lo, hi)], []
    while todo:
        if len(done) + len(todo) > MAX_ADAPTIVE_PANELS:
            return None
        a, b = todo.pop()
        c = np.polynomial.chebyshev.chebfit(t, f(0.5 * (b - a) * t + 0.5 * (a + b)), _PANEL_POINTS - 1)
        if np.max(np.abs(c[-8:])) <= tol or b - a <= _NARROWEST * w:
            done.append((a, b))
        else:
            m = 0.5 * (a + b)
            todo += [(a, m), (m, b)]
    done.sort()
    kinks, cluster = [], []
    for a, b in done + [(hi, hi + w)]:  # a sentinel closes the last cluster
        if b - a <= _KINK_WIDTH * w:
            cluster.append((b - a, 0.5 * (a + b)))
        elif cluster:
            kinks.append(min(cluster)[1])
            cluster = []
    return tuple(a for a, _ in done[1:]), tuple(kinks)


def grid_size(degree: int) -> int:
    """Grid points per panel: enough to separate the <= degree + 2 extrema of a degree-n error."""
    return 8 * (degree + 2) + 32


def max_error(f: Fn, p: Fn, lo: float, hi: float, kinks=(), degree=0) -> tuple[float, float]:
    """(sup over [lo, hi] of |f - p|, where it is attained)."""
    xs, es = signed_extrema(lambda z: f(z) - p(z), breakpoints(lo, hi, kinks), grid_size(degree))
    i = int(np.argmax(np.abs(es)))
    return float(abs(es[i])), float(xs[i])
