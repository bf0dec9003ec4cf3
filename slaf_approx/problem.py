"""The fitting problem, and the one target lookup, approximant evaluator and error measurement.

A :class:`FitProblem` is everything a fitting method needs to know besides the degree: the target (a
catalogue :class:`~slaf_approx.targets.Target` or any numpy-vectorised Python callable), the basis, the
variable the basis is evaluated in, the interval, the weight (of the least-squares measure, and in minimax
of the sup norm max |w (f - p)|), the error kind (relative error: w = 1/|f|, f's simple zeros pinned), the
pins (p(X) = f(X)) and a forced parity. It is built and validated once (:meth:`FitProblem.make`), and every
method (lstsq, minimax, gradient, rational) takes it; those that solve only the plain problem refuse the rest.

* :func:`resolve_target` turns a catalogue name, a Target or a callable into a target (the one lookup).
* :func:`approximant` turns a fitted row (a FitRecord, a results-table row or a coefficient-file entry)
  into the callable it describes: a :class:`~slaf_approx.bases.SlafPolynomial` or a
  :class:`~slaf_approx.ratfun.RationalFunction` (the one evaluator).
* :func:`measure` gives the exact max and rms errors of an approximant on a problem (the one error
  measurement); :func:`measure_row` does it for a row against its catalogue target.

A callable's kinks are unknown unless given (:class:`FunctionTarget`): it is then sampled on adaptive panels
(bisected until f is resolved on each, :func:`~slaf_approx.norms.adaptive_panels`; kinks are found where the
bisection bottoms out), or on ``DENSE_PANELS`` uniform panels when that fails, and the problem's ``note``
says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import norms
from .bases import Basis, SlafPolynomial, check_interval, check_variable, from_mapped, get_basis, to_mapped
from .ratfun import RationalFunction, foci
from .targets import Target, get_target

#: panels a target of unknown kinks is sampled on (for quadrature, the max-error search and Remez)
DENSE_PANELS = 32


class FunctionTarget:
    """A plain numpy-vectorised Python callable as a target, with optional kinks and singularities.

    Without `kinks` its smoothness is unknown (``kinks_known`` False) and it is sampled densely.
    """

    def __init__(self, fn: Callable, name: str | None = None, kinks=None, singularities=()):
        if not callable(fn):
            raise TypeError(f"a function target must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "") or "function"
        if self.name == "<lambda>":
            self.name = "lambda"
        self.kinks_known = kinks is not None
        try:
            self.kinks = tuple(sorted(float(k) for k in (kinks or ())))
            self.singularities = tuple(complex(z) for z in singularities)
        except (TypeError, ValueError):
            raise ValueError(f"function target {self.name!r}: kinks must be numbers and singularities "
                             f"complex numbers, got {kinks!r} and {singularities!r}") from None
        self.params: dict = {}

    def __call__(self, x) -> np.ndarray:
        return np.asarray(self.fn(np.asarray(x, dtype=float)), dtype=float)

    @property
    def singularity_distance(self) -> float:
        if not self.singularities:
            return math.nan
        return min(abs(z.imag) for z in self.singularities)

    def with_params(self, **params) -> FunctionTarget:
        if params:
            raise ValueError(f"function target {self.name!r} takes no parameters, got {', '.join(params)}")
        return self

    def __repr__(self) -> str:
        return f"FunctionTarget({self.name!r}, kinks={self.kinks if self.kinks_known else None})"


def resolve_target(target, params: Mapping | None = None):
    """A target from a catalogue name, a Target or a numpy-vectorised callable (the one lookup)."""
    if isinstance(target, str):
        return get_target(target, **dict(params or {}))
    if isinstance(target, (Target, FunctionTarget)):
        return target.with_params(**dict(params)) if params else target
    if callable(target):
        return FunctionTarget(target).with_params(**dict(params or {}))
    raise TypeError(f"target must be a catalogue name, a Target or a numpy-vectorised callable, "
                    f"got {type(target).__name__}")


def parse_weight(weight: str) -> tuple[str, float]:
    """'uniform', 'normal' (sigma = 1) or 'normal:SIGMA' -> (kind, sigma)."""
    if weight == "uniform":
        return "uniform", math.nan
    if isinstance(weight, str) and weight.split(":")[0] == "normal":
        parts = weight.split(":")
        try:
            sigma = float(parts[1]) if len(parts) == 2 else 1.0 if len(parts) == 1 else math.nan
        except ValueError:
            sigma = math.nan
        if math.isfinite(sigma) and sigma > 0:
            return "normal", sigma
    raise ValueError(f"unknown weight {weight!r}; allowed: 'uniform', 'normal' or 'normal:SIGMA' (SIGMA > 0)")


ERROR_KINDS = ("absolute", "relative")
PARITIES = ("even", "odd")


def check_pins(pin, lo: float, hi: float) -> tuple[float, ...]:
    """Pins as ascending distinct floats inside [lo, hi]; ValueError naming a bad one."""
    if pin is None:
        return ()
    try:
        pins = [float(x) for x in (pin if np.ndim(pin) else [pin])]
    except (TypeError, ValueError):
        raise ValueError(f"pin must be numbers inside the interval, got {pin!r}") from None
    for x in pins:
        if not (math.isfinite(x) and lo <= x <= hi):
            raise ValueError(f"pin {x!r} is not inside the interval [{lo}, {hi}]")
    if len(set(pins)) < len(pins):
        raise ValueError(f"pins must be distinct, got {pins}")
    return tuple(sorted(pins))


def check_parity(parity, lo: float, hi: float) -> str:
    """'' (free), 'even' or 'odd'; a forced parity needs an interval symmetric about 0."""
    if parity in (None, "", "none"):
        return ""
    if parity not in PARITIES:
        raise ValueError(f"unknown parity {parity!r}; allowed: {', '.join(PARITIES)}")
    if lo != -hi:
        raise ValueError(f"parity {parity!r} needs an interval symmetric about 0, got [{lo}, {hi}]")
    return parity


def simple_zeros(f: Callable, lo: float, hi: float, breaks=(), name: str = "target") -> tuple[float, ...]:
    """The zeros of f in (lo, hi), each a simple zero (f changes sign, and f(x)/(x - x0) stays away from 0
    on both sides); ValueError naming any other zero (at an end, a double zero, a run of zeros), where the
    relative error (f - p)/f of a pinned p is unbounded or undefined.

    Found on a dense grid (sign changes, exact zeros), located by bisection to adjacent floats.
    """
    x = np.unique(np.r_[np.linspace(lo, hi, 4097), [b for b in breaks if lo < b < hi]])
    y = f(x)
    allowed = "allowed: targets without zeros on the interval, or with simple interior zeros"
    if y[0] == 0.0 or y[-1] == 0.0:
        at = lo if y[0] == 0.0 else hi
        raise ValueError(f"relative error: {name} is 0 at the interval's end x = {at!r}; {allowed}")
    zeros = []
    for i in range(1, len(x) - 1):
        if y[i] == 0.0:
            if not y[i - 1] * y[i + 1] < 0.0:
                raise ValueError(f"relative error: {name} has a zero at x = {float(x[i])!r} that is not "
                                 f"simple (it does not change sign there); {allowed}")
            zeros.append(float(x[i]))
    for i in np.flatnonzero(y[:-1] * y[1:] < 0.0):
        a, b, ya = float(x[i]), float(x[i + 1]), float(y[i])
        while True:
            m = 0.5 * (a + b)
            if m in (a, b):
                break
            ym = float(f(np.array([m]))[0])
            if ym == 0.0:
                a = b = m
                break
            a, b, ya = (m, b, ym) if ym * ya > 0.0 else (a, m, ya)
        zeros.append(a if abs(float(f(np.array([a]))[0])) <= abs(float(f(np.array([b]))[0])) else b)
    zeros = sorted(zeros)
    for z in zeros:
        h = 1e-5 * (hi - lo)
        d = np.array([h, h / 16, -h, -h / 16])
        ratio = f(z + d) / d
        if not (np.all(ratio > 0) or np.all(ratio < 0)) or \
                max(abs(ratio[0] / ratio[1]), abs(ratio[1] / ratio[0]), abs(ratio[2] / ratio[3]),
                    abs(ratio[3] / ratio[2])) > 2.0:
            raise ValueError(f"relative error: {name} has a zero at x = {z!r} that is not simple "
                             f"(f(x)/(x - {z:.6g}) does not tend to a nonzero limit); {allowed}")
    return tuple(zeros)


def weight_values(weight: str, x: np.ndarray) -> np.ndarray:
    kind, sigma = parse_weight(weight)
    if kind == "uniform":
        return np.ones_like(x)
    return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # N(0, sigma^2) density


@dataclass(frozen=True)
class FitProblem:
    """What is fitted: target on [lo, hi] by a series in `basis` of `variable`, under `weight` (least squares:
    the measure; minimax: max |w (f - p)|), `error` kind, `pin` constraints and forced `parity`."""

    target: Any
    basis: Basis
    variable: str
    interval: tuple[float, float]
    weight: str = "uniform"
    #: "absolute": the error is f - p; "relative": (f - p)/|f| (minimax only; see :func:`simple_zeros`)
    error: str = "absolute"
    #: points x where p(x) = f(x) is imposed (interpolation constraints), ascending
    pin: tuple[float, ...] = ()
    #: "even" or "odd": p forced to that parity (a symmetric interval); "" = free
    parity: str = ""
    #: relative error: the simple zeros of f in the interval, each imposed as a pin (set by make)
    zeros: tuple[float, ...] = ()
    #: for a target of unknown kinks: the adaptive panels' breakpoints and the kinks found (set by make)
    panel_breaks: tuple[float, ...] | None = None
    found_kinks: tuple[float, ...] = ()

    @classmethod
    def make(cls, target, basis: str | Basis = "chebyshev", interval=(-3.0, 3.0), variable: str | None = None,
             weight: str = "uniform", params: Mapping | None = None, *, error: str = "absolute",
             pin=(), parity: str | None = None) -> FitProblem:
        """Validate everything once: basis, variable (default: the basis' own), interval, weight, error
        kind, pins, parity, target, and that the target is finite and bounded on the interval."""
        b = get_basis(basis)
        variable = check_variable(b, variable or b.default_variable)
        lo, hi = check_interval(interval)
        parse_weight(weight)
        if error not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {error!r}; allowed: {', '.join(ERROR_KINDS)}")
        pins = check_pins(pin, lo, hi)
        parity = check_parity(parity, lo, hi)
        p = cls(resolve_target(target, params), b, variable, (lo, hi), weight, error, pins, parity)
        norms.check_bounded(p.f, norms.breakpoints(lo, hi, p.breaks), p.target.name)
        if not p.kinks_known:
            found = norms.adaptive_panels(p.f, lo, hi)
            if found is not None:
                p = replace(p, panel_breaks=found[0], found_kinks=found[1])
        if parity and pins:
            p = replace(p, pin=p._parity_pins())
        if error == "relative":
            p = replace(p, zeros=simple_zeros(p.f, lo, hi, p.breaks, p.name))
        return p

    def _parity_pins(self) -> tuple[float, ...]:
        """Pins under a forced parity: X and -X are one constraint; an odd p is 0 at 0, so a pin at 0
        holds by itself when f(0) = 0 and is infeasible otherwise."""
        mags = [abs(x) for x in self.pin]
        if len(set(mags)) < len(mags):
            raise ValueError(f"with parity {self.parity!r}, pin X or -X, not both (p(-X) = "
                             f"{'' if self.parity == 'even' else '-'}p(X)); got pins {list(self.pin)}")
        if self.parity == "odd" and 0.0 in self.pin:
            f0 = float(self.f(np.zeros(1))[0])
            if f0 != 0.0:
                raise ValueError(f"pin 0 with parity 'odd': an odd polynomial is 0 at 0, but "
                                 f"{self.name}(0) = {f0!r}")
            return tuple(x for x in self.pin if x != 0.0)
        return self.pin

    @property
    def lo(self) -> float:
        return self.interval[0]

    @property
    def hi(self) -> float:
        return self.interval[1]

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def params(self) -> dict:
        return dict(self.target.params)

    @property
    def kinks_known(self) -> bool:
        return bool(getattr(self.target, "kinks_known", True))

    @property
    def kinks(self) -> tuple[float, ...]:
        """The target's kinks strictly inside the interval (for unknown kinks: those found)."""
        return tuple(k for k in self.target.kinks + self.found_kinks if self.lo < k < self.hi)

    @property
    def breaks(self) -> tuple[float, ...]:
        """Panel breakpoints inside the interval: the kinks, or for unknown kinks the adaptive panels (else
        DENSE_PANELS uniform ones)."""
        if self.kinks_known:
            return self.kinks
        if self.panel_breaks is not None:
            return self.panel_breaks
        return tuple(np.linspace(self.lo, self.hi, DENSE_PANELS + 1)[1:-1].tolist()) + self.kinks

    @property
    def singularities(self) -> tuple[complex, ...]:
        return tuple(getattr(self.target, "singularities", ()))

    @property
    def note(self) -> str:
        """What the record should say about how the target was sampled."""
        if self.kinks_known:
            return ""
        if self.panel_breaks is None:
            return f"kinks unknown: sampled on {DENSE_PANELS} uniform panels (adaptive ones failed)"
        found = ", ".join(f"{k:.6g}" for k in self.found_kinks[:5]) + (" ..." * (len(self.found_kinks) > 5))
        return (f"kinks unknown: sampled on {len(self.panel_breaks) + 1} adaptive panels"
                + (f"; kinks found at x = {found}" if found else ""))

    def f(self, x) -> np.ndarray:
        """Target values at x, checked finite."""
        return norms.target_values(self.target, np.asarray(x, dtype=float), self.lo, self.hi)

    def f_t(self, t) -> np.ndarray:
        """Target values at the mapped points t in [-1, 1]."""
        return self.f(from_mapped(t, self.lo, self.hi))

    def breaks_t(self) -> list[float]:
        return [float(to_mapped(k, self.lo, self.hi)) for k in self.breaks]

    def argument(self, x) -> np.ndarray:
        return self.basis.argument(x, self.interval, self.variable)

    def weights(self, x) -> np.ndarray:
        return weight_values(self.weight, np.asarray(x, dtype=float))

    @property
    def plain(self) -> bool:
        """Uniform absolute error, no pins, no forced parity: the classical problem."""
        return self.weight == "uniform" and self.error == "absolute" and not self.pin and not self.parity

    @property
    def constraints(self) -> tuple[float, ...]:
        """Every point where p(x) = f(x) is imposed: the pins and, for relative error, f's zeros."""
        return tuple(sorted(set(self.pin) | set(self.zeros)))

    def sup_weight(self, x) -> np.ndarray:
        """The weight of the minimax problem max |w (f - p)|: the measure's weight, over |f| for relative
        error (infinite at f's zeros; see :meth:`weighted_max_error`)."""
        w = self.weights(x)
        if self.error == "relative":
            with np.errstate(divide="ignore"):
                w = w / np.abs(self.f(x))
        return w

    def weight_scale(self) -> float:
        """max |w f| on a grid off the zeros: the size of the weighted errors' rounding noise per ulp."""
        x = self.off_zeros(np.linspace(self.lo, self.hi, 129))
        return float(np.max(np.abs(self.sup_weight(x) * self.f(x))))

    def off_zeros(self, x) -> np.ndarray:
        """x with points next to a zero of f moved to the exchange's distance from it (see remez.HOLE)."""
        from .remez import HOLE, clear_of

        return clear_of(x, self.zeros, HOLE * 0.5 * (self.hi - self.lo))

    def weighted_max_error(self, g) -> tuple[float, float]:
        """(sup |w (f - g)|, where): the weighted error the minimax problem minimises. At a zero x0 of f
        (relative error, g(x0) = f(x0) imposed) the 0/0 is read at x0 +- HOLE, as the exchange reads it."""
        lo, hi = self.interval

        def e(x):
            x = self.off_zeros(x)
            return self.sup_weight(x) * (self.f(x) - g(x))

        xs, es = norms.signed_extrema(e, norms.breakpoints(lo, hi, self.breaks), norms.grid_size(g.degree))
        i = int(np.argmax(np.abs(es)))
        return float(abs(es[i])), float(xs[i])

    def quadrature(self, degree: int) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights of the problem's measure (uniform times the weight) for degree-`degree` fits."""
        x, w = norms.quadrature_for(self.lo, self.hi, self.breaks, degree, self.singularities)
        return x, w * self.weights(x)

    def polynomial(self, coef) -> SlafPolynomial:
        return SlafPolynomial(self.basis.name, tuple(np.asarray(coef, dtype=float).ravel()), self.interval,
                              self.variable)


def _field(row, key, default=None):
    if isinstance(row, Mapping):
        return row.get(key, default)
    return getattr(row, key, default)


def approximant(row) -> SlafPolynomial | RationalFunction:
    """The fitted function a row describes (FitRecord, results-table row or coefficient-file entry).

    Interval from ``interval`` or ``lo``/``hi``; a non-empty ``form`` makes it a RationalFunction.
    """
    interval = _field(row, "interval")
    interval = tuple(interval) if interval is not None else (_field(row, "lo"), _field(row, "hi"))
    coef = _field(row, "coefficients")
    coef = () if coef is None else tuple(np.asarray(coef, dtype=float).ravel())
    if not coef:
        raise ValueError("a fitted row needs at least one coefficient, got none")
    if _field(row, "form"):
        return RationalFunction(coef, tuple(_field(row, "denominator") or ()), interval,
                                _field(row, "variable"), _field(row, "form"), _field(row, "basis"))
    return SlafPolynomial(_field(row, "basis"), coef, interval, _field(row, "variable"))


def measure(problem: FitProblem, g: SlafPolynomial | RationalFunction) -> tuple[float, float, float]:
    """(max |f - g|, where it is attained, rms error) on the problem's interval; (inf, nan, inf) for
    non-finite coefficients or a denominator vanishing on the interval."""
    lo, hi = problem.interval
    if isinstance(g, RationalFunction):
        m, n = g.type
        if not (np.all(np.isfinite(g.numerator)) and np.all(np.isfinite(g.denominator))) or \
                g.min_denominator() <= 0.0:
            return math.inf, math.nan, math.inf
        # f - r varies fast near r's own kinks and near poles: panels graded towards them
        edges = norms.graded_breaks(lo, hi, problem.breaks, foci(g, problem.kinks))
        emax, at = norms.max_error(problem.f, g, lo, hi, edges[1:-1], m + n)
        sing = norms.graded_breaks(lo, hi, (), norms.singularity_foci(lo, hi, problem.singularities))
        x, w = norms.gauss_nodes(norms.panels(lo, hi, np.union1d(edges, sing)[1:-1], 2.0), m + n + 32)
        e = problem.f(x) - g(x)
        return emax, at, math.sqrt(float(np.dot(w, e * e)) / (hi - lo))
    if not np.all(np.isfinite(g.coef)):
        return math.inf, math.nan, math.inf
    # a peak narrower than the grid (a singularity close to the axis) needs the graded panels to be seen
    edges = norms.graded_breaks(lo, hi, problem.breaks, norms.singularity_foci(lo, hi, problem.singularities))
    with np.errstate(over="ignore", invalid="ignore"):
        emax, at = norms.max_error(problem.f, g, lo, hi, edges[1:-1], g.degree)
        rms = norms.rms_error(problem.f, g, lo, hi, problem.breaks, g.degree, problem.singularities)
    return emax, at, rms


def measure_row(row, target=None) -> tuple[float, float, float]:
    """:func:`measure` of a row's approximant against `target` (default: the row's catalogue target with
    its params), on the row's interval."""
    g = approximant(row)
    tg = resolve_target(target if target is not None else _field(row, "target"),
                        None if target is not None else _field(row, "params"))
    basis = g.basis if isinstance(g.basis, str) else g.basis.name
    return measure(FitProblem(tg, get_basis(basis), g.variable, g.interval), g)
