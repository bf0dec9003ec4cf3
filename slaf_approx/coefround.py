"""Coefficients fitted for a storage format: a rounding-aware fit, in the spirit of Sollya's fpminimax.

An SLAF keeps its coefficients in a parameter of some dtype (float32, bfloat16, float16). Rounding each
float64 coefficient of the best fit to that dtype ("naive rounding") adds up to half an ulp of every
coefficient to the error; in bfloat16 (8 significant bits) that swamps the approximation error from low
degrees on. :func:`round_coefficients` does better by choosing representable values jointly:

1. Coefficients are fixed one at a time, largest first (by the absolute error their rounding can cause,
   |c_k| max |phi_k|): the small ones, whose ulps are fine in absolute terms, absorb the rounding of the
   large ones.
2. Each is fixed at its lower or its upper representable neighbour, whichever leaves the smaller error after
   the free coefficients are refitted: a discrete minimax (a linear programme) of the residual over the
   free basis functions on a dense grid of the interval (Chebyshev points per panel, split at the kinks).
3. A lattice polish: each coefficient is moved by one ulp up or down while that lowers the grid error.

The result is measured exactly (:func:`~slaf_approx.problem.measure`, or the problem's weighted error) and
compared with naive rounding, also measured exactly; the better of the two is returned, so it is never worse.
The coefficients live where the SLAF kernels read them: in the record's basis, of its variable (the mapped t
or the raw x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import norms
from .problem import FitProblem, measure


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: `bits` significant bits (the implicit one included), smallest
    subnormal 2**`min_exp`, largest finite value `max`."""

    name: str
    bits: int
    min_exp: int
    max: float


#: the coefficient dtypes, as torch names them (IEEE binary64, binary32, binary16 and Google's bfloat16)
FORMATS = {f.name: f for f in (
    Format("float64", 53, -1074, float(np.finfo(np.float64).max)),
    Format("float32", 24, -149, float(np.finfo(np.float32).max)),
    Format("bfloat16", 8, -133, 3.3895313892515355e38),  # (2 - 2**-7) * 2**127
    Format("float16", 11, -24, 65504.0),
)}
COEF_DTYPES = tuple(FORMATS)
#: lattice polish: at most this many passes over the coefficients
POLISH_PASSES = 4


def check_coef_dtype(name) -> Format:
    """The format named `name`; ValueError naming it and the allowed ones otherwise."""
    if not isinstance(name, str) or name not in FORMATS:
        raise ValueError(f"unknown coef_dtype {name!r}; allowed: {', '.join(COEF_DTYPES)}")
    return FORMATS[name]


def _quantum(x: np.ndarray, fmt: Format) -> np.ndarray:
    """The spacing of fmt's values in the binade of x (2**min_exp among the subnormals and at 0)."""
    _, e = np.frexp(x)  # x = m 2**e with 1/2 <= |m| < 1: the binade [2**(e-1), 2**e) has spacing 2**(e-bits)
    return np.ldexp(1.0, np.maximum(e - fmt.bits, fmt.min_exp))


def round_to(x, dtype: str, mode: str = "nearest") -> np.ndarray:
    """x (float64) rounded to the format `dtype`, as float64 values: to nearest (ties to even, as torch's and
    numpy's conversions), "down" or "up". Beyond the largest finite value: +-inf (as a conversion gives)."""
    fmt = check_coef_dtype(dtype)
    x = np.asarray(x, dtype=float)
    q = _quantum(x, fmt)
    op = {"nearest": np.rint, "down": np.floor, "up": np.ceil}[mode]
    r = op(x / q) * q  # x / q is exact (q a power of two, x / q within float64's range)
    return np.where(np.abs(r) > fmt.max, np.copysign(math.inf, r), r)


def representable(x, dtype: str) -> bool:
    """Whether every value of x is exactly a value of the format."""
    x = np.asarray(x, dtype=float)
    return bool(np.all(round_to(x, dtype) == x))


def _step(v: float, fmt: Format, up: bool) -> float:
    """The representable neighbour of the representable v, one ulp up or down."""
    return float(np.nextafter(v, math.inf if up else -math.inf)) if fmt.bits == 53 else \
        float(round_to(np.nextafter(v, math.inf if up else -math.inf), fmt.name, "up" if up else "down"))


@dataclass
class Rounded:
    """The outcome: representable coefficients, their exact error, naive rounding's, and which won."""

    coefficients: np.ndarray
    naive: np.ndarray  # the coefficients rounded to nearest
    error: float
    naive_error: float
    aware_error: float
    chose: str  # "rounding-aware" or "naive"

    def note(self, dtype: str) -> str:
        if self.chose == "naive":
            return (f"coefficients rounded to {dtype}: naive rounding kept (the rounding-aware search "
                    f"reached {self.aware_error:.3g}, not below naive rounding's {self.naive_error:.3g})")
        return (f"coefficients rounded to {dtype}: rounding-aware fit, error {self.error:.3g} against naive "
                f"rounding's {self.naive_error:.3g}")


def _grid(problem: FitProblem, degree: int) -> np.ndarray:
    """Chebyshev points of every panel (split at the kinks), panel ends included: the discrete sup's grid."""
    edges = norms.breakpoints(problem.lo, problem.hi, problem.breaks)
    k = max(64, 12 * (degree + 1))
    s = 0.5 - 0.5 * np.cos(np.pi * np.arange(k + 1) / k)
    return np.unique(np.concatenate([a + (b - a) * s for a, b in zip(edges[:-1], edges[1:], strict=True)]))


class _Search:
    """The grid, its Vandermonde and weights, and the discrete minimax refit of the free coefficients."""

    def __init__(self, problem: FitProblem, degree: int):
        x = _grid(problem, degree)
        self.V = problem.basis.vander(problem.argument(x), degree)
        self.y = problem.f(x)
        self.w = problem.weights(x)

    def error(self, c: np.ndarray) -> float:
        return float(np.max(self.w * np.abs(self.y - self.V @ c)))

    def refit(self, c: np.ndarray, free: list[int]) -> tuple[np.ndarray, float]:
        """c with its `free` entries replaced by the discrete minimax of the residual (the others fixed)."""
        from scipy.optimize import linprog

        r = self.w * (self.y - self.V @ c)
        scale = float(np.max(np.abs(r)))
        if not free or scale == 0.0:
            return c, scale
        # the correction d to the free entries, in units of the current error: the LP's absolute tolerances
        # then act relative to the error, whatever its size
        A = self.w[:, None] * self.V[:, free]
        cols = np.sqrt(np.square(A).sum(0))
        cols[cols == 0] = 1.0
        A = A / cols
        b = r / scale
        m = len(free)
        one = np.ones((len(b), 1))
        res = linprog(np.r_[np.zeros(m), 1.0], A_ub=np.block([[A, -one], [-A, -one]]), b_ub=np.r_[b, -b],
                      bounds=[(None, None)] * m + [(0, None)], method="highs")
        if res.status != 0:
            return c, scale
        out = c.copy()
        out[free] += res.x[:m] * scale / cols
        return out, self.error(out)


def round_coefficients(problem: FitProblem, coefficients, dtype: str) -> Rounded:
    """Representable coefficients (in the problem's basis and variable) for a small error of the polynomial
    they make, searched as the module describes (a heuristic, as fpminimax is); never worse than naive
    rounding."""
    fmt = check_coef_dtype(dtype)
    c = np.asarray(coefficients, dtype=float)
    degree = len(c) - 1
    naive = round_to(c, dtype)
    naive_error = _objective(problem, naive)
    if fmt.bits == 53 or not np.all(np.isfinite(naive)):
        return Rounded(naive, naive, naive_error, naive_error, naive_error, "naive")
    s = _Search(problem, degree)
    keep = set(problem.basis.parity_columns(degree, problem.parity).tolist())
    movable = [k for k in range(degree + 1) if k in keep and c[k] != 0.0]
    size = np.max(np.abs(s.V), axis=0)
    order = sorted(movable, key=lambda k: -abs(c[k]) * size[k])
    cur, fixed = c.copy(), set()
    for k in order:
        fixed.add(k)
        free = [j for j in order if j not in fixed]
        best = None
        neighbours = (float(round_to(cur[k], dtype, "down")), float(round_to(cur[k], dtype, "up")))
        for v in dict.fromkeys(neighbours):  # one candidate when cur[k] is representable already
            trial = cur.copy()
            trial[k] = v
            trial, err = s.refit(trial, free)
            if best is None or err < best[1]:
                best = (trial, err)
        cur = best[0]
    cur = _polish(s, cur, order, fmt)
    aware_error = _objective(problem, cur)
    if aware_error < naive_error:
        return Rounded(cur, naive, aware_error, naive_error, aware_error, "rounding-aware")
    return Rounded(naive, naive, naive_error, naive_error, aware_error, "naive")


def _polish(s: _Search, c: np.ndarray, movable: list[int], fmt: Format) -> np.ndarray:
    """Coordinate descent on the format's lattice: one-ulp moves that lower the grid error."""
    err = s.error(c)
    for _ in range(POLISH_PASSES):
        improved = False
        for k in movable:
            for up in (False, True):
                trial = c.copy()
                trial[k] = _step(c[k], fmt, up)
                e = s.error(trial)
                if e < err:
                    c, err, improved = trial, e, True
        if not improved:
            break
    return c


#: the bases with phi_0 = 1 whose other functions have mean 0 under a probability measure on [-1, 1] (of the
#: mapped t): Chebyshev polynomials under dt / (pi sqrt(1 - t^2)), Legendre polynomials under dt / 2
MEAN_FREE = ("chebyshev", "legendre")


def constant_floor(problem: FitProblem, dtype: str) -> float:
    """A lower bound on the max error of every polynomial, of any degree, in the problem's basis whose
    constant coefficient c_0 is representable in `dtype`; nan where none is known.

    For a basis of MEAN_FREE with its measure mu (mapped variable, uniform weight): every phi_k, k >= 1,
    has mean 0 under mu, so sup |f - p| >= |integral of (f - p) dmu| = |m(f) - c_0| with m(f) the mean of f,
    and c_0 lies on the format's lattice: the error is at least the distance from m(f) to the nearest value
    of the format. m(f) by Gauss-Legendre on panels split at the kinks; the difference between two
    quadratures (an error estimate) is subtracted, so that the bound stays a bound.
    """
    check_coef_dtype(dtype)
    if problem.basis.name not in MEAN_FREE or problem.variable != "mapped" or problem.weight != "uniform":
        return math.nan
    means = [_mean(problem, n) for n in (24, 32)]
    m = means[-1]
    slack = abs(means[1] - means[0]) + 64 * np.finfo(float).eps * max(abs(m), 1e-300)
    dist = min(abs(m - float(round_to(m, dtype, "down"))), abs(float(round_to(m, dtype, "up")) - m))
    return max(0.0, dist - slack)


def _mean(problem: FitProblem, n: int) -> float:
    """m(f) under the basis' measure, n-point Gauss-Legendre on 64 panels per piece between the kinks."""
    kinks = np.asarray(problem.breaks_t())
    if problem.basis.name == "chebyshev":  # t = cos(theta), theta uniform on [0, pi]
        ends = np.sort(np.r_[0.0, np.arccos(np.clip(kinks, -1, 1)), np.pi])
        to_t, length = np.cos, np.pi
    else:
        ends = np.sort(np.r_[-1.0, kinks, 1.0])
        to_t, length = (lambda u: u), 2.0
    pieces = [np.linspace(a, b, 65) for a, b in zip(ends[:-1], ends[1:], strict=True)]
    edges = np.unique(np.concatenate(pieces))
    u, w = norms.gauss_nodes(edges, n)
    return float(np.dot(w, problem.f_t(to_t(u)))) / length


def _objective(problem: FitProblem, c: np.ndarray) -> float:
    """The exact max error of the polynomial with coefficients c (weighted, under a weighted problem)."""
    g = problem.polynomial(c)
    if problem.weight == "uniform":
        return measure(problem, g)[0]
    return problem.weighted_max_error(g)[0]
