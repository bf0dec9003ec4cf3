"""What a formula says about itself: its kinks, Lipschitz constant and complex singularities.

Plain functions of a target's evaluators -- ``f`` (float64, vectorised), ``fmp`` (mpmath, real or
complex argument) and the formula's switching functions (:meth:`slaf_approx.expr.Expression.
switching_functions`) -- used by the catalogue to fill in the fields an entry leaves out and to verify
the ones it declares.  Every function raises ValueError (without a location; the caller adds the file
and field) when the formula is not fit to be a target.

The catalogue's real domain is ``[-DOMAIN, DOMAIN]``: a formula must be finite there, its Lipschitz
constant is the supremum of |f'| there, and kinks are searched there.

* **Kinks** are the zeros of the switching functions (sign changes on the grid ``scan_grid()``, refined
  by bisection to adjacent floats) at which f is not analytic: the one-sided Taylor polynomials of
  degree 3 of f (at 50 digits, from 6 points on each side) differ.  A jump of f itself is refused.
* **Lipschitz constant**: max |f'| from central differences on ``scan_grid()``, one-sided second-order
  differences at each kink, and golden-section refinement around the 8 largest local maxima (step
  2**-17 relative: truncation and rounding both ~1e-10; at most 3e-11 on the shipped targets).
* **Singularities** (analytic targets): the Chebyshev coefficients of f on windows [c - 1, c + 1],
  c = -6, ..., 6, decay like rho**-n, with rho the Bernstein-ellipse parameter of the nearest
  singularity (Trefethen, ATAP, ch. 8).  The tail of the coefficient envelope gives rho per window; the
  window with the smallest rho locates the singularity, whose position is fitted to the rhos of it and
  its neighbours.  A declared singularity is checked to be one (|f'| grows at least 10x between
  distances 1e-4 and 1e-6 relative, approaching it, with mpmath).

References:
    L. N. Trefethen, Approximation Theory and Approximation Practice, SIAM 2013 (ch. 8: Chebyshev
    coefficients of analytic functions decay like rho**-n).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import mpmath
import numpy as np

__all__ = ["DOMAIN", "LIPSCHITZ_SAFETY", "MIN_SINGULARITY_DISTANCE", "NEARER", "chebyshev_rhos",
           "classify_point", "ellipse_rho", "estimate_singularities", "find_kinks", "is_singular",
           "lipschitz_sup", "nearer_than_declared", "nearest_distance", "scan_grid", "singularity_in_strip"]

Fn = Callable[[np.ndarray], np.ndarray]

#: the real domain of every target
DOMAIN = 1e4
#: an estimated Lipschitz constant is the sampled max |f'| times this (it covers a maximum missed
#: between grid points narrower than the grid step, 1/128 on [-64, 64])
LIPSCHITZ_SAFETY = 1.01
#: declared singularities nearer than this to the real axis are taken as declared, not verified: the growth
#: of |f'| towards them is measured at distances 1e-4..1e-6, which such a singularity does not separate
#: from the real axis (swish with beta = 1e308 has its poles 3e-308 off the axis and is relu to float64).
#: The quadrature grades its panels towards them (norms.quadrature_for), so they cost little.
MIN_SINGULARITY_DISTANCE = 1e-3
#: at most this many kink candidates (sign changes of switching functions) are examined
MAX_CANDIDATES = 64

_STEP = 2.0**-17  # relative difference step: ~eps**(1/3)
_WINDOW_CENTRES = np.arange(-6.0, 6.5, 1.0)
_WINDOW_RADIUS = 1.0
_CHEB_N = 96
#: the decay is measured on coefficients above this fraction of f's largest value (100x float64 noise)
_FLOOR = 1e-11
#: measured rhos are capped here: a window at the cap resolves no singularity (none within ~8 of it)
_RHO_CAP = 16.0
#: windows where f differs from a straight line by less than this fraction of its largest value are
#: not examined
_TAIL = 1e-6
#: a window shows a singularity nearer than the declared ones when its measured log(rho) is below this
#: fraction of the declared ones' (on the shipped analytic targets, with swish's beta from 0.2 to 10,
#: the measured/declared ratio lies in [0.776, 1.143])
NEARER = 0.7


@cache
def scan_grid() -> np.ndarray:
    """Step 1/128 on [-64, 64], geometric (257 points) out to +-DOMAIN."""
    tail = np.geomspace(64.0, DOMAIN, 257)
    return np.unique(np.concatenate([np.linspace(-64.0, 64.0, 2**14 + 1), tail, -tail]))


def _values(f: Fn, x: np.ndarray) -> np.ndarray:
    y = np.asarray(f(x), dtype=np.float64)
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"is not finite at x = {float(np.asarray(x)[bad][0])!r}")
    return y


# --------------------------------------------------------------------------------------------------
# Kinks
# --------------------------------------------------------------------------------------------------
def _roots(g: Fn, grid: np.ndarray) -> np.ndarray:
    v = np.asarray(g(grid), dtype=np.float64)
    ok = np.isfinite(v)
    x, v = grid[ok], v[ok]
    exact = x[v == 0]
    i = np.flatnonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)
    a, b, va = x[i], x[i + 1], v[i]
    for _ in range(80):  # bisection down to adjacent floats
        m = 0.5 * (a + b)
        if np.all((m == a) | (m == b)):
            break
        vm = np.asarray(g(m), dtype=np.float64)
        left = np.sign(vm) == np.sign(va)
        a, b = np.where(left, m, a), np.where(left, b, m)
        va = np.where(left, vm, va)
    return np.concatenate([exact, np.where(np.abs(np.asarray(g(a))) <= np.abs(np.asarray(g(b))), a, b)])


@cache
def _interpolation_weights() -> list[list[tuple[int, int]]]:
    """Rows j: weights w_jk such that sum_k w_jk y_k is the t**j coefficient of the polynomial through
    (k, y_k), k = 1..6 (the exact inverse of the Vandermonde matrix, in rationals)."""
    from fractions import Fraction

    n = 6
    a = [[Fraction(k) ** j for j in range(n)] + [Fraction(int(i == r)) for i in range(n)]
         for r, k in enumerate(range(1, n + 1))]
    for col in range(n):  # Gauss-Jordan elimination
        pivot = next(r for r in range(col, n) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        a[col] = [v / a[col][col] for v in a[col]]
        for r in range(n):
            if r != col and a[r][col] != 0:
                a[r] = [v - a[r][col] * u for v, u in zip(a[r], a[col], strict=True)]
    inverse = [row[n:] for row in a]  # inverse[j][k]: coefficient j from value k
    return [[(v.numerator, v.denominator) for v in row] for row in inverse]


def _one_sided(fmp: Callable, c: float, side: int) -> list:
    """[f, f', f'', f'''] at c from one side: the interpolant of f at c + side*k*h, k = 1..6."""
    h = mpmath.mpf(1e-5 * max(1.0, abs(c)))
    ts = [side * k * h for k in range(1, 7)]
    ys = []
    for t in ts:
        try:
            y = fmp(mpmath.mpf(c) + t)
        except (ArithmeticError, ValueError) as exc:
            raise ValueError(f"cannot be evaluated near x = {c!r}: {exc}") from None
        if not isinstance(y, mpmath.mpf) or not mpmath.isfinite(y):
            raise ValueError(f"is not finite and real near x = {c!r}: f({mpmath.nstr(c + t, 8)}) = {y}")
        ys.append(y)
    scale = side * h
    return [sum(y * num / den for (num, den), y in zip(row, ys, strict=True)) * math.factorial(j) / scale**j
            for j, row in enumerate(_interpolation_weights()[:4])]


def classify_point(fmp: Callable, c: float) -> bool:
    """True if f has a kink at c (a one-sided derivative of order <= 3 jumps), False if f is smooth
    there; ValueError if f itself jumps."""
    with mpmath.workdps(50):
        left, right = _one_sided(fmp, c, -1), _one_sided(fmp, c, 1)
        # the one-sided interpolants are accurate to ~h**(6 - j) relative for derivative j (h = 1e-5)
        jumps = [abs(b - a) > mpmath.mpf(1e-9) * (abs(a) + abs(b)) + mpmath.mpf(10) ** -12
                 for a, b in zip(left, right, strict=True)]
        if jumps[0]:
            raise ValueError(f"jumps at x = {c!r} (from {mpmath.nstr(left[0], 8)} to "
                             f"{mpmath.nstr(right[0], 8)}): a target must be continuous")
    return any(jumps[1:])


def find_kinks(fmp: Callable, switches: Sequence[Fn]) -> tuple[float, ...]:
    """The kinks of f on [-DOMAIN, DOMAIN], sorted."""
    candidates = np.unique(np.concatenate([_roots(g, scan_grid()) for g in switches] or [np.empty(0)]))
    candidates = candidates[np.abs(candidates) <= DOMAIN]
    if candidates.size > MAX_CANDIDATES:
        raise ValueError(f"has {candidates.size} candidate kinks on [-{DOMAIN:g}, {DOMAIN:g}] (zeros of the "
                         f"arguments of abs, maximum, minimum, clip, where, sqrt); at most {MAX_CANDIDATES} "
                         "are supported")
    return tuple(float(c) for c in candidates if classify_point(fmp, float(c)))


# --------------------------------------------------------------------------------------------------
# Lipschitz constant
# --------------------------------------------------------------------------------------------------
def _central(f: Fn, x: np.ndarray) -> np.ndarray:
    h = _STEP * np.maximum(1.0, np.abs(x))
    hi, lo = x + h, x - h
    return np.abs(_values(f, hi) - _values(f, lo)) / (hi - lo)


def _one_sided_slope(f: Fn, k: float, side: int, step: float) -> float:
    d = side * step * max(1.0, abs(k))
    y = _values(f, np.array([k, k + d, k + 2 * d]))
    return abs(-3 * y[0] + 4 * y[1] - y[2]) / (2 * abs(d))


def lipschitz_sup(f: Fn, kinks: Sequence[float] = (), near: Sequence[complex] = ()) -> tuple[float, float]:
    """(max |f'| on [-DOMAIN, DOMAIN], where); ValueError if |f'| is unbounded at a kink.

    `near`: complex singularities; within a few times its distance b of the axis a singularity can make
    |f'| peak more narrowly than the grid step, so the real points near each are sampled at steps ~b too.
    """
    x = scan_grid()
    for k in kinks:
        x = x[np.abs(x - k) > 4 * _STEP * max(1.0, abs(k))]
    d = _central(f, x)
    best, at = (float(d.max()), float(x[np.argmax(d)])) if d.size else (0.0, 0.0)
    for z in near:
        b = abs(z.imag)
        if 0 < b < 64 * _STEP and abs(z.real) <= DOMAIN:
            xz = z.real + b * np.linspace(-4.0, 4.0, 257)
            h = b * 2.0**-12
            dz = np.abs(_values(f, xz + h) - _values(f, xz - h)) / ((xz + h) - (xz - h))
            if dz.max() > best:
                best, at = float(dz.max()), float(xz[np.argmax(dz)])
    for k in kinks:
        for side in (-1, 1):
            slope = _one_sided_slope(f, k, side, _STEP)
            finer = _one_sided_slope(f, k, side, _STEP / 64)
            if finer > 1.5 * slope + 1e-300 and finer > 1e-8:
                raise ValueError(f"has an unbounded derivative at x = {k!r} (one-sided slopes {slope:.4g} "
                                 f"and {finer:.4g} at steps {_STEP:.2g} and {_STEP / 64:.2g}): it is not "
                                 "Lipschitz")
            if slope > best:
                best, at = slope, k
    # refine around the largest local maxima of the sampled |f'|, all brackets at once
    if d.size >= 3:
        peaks = np.flatnonzero((d[1:-1] >= d[:-2]) & (d[1:-1] >= d[2:])) + 1
        peaks = peaks[np.argsort(-d[peaks])][:8]
        peaks = np.array([i for i in peaks if not any(x[i - 1] <= k <= x[i + 1] for k in kinks)], dtype=int)
        if peaks.size:
            xm, dm = _golden_max(lambda z: _central(f, z), x[peaks - 1], x[peaks + 1])
            if dm.max() > best:
                best, at = float(dm.max()), float(xm[np.argmax(dm)])
    return best, at


def _golden_max(g: Fn, a: np.ndarray, b: np.ndarray, steps: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Golden-section search for the maximum of g on each bracket [a_i, b_i] (vectorised)."""
    invphi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - invphi * (b - a), a + invphi * (b - a)
    gc, gd = g(c), g(d)
    for _ in range(steps):
        left = gc >= gd
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - invphi * (b - a), a + invphi * (b - a))
        gnew = g(new)
        c, d, gc, gd = (np.where(left, new, d), np.where(left, c, new), np.where(left, gnew, gd),
                        np.where(left, gc, gnew))
    return np.where(gc >= gd, c, d), np.maximum(gc, gd)


# --------------------------------------------------------------------------------------------------
# Singularities
# --------------------------------------------------------------------------------------------------
def ellipse_rho(z: complex | np.ndarray, centre, radius: float) -> np.ndarray:
    """Bernstein-ellipse parameter of z for the interval [centre - radius, centre + radius]."""
    w = (np.asarray(z, dtype=complex) - centre) / radius
    s = np.sqrt(w - 1) * np.sqrt(w + 1)
    return np.maximum(np.abs(w + s), np.abs(w - s))


@cache
def _chebyshev_matrix(n: int) -> tuple[np.ndarray, np.ndarray]:
    theta = np.pi * (np.arange(n + 1) + 0.5) / (n + 1)
    m = 2.0 / (n + 1) * np.cos(np.outer(np.arange(n + 1), theta))
    m[0] /= 2
    return np.cos(theta), m


def chebyshev_rhos(f: Fn, centres: np.ndarray = _WINDOW_CENTRES, radius: float = _WINDOW_RADIUS,
                   n: int = _CHEB_N) -> np.ndarray:
    """Per window [c - radius, c + radius], the decay rate rho of f's Chebyshev coefficients (capped)."""
    t, m = _chebyshev_matrix(n)
    x = centres[:, None] + radius * t[None, :]
    y = _values(f, x.ravel()).reshape(x.shape)
    a = np.abs(y @ m.T)
    # one noise floor for all windows: a singularity whose coefficients stay below float64 resolution of
    # f's largest values is invisible to every fit (and an entire f that is tiny and fast-varying on a
    # window, like GELU near -8, would otherwise look singular)
    top = np.max(np.abs(y))
    scale = np.full(len(centres), top)
    env = np.maximum.accumulate(a[:, ::-1], axis=1)[:, ::-1]  # max over the tail from each index
    rhos = np.full(len(centres), _RHO_CAP)
    for i in range(len(centres)):
        # Skip windows where f is a straight line up to _TAIL of its largest value: there f is a line
        # plus an exponential tail (GELU, SiLU for |x| >> 1) whose fast relative variation imitates a
        # singularity, while any singularity seen there changes a fit by less than _TAIL.
        if np.max(a[i, 2:]) < _TAIL * top:
            continue
        above = np.flatnonzero(env[i] > _FLOOR * scale[i])
        end = int(above[-1]) if above.size else 0
        if end < 8:  # (nearly) a polynomial of degree < 8 on this window
            continue
        lo = max(2, end // 2)
        j = np.arange(lo, end + 1)
        slope = np.polyfit(j, np.log(env[i, j]), 1)[0]
        rhos[i] = min(_RHO_CAP, math.exp(-slope)) if slope < 0 else 1.0
    return rhos


def _distance(rho: np.ndarray, radius: float = _WINDOW_RADIUS) -> np.ndarray:
    """Semi-minor axis of the Bernstein ellipse: the largest Im z of a point on it."""
    return radius * (rho * rho - 1) / (2 * rho)


def nearest_distance(f: Fn, centres: np.ndarray = _WINDOW_CENTRES,
                     radius: float = _WINDOW_RADIUS) -> tuple[float, float]:
    """(smallest distance from the real axis of a singularity seen by a window, that window's centre);
    (inf, nan) when no window resolves one.  Needs only float64 values of f, so it also screens plain
    callables (pass windows covering the fit interval)."""
    rhos = chebyshev_rhos(f, np.asarray(centres, dtype=float), radius)
    i = int(np.argmin(rhos))
    if rhos[i] >= _RHO_CAP:
        return math.inf, math.nan
    return float(_distance(np.array(rhos[i]), radius)), float(np.asarray(centres)[i])


def estimate_singularities(f: Fn) -> tuple[complex, ...]:
    """Estimated singularities nearest to the real axis (Im > 0), or () if none is resolved (entire).

    One per local minimum of rho over the windows; each located by fitting the ellipse parameters of a
    point z to the measured rhos of its window and the two neighbours (grid search)."""
    rhos = chebyshev_rhos(f)
    if np.all(rhos >= _RHO_CAP):
        return ()
    found = []
    dist = _distance(rhos)
    for i in range(len(rhos)):
        if rhos[i] >= _RHO_CAP or dist[i] > 3 * dist.min():
            continue
        if (i > 0 and rhos[i - 1] < rhos[i]) or (i + 1 < len(rhos) and rhos[i + 1] <= rhos[i]):
            continue
        nb = [j for j in (i - 1, i, i + 1) if 0 <= j < len(rhos) and rhos[j] < _RHO_CAP]
        c = _WINDOW_CENTRES[i]
        re = np.linspace(c - 1, c + 1, 81)
        im = np.linspace(max(dist[i] * 0.5, 1e-6), dist[i] * 1.5, 81)
        z = re[:, None] + 1j * im[None, :]
        cost = sum((np.log(ellipse_rho(z, _WINDOW_CENTRES[j], _WINDOW_RADIUS)) - math.log(rhos[j])) ** 2
                   for j in nb)
        k = np.unravel_index(np.argmin(cost), cost.shape)
        found.append(complex(z[k]))
    return tuple(sorted(found, key=lambda z: (z.imag, z.real)))


def nearer_than_declared(f: Fn, declared: Sequence[complex]) -> tuple[float, complex] | None:
    """(window centre, estimated singularity) for a window whose Chebyshev coefficients decay clearly
    slower than the declared singularities allow -- a singularity nearer than any declared one -- or
    None.  Clearly: the measured log(rho) is below NEARER times the declared one."""
    rhos = chebyshev_rhos(f)
    for i, c in enumerate(_WINDOW_CENTRES):
        if rhos[i] >= _RHO_CAP:
            continue
        if declared:
            points = np.array([*declared, *(z.conjugate() for z in declared)])
            expected = float(np.min(ellipse_rho(points, c, _WINDOW_RADIUS)))
        else:
            expected = math.inf
        if math.log(rhos[i]) < NEARER * math.log(expected):
            return float(c), complex(c, float(_distance(np.array(rhos[i]))))
    return None


#: circles of this radius centred at -6, -4, ..., 6 cover the strip |Im z| < sqrt(3.5**2 - 1) = 3.35
_CIRCLE_CENTRES = np.arange(-6.0, 6.5, 2.0)
_CIRCLE_RADIUS = 3.5
_CIRCLE_POINTS = 256
#: negative-frequency Fourier coefficients of f on a circle above this fraction of max |f| there mean a
#: singularity inside (analytic f: ~1e-16 for GELU; a pole or branch point: >= 2e-6 for every shipped
#: analytic target)
_CIRCLE_DEFECT = 1e-8


def singularity_in_strip(fc: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float] | None:
    """(circle centre, defect) of a circle around which f is not analytic, or None.

    ``fc`` evaluates f's analytic continuation at complex points (complex128).  On a circle around c
    f(c + R e^{it}) = sum a_n R^n e^{int} has no negative frequencies when f is analytic inside: their
    size relative to max |f| on the circle (trapezoidal rule, 256 points; exact to rounding for
    analytic f) detects a pole or branch point in the strip |Im z| < 3.35 over |Re z| <= 6.
    """
    theta = 2 * np.pi * np.arange(_CIRCLE_POINTS) / _CIRCLE_POINTS
    z = _CIRCLE_CENTRES[:, None] + _CIRCLE_RADIUS * np.exp(1j * theta)[None, :]
    values = np.asarray(fc(z.ravel()), dtype=np.complex128).reshape(z.shape)
    for i, c in enumerate(_CIRCLE_CENTRES):
        v = values[i]
        if not np.all(np.isfinite(v)):
            return float(c), math.inf
        a = np.fft.fft(v) / _CIRCLE_POINTS
        defect = float(np.max(np.abs(a[_CIRCLE_POINTS // 2 + 1:])) / max(np.max(np.abs(v)), 1e-300))
        if defect > _CIRCLE_DEFECT:
            return float(c), defect
    return None


def is_singular(fmp: Callable, z: complex) -> bool:
    """True if |f'| grows at least 10x from z*(1 - 1e-4) to z*(1 - 1e-6) (poles grow 1e4x, logarithmic
    branch points 100x); f is evaluated in mpmath at 30 digits."""
    with mpmath.workdps(30):
        zz = mpmath.mpc(z.real, z.imag)

        def slope(delta: float) -> mpmath.mpf:
            p = zz * (1 - mpmath.mpf(delta))
            h = abs(zz) * mpmath.mpf(delta) / 100
            return abs((fmp(p + h) - fmp(p - h)) / (2 * h))

        try:
            near, nearer = slope(1e-4), slope(1e-6)
        except (ArithmeticError, ValueError, TypeError):
            return True  # the formula cannot even be evaluated there
        if not (mpmath.isfinite(near) and mpmath.isfinite(nearer)):
            return True
        return bool(nearer >= 10 * near)
