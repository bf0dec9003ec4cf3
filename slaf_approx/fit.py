"""Fit an SLAF basis expansion to a target: least squares, minimax (Remez) or gradient descent.

The rational methods ("rational": least squares, "rational-minimax": best uniform, see
:mod:`slaf_approx.rational`) fit P/D of type (m, n) = :func:`~slaf_approx.rational.rational_type`(degree),
m = ceil(degree/2), n = floor(degree/2): as many free parameters as a degree-`degree` polynomial.

``fit(target, degree, method=..., basis=..., interval=...)`` is the one entry point; it validates its
inputs once, runs the method, measures the result's errors exactly (``norms``) and returns a
:class:`FitRecord` holding the coefficients together with the basis, variable and interval they belong to.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from . import norms
from .bases import Basis, SlafPolynomial, check_degree, check_interval, check_variable, from_mapped, get_basis
from .rational import FORMS, RationalFunction, fit_rational_lstsq, fit_rational_minimax, rational_type
from .remez import remez
from .targets import Target, get_target

METHODS = ("lstsq", "minimax", "gradient")
#: rational P/D methods; a record's degree is the polynomial-equivalent degree m + n (equal parameter count)
RATIONAL_METHODS = ("rational", "rational-minimax")
ALL_METHODS = METHODS + RATIONAL_METHODS
OPTIMIZERS = ("adam", "lbfgs")
EPS = np.finfo(float).eps
#: a fit whose (column-scaled) design matrix is worse conditioned than this keeps fewer than half of
#: float64's digits in its coefficients: warn, as numpy.polyfit does with RankWarning.
COND_WARN = EPS**-0.5


class ConditioningWarning(UserWarning):
    """The fit's design matrix is ill-conditioned; its coefficients are inaccurate."""


@dataclass
class FitRecord:
    """One fit and its diagnostics. Coefficients are in increasing degree."""

    target: str
    basis: str
    variable: str
    degree: int
    lo: float
    hi: float
    method: str
    coefficients: list[float]
    max_error: float
    rms_error: float
    levelled_error: float = math.nan  # minimax: h, with h <= E_n <= max_error
    iterations: int = 0
    converged: bool = True
    note: str = ""
    seconds: float = 0.0
    condition_number: float = math.nan
    weight: str = "uniform"
    params: dict = field(default_factory=dict)
    max_error_at: float = math.nan
    gap: float = math.nan  # gradient: (loss - optimal loss) / optimal loss on the training points
    history: list[float] = field(default_factory=list)
    denominator: list[float] = field(default_factory=list)  # rational: q_1..q_n (coefficients = numerator)
    form: str = ""  # rational: "pau" or "standard" (see slaf_approx.rational); "" for a polynomial

    def polynomial(self) -> SlafPolynomial:
        if self.form:
            raise ValueError(f"this is a rational fit ({self.method}); use .rational()")
        return SlafPolynomial(self.basis, tuple(self.coefficients), (self.lo, self.hi), self.variable)

    def rational(self) -> RationalFunction:
        """The fitted P/D (a polynomial record gives D = 1 in the standard form)."""
        return RationalFunction(tuple(self.coefficients), tuple(self.denominator), (self.lo, self.hi),
                                self.variable, self.form or "standard", self.basis)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_target(target: Target | str, params: dict | None = None) -> Target:
    if isinstance(target, str):
        return get_target(target, **(params or {}))
    if not isinstance(target, Target):
        raise TypeError(f"target must be a catalogue name or a Target, got {type(target).__name__}")
    return target.with_params(**params) if params else target


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


def _weights(weight: str, x: np.ndarray) -> np.ndarray:
    kind, sigma = parse_weight(weight)
    if kind == "uniform":
        return np.ones_like(x)
    return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # N(0, sigma^2) density


def solve_lstsq(basis: Basis, v: np.ndarray, y: np.ndarray, degree: int, w: np.ndarray | None = None):
    """Least squares coefficients of sum w (y - V c)^2, V the basis Vandermonde at v; and cond(V scaled).

    Columns are scaled to unit norm before the SVD solve (as numpy.polynomial's fits do), so the condition
    number reflects the basis, not the units.
    """
    A = basis.vander(v, degree)
    if w is not None:
        sw = np.sqrt(w)
        A, y = A * sw[:, None], y * sw
    scl = np.sqrt(np.square(A).sum(0))
    scl[scl == 0] = 1.0
    c, _, _, s = np.linalg.lstsq(A / scl, y, rcond=None)
    cond = float(s[0] / s[-1]) if s[-1] > 0 else math.inf
    return c / scl, cond


def _lstsq(tg, basis, variable, lo, hi, degree, weight, points):
    if points is None:  # continuous: Gauss-Legendre on panels split at the kinks, times the weight
        x, w = norms.quadrature_for(lo, hi, tg.kinks, degree, tg.singularity_distance)
        w = w * _weights(weight, x)
    else:
        x = np.asarray(points, dtype=float).ravel()
        if x.size <= degree or not np.all(np.isfinite(x)):
            raise ValueError(f"points must be more than degree = {degree} finite numbers, got {x.size}")
        w = None if weight == "uniform" else _weights(weight, x)
    p = SlafPolynomial(basis.name, (0.0,), (lo, hi), variable)
    c, cond = solve_lstsq(basis, p.variable_of(x), norms.target_values(tg, x, lo, hi), degree, w)
    return dict(coefficients=c, condition_number=cond, iterations=1)


def _minimax(tg, basis, variable, lo, hi, degree, rtol, maxiter):
    f_t = lambda t: norms.target_values(tg, from_mapped(t, lo, hi), lo, hi)  # noqa: E731
    kinks_t = [(2 * k - lo - hi) / (hi - lo) for k in tg.kinks]
    r = remez(f_t, degree, kinks_t, rtol=rtol, maxiter=maxiter)
    p = SlafPolynomial("chebyshev", tuple(r.cheb), (lo, hi)).convert(basis.name, variable)
    return dict(coefficients=np.asarray(p.coef), levelled_error=r.levelled_error, iterations=r.iterations,
                converged=r.converged, note=r.note, history=[e for _, e in r.history])


def _gradient(tg, basis, variable, lo, hi, degrees, steps, lr, optimizer, seed, npoints):
    """The paper's way: coefficients learned by a torch optimizer on points drawn from the interval.

    Several degrees train together as rows of one masked coefficient matrix. The loss is the sum of the
    rows' losses and each row's gradient depends on its own loss alone, so every row follows the same
    trajectory as a fit of that degree by itself (Adam and the cosine schedule act coordinate-wise; LBFGS
    is not coordinate-wise, so it runs one degree at a time).
    """
    import torch

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if optimizer == "lbfgs" and len(degrees) > 1:
        return [_gradient(tg, basis, variable, lo, hi, [d], steps, lr, optimizer, seed, npoints)[0]
                for d in degrees]
    # The matrices are tiny (npoints x degree): torch's intra-op threads only add synchronisation, and on a
    # busy 2-core machine their spin-waiting made these fits 15x slower. Run them on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(tg, basis, variable, lo, hi, degrees, steps, lr, optimizer, seed, npoints)
    finally:
        torch.set_num_threads(threads)


def _train(tg, basis, variable, lo, hi, degrees, steps, lr, optimizer, seed, npoints):
    import torch

    x = np.random.default_rng(seed).uniform(lo, hi, npoints)
    y = norms.target_values(tg, x, lo, hi)
    v = SlafPolynomial(basis.name, (0.0,), (lo, hi), variable).variable_of(x)
    V = basis.vander(v, max(degrees))
    mask = np.arange(V.shape[1])[None, :] <= np.asarray(degrees)[:, None]  # [fits, max degree + 1]

    Vt, yt, mt = torch.from_numpy(V), torch.from_numpy(y)[:, None], torch.from_numpy(mask.astype(float))
    a = torch.zeros(mask.shape, dtype=torch.float64, requires_grad=True)

    def losses():  # one mean squared error per fit
        return torch.mean((Vt @ (a * mt).T - yt) ** 2, dim=0)

    history = []
    if optimizer == "adam":
        opt = torch.optim.Adam([a], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        every = max(1, steps // 100)
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = losses()
            loss.sum().backward()
            opt.step()
            sched.step()
            if i % every == 0:
                history.append(loss.detach().numpy().copy())
    else:
        opt = torch.optim.LBFGS([a], lr=1.0, max_iter=steps, history_size=50, line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = losses()
            loss.sum().backward()
            history.append(loss.detach().numpy().copy())
            return loss.sum()

        opt.step(closure)
    A = (a * mt).detach().numpy()
    outs = []
    for k, d in enumerate(degrees):
        c = A[k, : d + 1].copy()
        c_opt, cond = solve_lstsq(basis, v, y, d)
        best = float(np.mean((V[:, : d + 1] @ c_opt - y) ** 2))
        final = float(np.mean((V[:, : d + 1] @ c - y) ** 2))
        ok = bool(np.all(np.isfinite(c)))
        outs.append(dict(coefficients=c, history=[float(h[k]) for h in history] + [final], iterations=steps,
                         converged=ok, gap=(final - best) / best if best > 0 else final,
                         condition_number=cond, note="" if ok else "diverged (non-finite coefficients)"))
    return outs


def _record(tg, b, variable, lo, hi, degree, method, weight, points, out) -> FitRecord:
    """Measure the fit's errors exactly and package everything as a FitRecord."""
    c = np.asarray(out.pop("coefficients"), dtype=float)
    poly = SlafPolynomial(b.name, tuple(c), (lo, hi), variable)
    f = lambda x: norms.target_values(tg, x, lo, hi)  # noqa: E731
    if np.all(np.isfinite(c)):
        emax, at = norms.max_error(f, poly, lo, hi, tg.kinks, degree)
        rms = norms.rms_error(f, poly, lo, hi, tg.kinks, degree, tg.singularity_distance)
    else:
        emax, at, rms = math.inf, math.nan, math.inf
    out["converged"] = bool(out.get("converged", True))
    cond = out.get("condition_number", math.nan)
    if cond > COND_WARN:
        warnings.warn(f"{b.name} basis ({variable}) at degree {degree} on [{lo}, {hi}] is ill-conditioned: "
                      f"condition number {cond:.3g} > {COND_WARN:.3g}", ConditioningWarning, stacklevel=4)
    return FitRecord(target=tg.name, basis=b.name, variable=variable, degree=degree, lo=lo, hi=hi,
                     method=method, coefficients=c.tolist(), max_error=emax, max_error_at=at, rms_error=rms,
                     weight=weight if points is None else f"{weight} (points)", params=dict(tg.params), **out)


def fit_degrees(target: Target | str, degrees, method: str = "lstsq", basis: str = "chebyshev",
                interval=(-3.0, 3.0), *, variable: str | None = None, params: dict | None = None,
                weight: str = "uniform", points=None, rtol: float | None = None, maxiter: int = 60,
                steps: int = 2000, lr: float = 0.05, optimizer: str = "adam", seed: int = 0,
                npoints: int = 1024, form: str | None = None) -> list[FitRecord]:
    """:func:`fit` for several degrees at once (gradient fits train together; `seconds` is shared out)."""
    t0 = time.perf_counter()
    b = get_basis(basis)
    variable = variable or ("raw" if b.name == "power" else "mapped")
    check_variable(b, variable)
    degrees = [check_degree(d) for d in degrees]
    if not degrees:
        raise ValueError("degrees must hold at least one degree")
    lo, hi = check_interval(interval)
    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(ALL_METHODS)}")
    parse_weight(weight)
    tg = resolve_target(target, params)
    if method in RATIONAL_METHODS:
        return _rational_fits(tg, b, variable, lo, hi, degrees, method, weight, points, form, rtol, maxiter)
    if form is not None:
        raise ValueError(f"form is an option of the rational methods ({', '.join(RATIONAL_METHODS)})")
    rtol = 1e-9 if rtol is None else rtol
    if method == "lstsq":
        outs = [_lstsq(tg, b, variable, lo, hi, d, weight, points) for d in degrees]
    elif method == "minimax":
        if weight != "uniform" or points is not None:
            raise ValueError("minimax fits take neither a weight nor points (uniform on the interval)")
        outs = [_minimax(tg, b, variable, lo, hi, d, rtol, maxiter) for d in degrees]
    else:
        outs = _gradient(tg, b, variable, lo, hi, degrees, steps, lr, optimizer, seed, npoints)
    records = [_record(tg, b, variable, lo, hi, d, method, weight, points, out)
               for d, out in zip(degrees, outs, strict=True)]
    share = (time.perf_counter() - t0) / len(records)
    for r in records:
        r.seconds = share
    return records


def _rational_fits(tg, b, variable, lo, hi, degrees, method, weight, points, form, rtol, maxiter):
    """Rational fits of type rational_type(d) for each degree d, as FitRecords (degree = m + n)."""
    if points is not None:
        raise ValueError("rational fits take no points (they fit on the whole interval)")
    form = form or ("pau" if method == "rational" else "standard")
    if form not in FORMS:
        raise ValueError(f"unknown rational form {form!r}; allowed: {', '.join(FORMS)}")
    records, prev = [], None
    for d in degrees:
        t0 = time.perf_counter()
        m, n = rational_type(d)
        if method == "rational":  # the previous degree's fit is one of the starts (continuation)
            wf = None if weight == "uniform" else (lambda x: _weights(weight, x))
            r = fit_rational_lstsq(tg, m, n, (lo, hi), form, basis=b.name, variable=variable, weight=wf,
                                   start=prev)
            prev = r.function
        else:
            if weight != "uniform":
                raise ValueError("rational-minimax fits take no weight (uniform on the interval)")
            r = fit_rational_minimax(tg, m, n, (lo, hi), form, basis=b.name, variable=variable,
                                     rtol=1e-6 if rtol is None else rtol, maxiter=maxiter)
        fn = r.function
        records.append(FitRecord(
            target=tg.name, basis=fn.basis, variable=fn.variable, degree=d, lo=lo, hi=hi, method=method,
            coefficients=list(fn.numerator), max_error=r.max_error, rms_error=r.rms_error,
            levelled_error=r.levelled_error, iterations=r.iterations, converged=r.converged, note=r.note,
            seconds=time.perf_counter() - t0, weight=weight, params=dict(tg.params),
            max_error_at=r.max_error_at, history=list(r.history), denominator=list(fn.denominator),
            form=fn.form))
    return records


def fit(target: Target | str, degree: int, method: str = "lstsq", basis: str = "chebyshev",
        interval=(-3.0, 3.0), **options) -> FitRecord:
    """Fit `target` by a degree-`degree` expansion in `basis` on `interval` with `method`.

    Args:
        target: a catalogue name (see ``slaf-approx targets``) or a :class:`Target`.
        degree: 0 ... 64.
        method: "lstsq" (best L2 with uniform or `weight`ed measure; discrete on `points` if given),
            "minimax" (Remez; `rtol` is the certificate's relative gap), "gradient" (torch `optimizer`
            for `steps` on `npoints` uniform samples, seeded by `seed`); "rational" (best L2 rational
            P/D, `form` "pau" by default) and "rational-minimax" (best uniform rational with its
            certificate, `rtol` default 1e-6, `form` "standard" by default), both of type
            (ceil(degree/2), floor(degree/2)): numerator in `coefficients`, q_1..q_n in `denominator`.
        basis: "power", "chebyshev", "legendre" or "hermite".
        interval: (lo, hi), finite, lo < hi.
        options: variable ("mapped" = t in [-1, 1]; power basis also "raw" = x itself, the paper's form
            and the power basis' default), params (target parameters, e.g. {"beta": 2}), weight
            ("uniform", "normal", "normal:SIGMA"), points, rtol, maxiter, steps, lr, optimizer, seed,
            npoints, form (rational methods: "pau" or "standard").
    """
    return fit_degrees(target, [degree], method, basis, interval, **options)[0]
