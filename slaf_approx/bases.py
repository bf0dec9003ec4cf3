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


BASES: dict[str, Basis] = {
    "power": Basis("power", P.polyvander, lambda t, c: P.polyval(t, c), P.polyder,
                   lambda c: np.asarray(c, float), lambda c: np.asarray(c, float), np.polynomial.Polynomial,
                   False),
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


def check_interval(interval) -> tuple[float, float]:
    """Validate [lo, hi]: two finite floats with lo < hi."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be two numbers [lo, hi], got {interval!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"interval ends must be finite, got [{lo}, {hi}]")
    if not lo < hi:
        raise ValueError(f"interval needs lo < hi, got [{lo}, {hi}]")
    return lo, hi


def check_variable(basis: Basis, variable: str) -> str:
    if variable not in VARIABLES:
        raise ValueError(f"unknown variable {variable!r}; allowed: {', '.join(VARIABLES)}")
    if variable == "raw" and basis.name != "power":
        raise ValueError(f"the raw variable is for the power basis only, got basis {basis.name!r}")
    return variable


def to_mapped(x, lo: float, hi: float) -> np.ndarray:
    """t in [-1, 1] for x in [lo, hi]."""
    return (2.0 * np.asarray(x, dtype=float) - (lo + hi)) / (hi - lo)


def from_mapped(t, lo: float, hi: float) -> np.ndarray:
    """x in [lo, hi] for t in [-1, 1]."""
    return 0.5 * (hi - lo) * np.asarray(t, dtype=float) + 0.5 * (lo + hi)


@dataclass(frozen=True)
class SlafPolynomial:
    """p(x) = sum_i coef[i] * phi_i(v), v the mapped variable t (default) or, for powers, the raw x.

    Coefficients are in increasing degree, as numpy.polynomial writes them.
    """

    basis: str
    coef: tuple[float, ...]
    interval: tuple[float, float]
    variable: str = "mapped"

    def __post_init__(self):
        b = get_basis(self.basis)
        check_variable(b, self.variable)
        check_interval(self.interval)
        object.__setattr__(self, "coef", tuple(float(c) for c in np.atleast_1d(self.coef)))

    @property
    def degree(self) -> int:
        return len(self.coef) - 1

    def variable_of(self, x) -> np.ndarray:
        """The argument the basis is evaluated at for the points x."""
        if self.variable == "raw":
            return np.asarray(x, dtype=float)
        return to_mapped(x, *self.interval)

    def __call__(self, x) -> np.ndarray:
        return get_basis(self.basis).val(self.variable_of(x), np.asarray(self.coef))

    def deriv(self, m: int = 1) -> SlafPolynomial:
        """The m-th derivative with respect to x, in the same basis and variable."""
        b = get_basis(self.basis)
        c = np.asarray(self.coef)
        lo, hi = self.interval
        scale = 1.0 if self.variable == "raw" else 2.0 / (hi - lo)
        for _ in range(m):
            c = b.der(c) * scale if len(c) > 1 else np.zeros(1)
        return SlafPolynomial(self.basis, tuple(c), self.interval, self.variable)

    def to_numpy(self):
        """The same polynomial as a numpy.polynomial object that carries the interval as its domain.

        Mapped variable: domain [lo, hi], window [-1, 1]. Raw powers: domain = window = [lo, hi]
        (the identity map), so the object still records the interval.
        """
        b = get_basis(self.basis)
        window = list(self.interval) if self.variable == "raw" else [-1.0, 1.0]
        return b.kind(np.asarray(self.coef), domain=list(self.interval), window=window)

    def convert(self, basis: str, variable: str = "mapped") -> SlafPolynomial:
        """The same polynomial in another basis (and, for powers, variable), same interval."""
        b = get_basis(basis)
        check_variable(b, variable)
        lo, hi = self.interval
        window = [lo, hi] if variable == "raw" else [-1.0, 1.0]
        q = self.to_numpy().convert(kind=b.kind, domain=[lo, hi], window=window)
        c = np.zeros(self.degree + 1)
        c[: len(q.coef)] = q.coef
        return SlafPolynomial(b.name, tuple(c), self.interval, variable)
