"""Rational approximation r = P / D of a target on [lo, hi]: least squares and best uniform (minimax).

The fitted :class:`~slaf_approx.ratfun.RationalFunction` (numerator, denominator, form "standard" P/(1 + Q)
or "pau" P/(1 + |Q|)) is defined in :mod:`slaf_approx.ratfun`. Both fits take a
:class:`~slaf_approx.problem.FitProblem` (:func:`rational_lstsq`, :func:`rational_minimax`);
:func:`fit_rational_lstsq` and :func:`fit_rational_minimax` build one from separate arguments.

The fits run in the mapped variable with Chebyshev polynomials (well conditioned) and convert the result to
the stated convention at the end; every error is then measured on the converted function.

* :func:`fit_rational_lstsq`: best L2 (weight uniform or given) on Gauss-Legendre panels split at the
  target's kinks: a Sanathanan-Koerner linearised start, then ``scipy.optimize.least_squares`` on the true
  residuals in the requested form.
* :func:`fit_rational_minimax`: best uniform approximation by the rational Remez exchange (each reference
  solved as a generalised eigenvalue problem; the start from a linearised Lawson iteration). Targets that
  are even, odd, constant + odd or linear + even on the interval are reduced to the half interval, as in
  :mod:`slaf_approx.remez`, where the exchange is not degenerate. The result is certified by de la Vallée
  Poussin's theorem: if f - r has a positive denominator and alternates in sign at N points (N = m + n + 2;
  in a reduced problem its own count), every r~ of type (m, n) has ||f - r~|| >= h = min |f - r| there.
  So h <= E_mn(f) <= E = max |f - r|, and the fit is converged when E - h <= rtol * E.

References:
    A. Molina, P. Schramowski, K. Kersting, "Padé activation units: end-to-end learning of flexible
    activation functions in deep networks", ICLR 2020.
    C. K. Sanathanan and J. Koerner, IEEE Trans. Automatic Control 8 (1963) 56-58 (linearised fit).
    L. N. Trefethen, Approximation Theory and Approximation Practice, SIAM 2013, ch. 24-25 (rational
    best approximation, de la Vallée Poussin for rationals, the eigenvalue form of the Remez step).
    D. J. Newman, "Rational approximation to |x|", Michigan Math. J. 11 (1964) 11-14.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

from . import norms
from .bases import SlafPolynomial, to_mapped
from .problem import FitProblem, measure
from .ratfun import FORMS, RationalFunction  # noqa: F401 (FORMS: part of this module's API)
from .ratfun import foci as _foci
from .remez import alternating_window as _window
from .remez import reduce_symmetry

EPS = np.finfo(float).eps


def rational_type(degree: int) -> tuple[int, int]:
    """The type (m, n) with as many parameters as a degree-`degree` polynomial: m = ceil(d/2), n = floor(d/2).

    (m + 1) + n = degree + 1 free parameters; m = n + 1 for odd degrees (PAU's (5, 4) is degree 9), m = n
    for even ones.
    """
    return (degree + 1) // 2, degree // 2


# --------------------------------------------------------------------------------------------
# Conversions between the fitting representation (Chebyshev in t) and the stated convention
# --------------------------------------------------------------------------------------------
def _normaliser(basis: str, variable: str, interval, n: int, internal: str = "chebyshev") -> np.ndarray:
    """lam with lam . d = the phi_0 coefficient, in the stated convention, of the series d in t.

    d is a Chebyshev series in t (`internal` "chebyshev") or a power series in t ("power").

    D = 1 + Q with Q free of phi_0 is the convention: lam . d = 1 normalises a denominator d, and Q ranges
    over the kernel of lam. (power basis: lam . d = D at v = 0; chebyshev: d_0.)
    """
    lam = np.empty(n + 1)
    for k in range(n + 1):
        e = np.zeros(k + 1)
        e[k] = 1.0
        lam[k] = SlafPolynomial(internal, tuple(e), interval).convert(basis, variable).coef[0]
    return lam


def _convert(c, interval, basis: str, variable: str, internal: str = "chebyshev") -> np.ndarray:
    return np.asarray(SlafPolynomial(internal, tuple(c), interval).convert(basis, variable).coef)


def _assemble(a, d, interval, basis, variable, form, internal: str = "chebyshev") -> RationalFunction:
    """The RationalFunction whose numerator / denominator are the series a / d in t, lam . d = 1."""
    n = len(d) - 1
    num = _convert(a, interval, basis, variable, internal)
    if n == 0:
        return RationalFunction(tuple(num), (), interval, variable, form, basis)
    qc = np.array(d, dtype=float)
    qc[0] -= 1.0  # Q = D - 1 (T_0 = t**0 = phi_0 = 1)
    q = _convert(qc, interval, basis, variable, internal)
    return RationalFunction(tuple(num), tuple(q[1:n + 1]), interval, variable, form, basis)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class RationalFit:
    """A fitted rational function and its diagnostics."""

    function: RationalFunction
    max_error: float
    max_error_at: float
    rms_error: float
    levelled_error: float = math.nan  # minimax: de la Vallée Poussin's h, h <= E_mn(f) <= max_error
    iterations: int = 0
    converged: bool = True
    note: str = ""
    history: list[float] = field(default_factory=list)


def _check_type(m, n) -> tuple[int, int]:
    for name, v in (("m", m), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 32:
            raise ValueError(f"rational type: {name} must be an integer in [0, 32], got {v!r}")
    return int(m), int(n)


def _setup(problem: FitProblem, m, n, form):
    m, n = _check_type(m, n)
    if form not in FORMS:
        raise ValueError(f"unknown rational form {form!r}; allowed: {', '.join(FORMS)}")
    lo, hi = problem.interval
    lam = _normaliser(problem.basis.name, problem.variable, (lo, hi), n)
    if abs(lam[0] - 1.0) > 1e-12:
        raise AssertionError("phi_0 must be the constant 1")  # every basis in bases.BASES has phi_0 = 1
    return m, n, lo, hi, problem.basis.name, problem.variable, lam


def _problem(target, interval, basis, variable) -> FitProblem:
    return target if isinstance(target, FitProblem) else FitProblem.make(target, basis, interval, variable)


# --------------------------------------------------------------------------------------------
# Linearised least squares (Sanathanan-Koerner), optionally with Lawson's reweighting
# --------------------------------------------------------------------------------------------
def _linearised(y, w, Phi, Psi, d_fix, K, iters=20, d_prev=None):
    """min sum w |(y D - P) / D_prev|^2 over P = Phi a, D = Psi (d_fix + K z), iterated on D_prev = D.

    Returns (a, z), stopping early when D would change sign on the nodes (a pole between them).
    """
    Dp = np.ones_like(y) if d_prev is None else d_prev
    base, PK = Psi @ d_fix, Psi @ K
    best = None
    for _ in range(iters):
        s = np.sqrt(w) / Dp
        M = np.hstack([-Phi, y[:, None] * PK]) * s[:, None]
        rhs = -y * base * s
        scl = np.sqrt(np.square(M).sum(0))
        scl[scl == 0] = 1.0
        sol = scipy.linalg.lstsq(M / scl, rhs, lapack_driver="gelsy", check_finite=False)[0] / scl
        a, z = sol[: Phi.shape[1]], sol[Phi.shape[1]:]
        D = base + PK @ z
        if not np.all(D > 0):
            break
        done = best is not None and np.max(np.abs(D - Dp)) <= 1e-14 * np.max(np.abs(D))
        best, Dp = (a, z), D
        if done:
            break
    if best is None:  # the first solve already had a pole: return the polynomial fit
        z = np.zeros(K.shape[1])
        c = np.linalg.lstsq(Phi * np.sqrt(w)[:, None], y * np.sqrt(w) * base, rcond=None)[0]
        best = (c, z)
    return best


def _nodes(lo, hi, edges, degree, singularities=()):
    """Gauss-Legendre nodes on the panels between `edges` and graded towards the target's singularities.

    (f - r)^2 on a panel is a rational function times something analytic: degree + 32 nodes integrate the
    polynomial part of degree 2 * degree exactly, and a panel at distance >= its length from r's poles
    (graded panels) to rho**(-2N) with rho >= 1 + sqrt(2).
    """
    sing = norms.graded_breaks(lo, hi, (), norms.singularity_foci(lo, hi, singularities))
    return norms.gauss_nodes(norms.panels(lo, hi, np.union1d(edges, sing)[1:-1], 2.0), degree + 32)


def _internal(r: RationalFunction, m: int, n: int, K: np.ndarray) -> np.ndarray:
    """(a, z) of the fitting representation for r (Chebyshev-t numerator, Q = T K z), padded to (m, n)."""
    a = np.zeros(m + 1)
    z = np.zeros(n)
    pm, qn = r.type
    num = SlafPolynomial(r.basis, r.numerator, r.interval, r.variable).convert("chebyshev")
    a[: pm + 1] = num.coef
    if qn:
        q = SlafPolynomial(r.basis, (0.0, *r.denominator), r.interval, r.variable).convert("chebyshev")
        qc = np.zeros(n + 1)
        qc[: qn + 1] = q.coef
        z = K.T @ qc
    return np.r_[a, z]


def _lm(y, w, Phi, PK, form, starts, maxiter):
    """Local optima of sum w (y - P/D)^2, P = Phi a, D = 1 + Q or 1 + |Q|, Q = PK z, from each start (a, z).

    Levenberg-Marquardt (scipy.optimize.least_squares) with the analytic Jacobian; yields
    (cost, a, z, nfev, status) per start whose residuals are finite.
    """
    k = Phi.shape[1]
    sw = np.sqrt(w)

    def parts(c):
        Q = PK @ c[k:]
        return Q, 1.0 + (np.abs(Q) if form == "pau" else Q), Phi @ c[:k]

    def res(c):
        _, D, P = parts(c)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return sw * (y - P / D)

    def jac(c):
        Q, D, P = parts(c)
        dQ = np.sign(Q) if form == "pau" else np.ones_like(Q)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.hstack([-(sw / D)[:, None] * Phi, (sw * P / D**2 * dQ)[:, None] * PK])

    for c0 in starts:
        if not np.all(np.isfinite(res(c0))):
            continue
        sol = scipy.optimize.least_squares(res, c0, jac=jac, method="lm", x_scale="jac", ftol=1e-15,
                                           xtol=1e-15, gtol=1e-15, max_nfev=maxiter)
        yield float(sol.cost), sol.x[:k], sol.x[k:], int(sol.nfev), int(sol.status)


# --------------------------------------------------------------------------------------------
# Least squares
# --------------------------------------------------------------------------------------------
def fit_rational_lstsq(target, m: int, n: int, interval=(-3.0, 3.0), form: str = "pau", *,
                       basis: str = "power", variable: str | None = None,
                       weight: Callable[[np.ndarray], np.ndarray] | None = None,
                       maxiter: int = 1000, start: RationalFunction | None = None) -> RationalFit:
    """:func:`rational_lstsq` of the problem (target, basis, interval, variable); `weight` a function of x."""
    return rational_lstsq(_problem(target, interval, basis, variable), m, n, form, weight=weight,
                          maxiter=maxiter, start=start)


def rational_lstsq(problem: FitProblem, m: int, n: int, form: str = "pau", *,
                   weight: Callable[[np.ndarray], np.ndarray] | None = None, maxiter: int = 1000,
                   start: RationalFunction | None = None) -> RationalFit:
    """Best L2 approximation of type (m, n) in `form`: minimise integral w (f - P/D)^2 over [lo, hi].

    The integral is Gauss-Legendre on panels split at the target's kinks and, in a second pass, at the
    fitted function's own kinks (pau) and graded towards its near poles. `weight` (a function of x) defaults
    to the problem's weight. The fit starts from the linearised (Sanathanan-Koerner) solution, from the
    polynomial of degree m or from `start` (e.g. the fit of a lower type), and in the pau form also from
    the standard form's optimum; it keeps the best local optimum of scipy.optimize.least_squares (a
    pole-free one in the standard form). The problem is not convex: this is the best of those local
    optima, not a certified global one. Coefficients are reported in the problem's basis and variable.
    """
    m, n, lo, hi, basis, variable, lam = _setup(problem, m, n, form)
    if start is not None and (start.type[0] > m or start.type[1] > n):
        raise ValueError(f"start of type {start.type} is not of type ({m}, {n}) or lower")
    if weight is None and problem.weight != "uniform":
        weight = problem.weights
    kinks = list(problem.kinks)
    K = scipy.linalg.null_space(lam[None, :]) if n else np.zeros((1, 0))
    d_fix = np.zeros(n + 1)
    d_fix[0] = 1.0
    f = problem.f

    def system(edges):
        x, w = _nodes(lo, hi, edges, m + n, problem.singularities)
        if weight is not None:
            w = w * np.asarray(weight(x), dtype=float)
        t = to_mapped(x, lo, hi)
        return f(x), w, C.chebvander(t, m), C.chebvander(t, n)

    def descend(edges, c0):
        """LM from c0 on the nodes of `edges`, then again on nodes graded to the result's kinks and near
        poles if those add panels (at most 2 rounds). Returns ((has a pole, rms), c, rf, status), nfev."""
        out, nfev = None, 0
        for _ in range(2):
            y, w, Phi, Psi = system(edges)
            sols = list(_lm(y, w, Phi, Psi @ K, form, [c0], maxiter))
            if not sols:
                break
            cost, a, z, nf, status = sols[0]
            nfev += nf
            rf = _assemble(a, d_fix + K @ z, (lo, hi), basis, variable, form)
            ok = math.isfinite(cost) and (form == "pau" or rf.min_denominator() > 0)
            out = ((not ok, cost), np.r_[a, z], rf, status)
            new = norms.graded_breaks(lo, hi, (), _foci(rf, kinks, math.inf))
            if np.setdiff1d(new, edges).size == 0:
                break
            edges, c0 = np.union1d(edges, new), out[1]
        return out, nfev

    edges = norms.graded_breaks(lo, hi, (), [(k, math.inf) for k in kinks])
    y, w, Phi, Psi = system(edges)
    a_sk, z_sk = _linearised(y, w, Phi, Psi, d_fix, K)
    poly = np.linalg.lstsq(Phi * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    starts = [(edges, np.r_[a_sk, z_sk])]
    others = [] if start is None else [start]  # a lower type's fit contains the polynomial start's class
    if start is None:
        starts.append((edges, np.r_[poly, np.zeros(n)]))
    if form == "pau" and n:  # |Q| is not smooth at Q = 0: also start from the standard form's optimum
        others.append(rational_lstsq(problem, m, n, "standard", weight=weight, maxiter=maxiter,
                                     start=start).function)
    for r0 in others:
        starts.append((np.union1d(edges, norms.graded_breaks(lo, hi, (), _foci(r0, kinks, math.inf))),
                       _internal(r0, m, n, K)))
    best, nfev = None, 0
    for e0, c0 in starts:
        out, nf = descend(e0, c0)
        nfev += nf
        if out is None:
            continue
        # compare candidates by their accurately measured rms error (each was fitted on its own nodes)
        key = (out[0][0], measure(problem, out[2])[2])
        if best is None or key < best[0]:
            best = (key, *out[1:])
    if best is None:
        raise ValueError(f"target {problem.name!r}: no finite rational least-squares fit of type ({m}, {n})")
    key, c, rf, status = best
    emax, at, rms = measure(problem, rf)
    notes = []
    if key[0]:
        notes.append("pole in the interval")
    if status == 0:
        notes.append("maximum function evaluations reached")
    return RationalFit(rf, emax, at, rms, iterations=nfev, converged=not notes, note="; ".join(notes))


# --------------------------------------------------------------------------------------------
# Minimax: rational Remez with symmetry reductions
# --------------------------------------------------------------------------------------------
#: series kinds for the exchange: (vander, val, roots, mulx)
_KINDS = {"chebyshev": (C.chebvander, C.chebval, C.chebroots, C.chebmulx),
          "power": (P.polyvander, P.polyval, P.polyroots, P.polymulx)}


@dataclass
class _Reduced:
    """min || g - N/D || on [a, 1], N in span{phi_i, i in nidx}, D in span{phi_j, j in didx}, phi of `kind`.

    The reduced (half-interval) problems use powers of t: their best approximations to kinked targets have
    poles and zeros clustering at the kink t = 0, where power series with coefficients of one sign keep
    their relative accuracy and Chebyshev series cancel. The full problem uses Chebyshev polynomials.
    """

    g: Callable
    a: float
    nidx: np.ndarray
    didx: np.ndarray
    m: int
    n: int
    kinks: list
    sym: str
    kind: str
    fixed: float = 0.0  # the constant (const+odd) or linear coefficient (linear+even) added back

    @property
    def count(self) -> int:
        """Alternation points certifying a best approximation (free parameters + 1)."""
        return len(self.nidx) + len(self.didx)

    def vander(self, s, k):
        return _KINDS[self.kind][0](s, k)

    def val(self, s, c):
        return _KINDS[self.kind][1](s, c)

    def series(self, an, dn):
        a, d = np.zeros(self.m + 1), np.zeros(self.n + 1)
        a[self.nidx], d[self.didx] = an, dn
        return a, d

    def full(self, an, dn):
        """Full numerator and denominator series in t (with the fixed part added back)."""
        a, d = self.series(an, dn)
        if self.sym == "const+odd" and self.fixed:
            a[: self.n + 1] += self.fixed * d
        elif self.sym == "linear+even" and self.fixed:
            td = _KINDS[self.kind][3](d)  # t * D (numpy trims trailing zeros)
            a[: len(td)] += self.fixed * td
        return a, d

    def ratio(self, an, dn):
        a, d = self.series(an, dn)
        return lambda s: self.val(s, a) / self.val(s, d)

    def positive(self, d: np.ndarray) -> bool:
        """The denominator series d is positive on [a, 1]."""
        dt = np.trim_zeros(d, "b")
        if len(dt) == 0 or self.val(1.0, dt) <= 0:
            return False
        if len(dt) > 1:
            z = _KINDS[self.kind][2](dt)
            if np.any((np.abs(z.imag) <= 1e-12) & (z.real >= self.a - 1e-12) & (z.real <= 1 + 1e-12)):
                return False
        s = np.cos(np.linspace(0, np.pi, 4 * len(d) + 64)) * 0.5 * (1 - self.a) + 0.5 * (1 + self.a)
        return bool(np.all(self.val(s, dt) > 0))

    def pole_foci(self, d: np.ndarray) -> list[tuple[float, float]]:
        dt = np.trim_zeros(d, "b")
        if len(dt) <= 1:
            return []
        out = []
        for z in _KINDS[self.kind][2](dt).astype(complex):
            c = min(max(z.real, self.a), 1.0)
            dist = abs(z - c)
            if dist < 0.25 * (1 - self.a):
                out.append((c, dist))
        return out


def _reduce(f, kinks_t, m, n) -> _Reduced:
    """The half-interval problem of remez.reduce_symmetry, when rationals of type (m, n) keep its form:
    R_mn + constants = R_mn when m >= n, R_mn + linear = R_mn when m >= n + 1."""
    sym = reduce_symmetry(f, kinks_t)
    allk = lambda k: np.arange(k + 1)  # noqa: E731
    half = sorted({abs(k) for k in kinks_t})
    usable = {"even": True, "odd": m >= 1, "const+odd": m >= max(n, 1), "linear+even": m >= n + 1,
              "none": False}[sym.kind]
    if not usable:
        return _Reduced(f, -1.0, allk(m), allk(n), m, n, sorted(kinks_t), "none", "power")
    fixed = sym.constant if sym.kind == "const+odd" else sym.slope
    return _Reduced(sym.g, 0.0, np.arange(sym.first, m + 1, 2), np.arange(0, n + 1, 2), m, n, half, sym.kind,
                    "power", fixed)


def _eig_step(red: _Reduced, ref: np.ndarray, an: np.ndarray, dn: np.ndarray):
    """Solve N(s_i) - (g(s_i) - (-1)^i h) D(s_i) = 0 at the reference: a generalised eigenproblem in h.

    Rows are scaled to unit size and columns by the current coefficients' magnitudes, so that small
    coefficients (a power series near a kink) keep their relative accuracy. Of the real finite
    eigenvalues, keep those whose D has no zero on [a, 1]; return the one with the smallest |h|.
    """
    Phi = red.vander(ref, red.m)[:, red.nidx]
    Psi = red.vander(ref, red.n)[:, red.didx]
    g = red.g(ref)
    sig = (-1.0) ** np.arange(len(ref))
    A = np.hstack([Phi, -g[:, None] * Psi])
    B = np.hstack([np.zeros_like(Phi), sig[:, None] * Psi])
    c = np.abs(np.r_[an, dn])
    col = np.maximum(c, 1e-8 * max(float(np.max(c)), np.finfo(float).tiny))
    row = 1.0 / np.maximum(np.max(np.abs(A * col), axis=1), np.finfo(float).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam, vec = scipy.linalg.eig(A * col * row[:, None], B * col * row[:, None])
    best = None
    k = len(red.nidx)
    for i in np.flatnonzero(np.isfinite(lam)):
        if abs(lam[i].imag) > 1e-8 * max(1.0, abs(lam[i].real)):
            continue
        v = vec[:, i]
        v = (v * np.exp(-1j * np.angle(v[np.argmax(np.abs(v))]))).real * col
        an_i, dn_i = v[:k], v[k:]
        _, d = red.series(an_i, dn_i)
        if not red.positive(d):
            an_i, dn_i, d = -an_i, -dn_i, -d
            if not red.positive(d):
                continue
        h = -lam[i].real
        if best is None or abs(h) < abs(best[2]):
            best = (an_i, dn_i, h)
    return best


def _extrema(red: _Reduced, e: Callable, d: np.ndarray, degree: int):
    foci = [(k, 0.0) for k in red.kinks if red.a <= k <= 1.0] + red.pole_foci(d)
    edges = norms.graded_breaks(red.a, 1.0, (), foci)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return norms.signed_extrema(e, edges, norms.grid_size(degree))


def _start(red: _Reduced, degree: int, lawson: int = 25):
    """A near-minimax start: linearised least squares, then Lawson's reweighting by |error|.

    When that has a pole or too few alternations (the linearisation can move a pole that sits just outside
    the interval into it), the start is the true least-squares optimum instead, reweighted a few times.
    """
    edges = norms.graded_breaks(red.a, 1.0, (), [(k, 2.0**-36) for k in red.kinks if red.a <= k <= 1.0])
    s, w0 = norms.gauss_nodes(norms.panels(red.a, 1.0, edges[1:-1], 0.5), degree + 16)
    y = red.g(s)
    Phi, Psi = red.vander(s, red.m)[:, red.nidx], red.vander(s, red.n)[:, red.didx]
    d_fix = np.zeros(len(red.didx))
    d_fix[0] = 1.0  # D(0) = 1 (power) or T_0 coefficient 1 (chebyshev): both > 0 for D > 0 on [a, 1]
    K = np.eye(len(red.didx))[:, 1:]
    w = w0.copy()
    best, dprev = None, None
    for i in range(lawson):
        an, z = _linearised(y, w, Phi, Psi, d_fix, K, iters=10 if i == 0 else 2, d_prev=dprev)
        dn = d_fix + K @ z
        dprev = Psi @ dn
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            e = y - (Phi @ an) / (Psi @ dn)
        emax = float(np.max(np.abs(e)))
        if not math.isfinite(emax):
            break
        if best is None or emax < best[0]:
            best = (emax, an, dn)
        w = w * np.abs(e)
        w /= np.sum(w)
        if not np.all(np.isfinite(w)) or np.sum(w > 0) < len(an) + len(dn):
            break
    an, dn = best[1], best[2]
    if _usable(red, an, dn, degree):
        return an, dn
    w, z = w0.copy(), dn[1:]
    for _ in range(4):
        sols = list(_lm(y, w, Phi, Psi @ K, "standard", [np.r_[an, z]], 2000))
        if not sols:
            break
        _, an_new, z_new, _, _ = sols[0]
        dn_new = d_fix + K @ z_new
        if not red.positive(red.series(an_new, dn_new)[1]):
            break
        an, z, dn = an_new, z_new, dn_new
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            w = w * np.abs(y - (Phi @ an) / (Psi @ dn))
        w /= np.sum(w)
        if not np.all(np.isfinite(w)):
            break
    return an, dn


def _usable(red: _Reduced, an, dn, degree) -> bool:
    """The start has a positive denominator and enough alternating extrema for an exchange."""
    a, d = red.series(an, dn)
    if not red.positive(d):
        return False
    r = red.ratio(an, dn)
    xs, es = _extrema(red, lambda s: red.g(s) - r(s), d, degree)
    return len(xs) >= red.count


_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _dca(red: _Reduced, an, dn, degree: int, maxiter: int = 40):
    """Discrete best approximation on a graded grid by the differential correction algorithm.

    Each step solves the linear program min delta s.t. |g Q - P| - delta_k Q <= delta Q_k at every grid
    point, |Q's coefficients| <= 1; it converges to the discrete minimax from any start with Q_k > 0
    (Barrodale, Powell and Roberts, SIAM J. Numer. Anal. 9 (1972) 493-504).
    """
    _, d = red.series(an, dn)
    foci = [(k, 2.0**-30) for k in red.kinks if red.a <= k <= 1.0] + red.pole_foci(d)
    edges = norms.graded_breaks(red.a, 1.0, (), foci)
    u = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, 2 * degree + 8))
    s = np.unique((edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * u[None, :]).ravel())
    y = red.g(s)
    Phi, Psi = red.vander(s, red.m)[:, red.nidx], red.vander(s, red.n)[:, red.didx]
    k, ld = Phi.shape[1], Psi.shape[1]
    scale = float(np.max(np.abs(dn)))
    an, dn = an / scale, dn / scale
    bounds = [(None, None)] * k + [(-1.0, 1.0)] * ld + [(None, None)]
    cost = np.r_[np.zeros(k + ld), 1.0]
    for _ in range(maxiter):
        Qk = Psi @ dn
        dk = float(np.max(np.abs(y - Phi @ an / Qk)))
        rows = []
        for sgn in (1.0, -1.0):
            rows.append(np.hstack([-sgn * Phi, ((sgn * y - dk)[:, None] * Psi), -Qk[:, None] * dk])
                        / (Qk * dk)[:, None])  # the last variable is delta / delta_k
        sol = scipy.optimize.linprog(cost, A_ub=np.vstack(rows), b_ub=np.zeros(2 * len(s)), bounds=bounds,
                                     method="highs", options=_LP_OPTIONS)
        if sol.status != 0 or sol.x[-1] >= -1e-12:
            break
        a_new, d_new = sol.x[:k], sol.x[k:k + ld]
        if not np.all(Psi @ d_new > 0):
            break
        an, dn = a_new, d_new
    return an, dn


def _remez(red: _Reduced, rtol: float, maxiter: int, floor: float):
    """Rational Remez on the reduced problem; returns (an, dn, iterations, note, history of max errors).

    The result is the first iterate whose own extrema certify it (E - h <= rtol E), else the iterate with
    the smallest max error and a note saying why the exchange stopped.
    """
    degree = red.m + red.n
    N = red.count
    an, dn = _start(red, degree)
    history = []
    best = None
    tried_dca = False
    note = "maximum iterations reached"
    for _ in range(maxiter):
        r = red.ratio(an, dn)
        _, d = red.series(an, dn)
        xs, es = _extrema(red, lambda s, r=r: red.g(s) - r(s), d, degree)
        E = float(np.max(np.abs(es)))
        idx = _window(xs, es, N)
        h = float(np.min(np.abs(es[idx]))) if idx is not None else 0.0
        history.append(E)
        if best is None or E < best[0]:
            best = (E, an, dn)
        if idx is None:
            note = f"fewer than {N} alternating extrema"
            break
        if E - h <= rtol * E or E <= floor:  # certified: return this iterate
            return an, dn, len(history), "", history
        if len(history) > 8 and E > 1.5 * best[0]:
            note = "stalled"
            break
        step = _eig_step(red, xs[idx], an, dn)
        if step is None and not tried_dca:  # restart from the discrete best approximation on a grid
            tried_dca = True
            an, dn = _dca(red, best[1], best[2], degree)
            continue
        if step is None:
            note = "no pole-free solution on the reference"
            break
        an, dn, _ = step
    _, an, dn = best
    return an, dn, len(history), note, history


def _block(red: _Reduced, rtol: float, maxiter: int, floor: float):
    """The best approximation of a type k lower in both degrees, if it is also best for red's type.

    Best approximations come in square blocks (Walsh table): r of exact type (m - k, n - k) has defect k in
    R_mn and is best there when its error alternates at count - k points (de la Vallée Poussin with defect).
    Returns (an, dn, k, iterations) padded to red's sizes, or None.
    """
    iters = 0
    for k in range(1, min(len(red.nidx), len(red.didx))):
        sub = replace(red, nidx=red.nidx[:-k], didx=red.didx[:-k])
        an, dn, it, note, _ = _remez(sub, rtol, maxiter, floor)
        iters += it
        if note:
            continue
        r = sub.ratio(an, dn)
        xs, es = _extrema(sub, lambda s, r=r, g=sub.g: g(s) - r(s), sub.series(an, dn)[1], red.m + red.n)
        idx = _window(xs, es, red.count - k)
        if idx is not None and np.max(np.abs(es)) - np.min(np.abs(es[idx])) <= max(rtol * np.max(np.abs(es)),
                                                                                   floor):
            return np.r_[an, np.zeros(k)], np.r_[dn, np.zeros(k)], k, iters
    return None


def fit_rational_minimax(target, m: int, n: int, interval=(-3.0, 3.0), form: str = "standard", *,
                         basis: str = "power", variable: str | None = None, rtol: float = 1e-6,
                         maxiter: int = 60) -> RationalFit:
    """:func:`rational_minimax` of the problem (target, basis, interval, variable)."""
    return rational_minimax(_problem(target, interval, basis, variable), m, n, form, rtol=rtol,
                            maxiter=maxiter)


def rational_minimax(problem: FitProblem, m: int, n: int, form: str = "standard", *, rtol: float = 1e-6,
                     maxiter: int = 60) -> RationalFit:
    """Best uniform approximation of type (m, n) on [lo, hi], with de la Vallée Poussin's certificate.

    `levelled_error` is h = min |f - r| over an alternating set of the required size for the final,
    converted function (nan if it has none); `converged` means E - h <= rtol * E, or E - h below the
    float64 rounding level of evaluating f - r ("resolution-limited"). form "pau" returns the same best
    approximation in the PAU form when its Q is >= 0 on the interval (then 1 + |Q| = 1 + Q); otherwise the
    standard form with a note.
    """
    m, n, lo, hi, basis, variable, lam = _setup(problem, m, n, form)
    kinks = list(problem.kinks)
    f, f_t = problem.f, problem.f_t
    kinks_t = [float(to_mapped(k, lo, hi)) for k in kinks]
    red = _reduce(f_t, kinks_t, m, n)
    xs = np.linspace(-1, 1, 257)
    scale = float(np.max(np.abs(f_t(np.union1d(xs, kinks_t)))))
    floor = 8 * (m + n + 2) * EPS * max(scale, np.finfo(float).tiny)
    an, dn, iters, note, history = _remez(red, rtol, maxiter, floor)
    defect = 0
    if note and note != "maximum iterations reached":  # the exchange broke down: is the best approximation
        # degenerate (in a square block of the Walsh table)?
        found = _block(red, rtol, maxiter, floor)
        if found is not None:
            an, dn, defect, it = found
            iters += it
            note = f"degenerate: defect {defect}"
    a, d = red.full(an, dn)
    ell = float(_normaliser(basis, variable, (lo, hi), n, red.kind) @ d)
    notes = [note] if note else []
    if not ell > 1e-13 * np.max(np.abs(d)):
        raise ValueError(f"the best type ({m}, {n}) approximation's denominator has no positive phi_0 term "
                         f"in the {basis} basis ({variable}): it is not of the form 1 + Q in this convention")
    a, d = a / ell, d / ell
    out_form = "standard"
    rf = _assemble(a, d, (lo, hi), basis, variable, "standard", red.kind)
    if form == "pau":
        lo_q = float(np.min(rf.q(np.linspace(lo, hi, 4001))))
        if n == 0 or lo_q >= 0.0:
            out_form = "pau"
            rf = RationalFunction(rf.numerator, rf.denominator, (lo, hi), variable, "pau", basis)
        else:
            notes.append("the best approximation's Q takes negative values: not of the PAU form; "
                         "reported in the standard form")
    emax, at, rms = measure(problem, rf)
    # certificate for the reported function: alternation on the reduced interval ([centre, hi] or all)
    x0 = lo if red.a == -1.0 else 0.5 * (lo + hi)
    fc = _foci(rf, kinks)
    edges = norms.graded_breaks(x0, hi, (), [(c, s) for c, s in fc if x0 <= c <= hi])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        xe, ee = norms.signed_extrema(lambda x: f(x) - rf(x), edges, norms.grid_size(m + n))
    need = red.count - defect
    idx = _window(xe, ee, need) if math.isfinite(emax) else None
    if idx is None and emax <= floor:  # at float64 resolution: h = 0 is the (trivial) lower bound
        h, converged = 0.0, True
        notes = [s for s in notes if s.startswith("symmetric")] + ["resolution-limited"]
    elif idx is None:
        h = math.nan
        notes.append(f"no certificate: fewer than {need} alternating extrema")
        converged = False
    else:
        h = float(np.min(np.abs(ee[idx])))
        gap = emax - h
        converged = gap <= rtol * emax or gap <= floor
        if not converged:
            notes.append(f"(E - h)/E = {gap / emax:.2g} > rtol")
        if converged and gap > rtol * emax:
            notes = [s for s in notes if s not in ("maximum iterations reached", "stalled")]
            notes.append("resolution-limited")
    if red.sym != "none":
        notes.insert(0, f"symmetric: {red.sym}")
    if out_form != form:
        converged = False
    return RationalFit(rf, emax, at, rms, h, iters, bool(converged), "; ".join(notes), history)
