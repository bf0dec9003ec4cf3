"""SLAF bases: the small set of hooks the fitting code needs, and the fitted polynomial.

A basis is a handful of functions on the mapped variable t in [-1, 1] (Vandermonde matrix, evaluation,
derivative, conversion to and from monomials). It does not know about targets or fitting: the fitting
code takes a basis as a parameter. numpy.polynomial supplies the three-term recurrences (Clenshaw for
Chebyshev and Legendre, Horner for powers).

Every :class:`SlafPolynomial` carries its interval [lo, hi]. It is evaluated either in the mapped
variable t = (2x - lo - hi) / (hi - lo), or, for the power basis only, in the raw variable x
(the paper's form, f(x) = sum a_i x**i).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as C
from numpy.polynomial import hermite_e as H
from numpy.polynomial import legendre as L
from numpy.polynomial import polynomial as P

MAX_DEGREE = 64
VARIABLES = ("mapped", "raw")


@dataclass(frozen=True)
class Basis:
    """One family of basis polynomials phi_0, phi_1, ... as numpy.polynomial hooks."""

    name: str
    vander: Callable[[np.ndarray, int], np.ndarray]
    val: Callable[[np.ndarray, np.ndarray], np.ndarray]
    der: Callable[[np.ndarray], np.ndarray]
    to_power: Callable[[np.ndarray], np.ndarray]
    from_power: Callable[[np.ndarray], np.ndarray]
    kind: type  # the numpy.polynomial class of this basis
    orthogonal: bool  # orthogonal on [-1, 1] (with its own weight)
    #: the variables it may be evaluated in; the first is its default
    variables: tuple[str, ...] = ("mapped",)

    @property
    def default_variable(self) -> str:
        return self.variables[0]

    def argument(self, x, interval, variable: str) -> np.ndarray:
        """The argument v the basis is evaluated at for points x: t in [-1, 1] (mapped) or x itself (raw)."""
        if variable == "raw":
            return np.asarray(x, dtype=float)
        return to_mapped(x, *interval)

    def parity_columns(self, degree: int, parity: str = "") -> np.ndarray:
        """Indices of the basis functions of degree <= `degree` with the given parity ("even", "odd"; ""
        = all). Every basis here has phi_k of the parity of k (in t on [-1, 1], and in x on an interval
        symmetric about 0), as tests/test_bases.py checks."""
        if not parity:
            return np.arange(degree + 1)
        return np.arange(0 if parity == "even" else 1, degree + 1, 2)

    def window(self, interval, variable: str) -> list[float]:
        """numpy.polynomial's window for the domain `interval`: where the affine map sends it."""
        return [float(interval[0]), float(interval[1])] if variable == "raw" else [-1.0, 1.0]


BASES: dict[str, Basis] = {
    "power": Basis("power", P.polyvander, lambda t, c: P.polyval(t, c), P.polyder,
                   lambda c: np.asarray(c, float), lambda c: np.asarray(c, float), np.polynomial.Polynomial,
                   False, ("raw", "mapped")),
    "chebyshev": Basis("chebyshev", C.chebvander, C.chebval, C.chebder, C.cheb2poly, C.poly2cheb,
                       np.polynomial.Chebyshev, True),
    "legendre": Basis("legendre", L.legvander, L.legval, L.legder, L.leg2poly, L.poly2leg,
                      np.polynomial.Legendre, True),
    "hermite": Basis("hermite", H.hermevander, H.hermeval, H.hermeder, H.herme2poly, H.poly2herme,
                     np.polynomial.HermiteE, False),
}


def get_basis(name: str | Basis) -> Basis:
    """The basis called `name`; ValueError naming the allowed ones otherwise."""
    if isinstance(name, Basis):
        return name
    if not isinstance(name, str) or name not in BASES:
        raise ValueError(f"unknown basis {name!r}; allowed: {', '.join(BASES)}")
    return BASES[name]


def check_degree(degree) -> int:
    """Validate a polynomial degree: an integer in [0, MAX_DEGREE]."""
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)):
        raise ValueError(f"degree must be an integer in [0, {MAX_DEGREE}], got {degree!r}")
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"degree must be an integer in [0, {MAX_DEGREE}], got {degree}")
    return int(degree)


#: an interval must span at least this many ulps of its larger end: narrower, the mapped variable t takes
#: only a handful of distinct values and every fit is rounding noise.
MIN_WIDTH_ULPS = 256
#: ... and at least this absolute width: below it the squared errors the least-squares and rms integrals sum
#: (width times values of the order of the width, squared) underflow float64 (sqrt of the smallest normal).
MIN_WIDTH = math.sqrt(np.finfo(float).tiny)


def check_interval(interval) -> tuple[float, float]:
    """Validate [lo, hi]: two finite floats, lo < hi, hi - lo >= MIN_WIDTH_ULPS ulps of max(|lo|, |hi|)
    and >= MIN_WIDTH."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be two numbers [lo, hi], got {interval!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"interval ends must be finite, got [{lo}, {hi}]")
    if not lo < hi:
        raise ValueError(f"interval needs lo < hi, got [{lo}, {hi}]")
    least = max(MIN_WIDTH_ULPS * math.ulp(max(abs(lo), abs(hi))), MIN_WIDTH)
    if not hi - lo >= least:
        raise ValueError(f"interval [{lo!r}, {hi!r}] is too narrow: its width {hi - lo:.3g} must be at least "
                         f"{MIN_WIDTH_ULPS} ulps of its larger end and {MIN_WIDTH:.3g}, here {least:.3g}")
    return lo, hi


def check_variable(basis: Basis, variable: str) -> str:
    if variable not in VARIABLES:
        raise ValueError(f"unknown variable {variable!r}; allowed: {', '.join(VARIABLES)}")
    if variable not in basis.variables:
        having = ", ".join(b.name for b in BASES.values() if variable in b.variables)
        raise ValueError(f"the {variable} variable is for the {having} basis only, got basis {basis.name!r}")
    return variable


def to_mapped(x, lo: float, hi: float) -> np.ndarray:
    """t in [-1, 1] for x in [lo, hi]."""
    return (2.0 * np.asarray(x, dtype=float) - (lo + hi)) / (hi - lo)


def kernel_mapping(interval, variable: str) -> tuple[float, float, float, float]:
    """(scale, shift, tlo, thi) of the SLAF kernels: the argument is t = scale * x + shift (clamped to
    [tlo, thi] when clamping), the variable the coefficients belong to."""
    lo, hi = float(interval[0]), float(interval[1])
    if variable == "raw":
        return 1.0, 0.0, lo, hi
    return 2.0 / (hi - lo), -(lo + hi) / (hi - lo), -1.0, 1.0


def from_mapped(t, lo: float, hi: float) -> np.ndarray:
    """x in [lo, hi] for t in [-1, 1]."""
    return 0.5 * (hi - lo) * np.asarray(t, dtype=float) + 0.5 * (lo + hi)


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class SlafPolynomial:
    """p(x) = sum_i coef[i] * phi_i(v), v the mapped variable t (default) or, for powers, the raw x.

    Coefficients are in increasing degree, as numpy.polynomial writes them. It behaves like a
    numpy.polynomial object whose domain is the interval: +, -, * with another polynomial of the same
    basis, interval and variable, or with a number; / by a number; ``deriv``, ``integ``, ``roots``; ``==``
    compares basis, interval, variable and coefficients exactly.
    """

    basis: str
    coef: tuple[float, ...]
    interval: tuple[float, float]
    variable: str = "mapped"

    def __post_init__(self):
        b = get_basis(self.basis)
        check_variable(b, self.variable)
        object.__setattr__(self, "basis", b.name)
        object.__setattr__(self, "interval", check_interval(self.interval))
        object.__setattr__(self, "coef", tuple(float(c) for c in np.atleast_1d(self.coef)))

    @property
    def degree(self) -> int:
        return len(self.coef) - 1

    def variable_of(self, x) -> np.ndarray:
        """The argument the basis is evaluated at for the points x."""
        return get_basis(self.basis).argument(x, self.interval, self.variable)

    def __call__(self, x) -> np.ndarray:
        return get_basis(self.basis).val(self.variable_of(x), np.asarray(self.coef))

    def _new(self, coef) -> SlafPolynomial:
        return SlafPolynomial(self.basis, tuple(np.asarray(coef, dtype=float).ravel()), self.interval,
                              self.variable)

    def copy(self) -> SlafPolynomial:
        return self._new(self.coef)

    # --- arithmetic, in the polynomial's own basis (numpy.polynomial's hooks) -------------------
    def _coerce(self, other, op: str) -> np.ndarray:
        """other's coefficients in this basis: a number is the constant (phi_0 = 1 in every basis)."""
        if _is_scalar(other):
            if not math.isfinite(float(other)):
                raise ValueError(f"cannot {op} a SlafPolynomial and the non-finite number {other!r}")
            return np.array([float(other)])
        if not isinstance(other, SlafPolynomial):
            raise TypeError(f"cannot {op} a SlafPolynomial and a {type(other).__name__}; allowed: a "
                            "SlafPolynomial of the same basis, interval and variable, or a real number")
        mine = (self.basis, self.interval, self.variable)
        theirs = (other.basis, other.interval, other.variable)
        if mine != theirs:
            raise ValueError(f"cannot {op} polynomials of different (basis, interval, variable): {mine} and "
                             f"{theirs}; convert one first (SlafPolynomial.convert)")
        return np.asarray(other.coef)

    def _op(self, name: str):
        return getattr(get_basis(self.basis).kind, name)  # numpy.polynomial's chebadd, legmul, ...

    def __add__(self, other):
        return self._new(self._op("_add")(np.asarray(self.coef), self._coerce(other, "add")))

    __radd__ = __add__

    def __sub__(self, other):
        return self._new(self._op("_sub")(np.asarray(self.coef), self._coerce(other, "subtract")))

    def __rsub__(self, other):
        return self._new(self._op("_sub")(self._coerce(other, "subtract"), np.asarray(self.coef)))

    def __mul__(self, other):
        return self._new(self._op("_mul")(np.asarray(self.coef), self._coerce(other, "multiply")))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not _is_scalar(other) or float(other) == 0.0 or not math.isfinite(float(other)):
            raise TypeError(f"a SlafPolynomial divides by a finite non-zero number only, got {other!r}")
        return self._new(np.asarray(self.coef) / float(other))

    def __neg__(self):
        return self._new(-np.asarray(self.coef))

    def __pos__(self):
        return self.copy()

    def __pow__(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"a SlafPolynomial's power must be an integer >= 0, got {k!r}")
        out = self._new([1.0])
        for _ in range(int(k)):
            out = out * self
        return out

    # --- calculus and roots ---------------------------------------------------------------------
    def deriv(self, m: int = 1) -> SlafPolynomial:
        """The m-th derivative with respect to x, in the same basis and variable."""
        b = get_basis(self.basis)
        c = np.asarray(self.coef)
        lo, hi = self.interval
        scale = 1.0 if self.variable == "raw" else 2.0 / (hi - lo)
        for _ in range(m):
            c = b.der(c) * scale if len(c) > 1 else np.zeros(1)
        return self._new(c)

    def integ(self, m: int = 1, k=(), lbnd: float | None = None) -> SlafPolynomial:
        """The m-th antiderivative with respect to x, in the same basis and variable.

        As numpy.polynomial's ``integ``: the j-th integration constant k[j] (default 0) is the value at
        x = lbnd of the j-th antiderivative; lbnd defaults to the point where the variable is 0 (the
        interval's midpoint for the mapped variable, x = 0 for raw powers).
        """
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 0:
            raise ValueError(f"integ: m must be an integer >= 0, got {m!r}")
        return self._new(self.to_numpy().integ(int(m), list(k), lbnd).coef)

    def roots(self) -> np.ndarray:
        """All complex roots, in x (numpy.polynomial's companion-matrix eigenvalues, mapped back)."""
        c = np.trim_zeros(np.asarray(self.coef), "b")
        if len(c) <= 1:
            return np.zeros(0, dtype=complex)
        return self._new(c).to_numpy().roots().astype(complex)

    def real_roots(self) -> np.ndarray:
        """The real roots in [lo, hi], ascending.

        A root counts as real when its imaginary part is below sqrt(eps) of the interval's half width (a
        double root splits into a pair about that far off the axis).
        """
        lo, hi = self.interval
        z = self.roots()
        tol = math.sqrt(np.finfo(float).eps) * 0.5 * (hi - lo)
        r = z.real[(np.abs(z.imag) <= tol) & (z.real >= lo - tol) & (z.real <= hi + tol)]
        return np.sort(np.clip(r, lo, hi))

    def to_numpy(self):
        """The same polynomial as a numpy.polynomial object that carries the interval as its domain.

        Mapped variable: domain [lo, hi], window [-1, 1]. Raw powers: domain = window = [lo, hi]
        (the identity map), so the object still records the interval.
        """
        b = get_basis(self.basis)
        return b.kind(np.asarray(self.coef), domain=list(self.interval), window=b.window(self.interval,
                                                                                         self.variable))

    def convert(self, basis: str, variable: str | None = None) -> SlafPolynomial:
        """The same polynomial in another basis (and, for powers, variable; default mapped), same interval."""
        b = get_basis(basis)
        variable = variable or "mapped"
        check_variable(b, variable)
        q = self.to_numpy().convert(kind=b.kind, domain=list(self.interval),
                                    window=b.window(self.interval, variable))
        c = np.zeros(self.degree + 1)
        c[: len(q.coef)] = q.coef
        return SlafPolynomial(b.name, tuple(c), self.interval, variable)
