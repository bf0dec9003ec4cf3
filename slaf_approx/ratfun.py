"""A rational function r = P / D in an SLAF basis, with its interval, variable and form.

r holds its numerator p_0..p_m and denominator q_1..q_n in a basis phi of a variable v (the mapped t in
[-1, 1] or, for powers, the raw x), its interval and its form:

* ``"standard"``: r = P(v) / (1 + sum_{j=1..n} q_j phi_j(v));
* ``"pau"``:      r = P(v) / (1 + |sum_{j=1..n} q_j phi_j(v)|), the "safe" denominator of the Padé activation
  unit (Molina et al., ICLR 2020). With the power basis in the raw x this is exactly their convention.

The fitting lives in :mod:`slaf_approx.rational`; this module only evaluates and inspects r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .bases import check_interval, check_variable, get_basis
from .norms import graded_breaks

FORMS = ("pau", "standard")


# --------------------------------------------------------------------------------------------
# The function
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RationalFunction:
    """r(x) = P(v) / D(v): P = sum p_i phi_i(v), D = 1 + Q or 1 + |Q| (form), Q = sum_{j>=1} q_j phi_j(v).

    numerator: p_0 .. p_m; denominator: q_1 .. q_n (no q_0: the 1 is fixed); both in increasing degree.
    """

    numerator: tuple[float, ...]
    denominator: tuple[float, ...]
    interval: tuple[float, float]
    variable: str = "raw"
    form: str = "pau"
    basis: str = "power"

    def __post_init__(self):
        check_variable(get_basis(self.basis), self.variable)
        object.__setattr__(self, "interval", check_interval(self.interval))
        if self.form not in FORMS:
            raise ValueError(f"unknown rational form {self.form!r}; allowed: {', '.join(FORMS)}")
        num = tuple(float(c) for c in np.atleast_1d(np.asarray(self.numerator, dtype=float)))
        den = tuple(float(c) for c in np.asarray(self.denominator, dtype=float).ravel())
        if not num:
            raise ValueError("a rational function needs at least one numerator coefficient")
        object.__setattr__(self, "numerator", num)
        object.__setattr__(self, "denominator", den)

    @property
    def type(self) -> tuple[int, int]:
        """(m, n): numerator and denominator degrees."""
        return len(self.numerator) - 1, len(self.denominator)

    def variable_of(self, x) -> np.ndarray:
        return get_basis(self.basis).argument(x, self.interval, self.variable)

    def p(self, x) -> np.ndarray:
        """The numerator P at x."""
        return get_basis(self.basis).val(self.variable_of(x), np.asarray(self.numerator))

    def q(self, x) -> np.ndarray:
        """Q = sum_{j>=1} q_j phi_j at x (zero when n = 0)."""
        v = self.variable_of(x)
        if not self.denominator:
            return np.zeros_like(v)
        return get_basis(self.basis).val(v, np.r_[0.0, self.denominator])

    def d(self, x) -> np.ndarray:
        """The denominator D = 1 + Q (standard) or 1 + |Q| (pau) at x."""
        q = self.q(x)
        return 1.0 + (np.abs(q) if self.form == "pau" else q)

    def __call__(self, x) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.p(x) / self.d(x)

    def _q_roots_x(self, shift: float | None = None) -> np.ndarray:
        """Complex roots, in x, of Q + shift (default: Q for pau, D = 1 + Q for standard)."""
        c = np.r_[0.0, self.denominator] if self.denominator else np.zeros(1)
        shift = (1.0 if self.form == "standard" else 0.0) if shift is None else shift
        c = c.copy()
        c[0] += shift  # phi_0 = 1 in every basis
        c = np.trim_zeros(c, "b")
        if len(c) <= 1:
            return np.zeros(0, dtype=complex)
        b = get_basis(self.basis)
        # numpy maps the roots from the window (the variable) back to the domain (x)
        q = b.kind(c, domain=list(self.interval), window=b.window(self.interval, self.variable))
        return q.roots().astype(complex)

    def poles(self) -> np.ndarray:
        """Zeros of the denominator, in x (complex; none for the pau form, whose D >= 1)."""
        return np.zeros(0, dtype=complex) if self.form == "pau" else self._q_roots_x()

    def piece_poles(self) -> np.ndarray:
        """Poles of the analytic pieces of r: those of P/(1 + Q) and, for pau, of P/(1 - Q) too."""
        if self.form == "standard":
            return self.poles()
        return np.r_[self._q_roots_x(1.0), self._q_roots_x(-1.0)]

    def kinks(self) -> tuple[float, ...]:
        """Points of (lo, hi) where r is not smooth: the real zeros of Q in the pau form."""
        if self.form != "pau":
            return ()
        lo, hi = self.interval
        z = self._q_roots_x()
        tol = 1e-9 * (hi - lo)
        real = z.real[(np.abs(z.imag) <= tol) & (z.real > lo) & (z.real < hi)]
        return tuple(sorted(float(r) for r in real))

    def min_denominator(self) -> float:
        """min of D on [lo, hi]: 0 or less means a pole in the interval (standard form)."""
        lo, hi = self.interval
        if self.form == "standard":
            for z in self.poles():
                if abs(z.imag) <= 1e-12 * (hi - lo) and lo - 1e-12 <= z.real <= hi + 1e-12:
                    return 0.0
        edges = graded_breaks(lo, hi, (), foci(self, ()))
        x = np.concatenate([np.linspace(a, b, 33) for a, b in zip(edges[:-1], edges[1:], strict=True)])
        return float(np.min(self.d(x)))

    def to_dict(self) -> dict:
        return dict(basis=self.basis, variable=self.variable, form=self.form, interval=list(self.interval),
                    numerator=list(self.numerator), denominator=list(self.denominator))

    @classmethod
    def from_dict(cls, d: dict) -> RationalFunction:
        return cls(tuple(d["numerator"]), tuple(d["denominator"]), tuple(d["interval"]), d["variable"],
                   d["form"], d["basis"])


def foci(r: RationalFunction, kinks, kink_delta: float = 0.0) -> list[tuple[float, float]]:
    """Grading centres: the target's kinks (graded to kink_delta), r's own kinks (breakpoints), and the
    poles of r's analytic pieces near the interval (graded to their distance)."""
    lo, hi = r.interval
    w = hi - lo
    out = [(float(k), kink_delta) for k in kinks if lo <= k <= hi]
    out += [(k, math.inf) for k in r.kinks()]
    for z in r.piece_poles():
        c = min(max(z.real, lo), hi)
        dist = abs(complex(z) - c)
        if dist < 0.25 * w:
            out.append((c, dist))
    return out
