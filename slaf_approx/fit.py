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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .bases import MAX_DEGREE, Basis, SlafPolynomial, check_degree, from_mapped, to_mapped
from .coefround import check_coef_dtype, constant_floor, round_coefficients
from .precision import achieved_error, check_dtype
from .problem import FitProblem, approximant, measure, parse_weight, resolve_target  # noqa: F401 (API)
from .ratfun import FORMS, RationalFunction
from .rational import rational_lstsq, rational_minimax, rational_type
from .remez import remez, remez_constrained

OPTIMIZERS = ("adam", "lbfgs")
EPS = np.finfo(float).eps
#: a fit whose (column-scaled) design matrix is worse conditioned than this keeps fewer than half of
#: float64's digits in its coefficients: warn, as numpy.polyfit does with RankWarning.
COND_WARN = EPS**-0.5
#: a gradient fit has converged when its training loss is within this fraction of the least-squares
#: optimum on the same points ((loss - optimum) / optimum <= GRADIENT_GAP)
GRADIENT_GAP = 1e-3
DEFAULT_BASIS = "chebyshev"
DEFAULT_INTERVAL = (-3.0, 3.0)


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
    #: the error minimised: "absolute" (f - p) or "relative" ((f - p)/|f|); max_error is always absolute
    error_kind: str = "absolute"
    #: minimax: sup |w (f - p)| under the problem's weight (w = 1/|f| for relative error, times the normal
    #: density for weight "normal:SIGMA"); levelled_error <= E_w <= weighted_max_error is the certificate
    weighted_max_error: float = math.nan
    pin: list[float] = field(default_factory=list)  # points x where p(x) = f(x) was imposed
    parity: str = ""  # "even" or "odd" when forced; "" otherwise
    #: the dtype the approximant runs in, and its errors there against the float64 target at the dtype's
    #: inputs, as the kernels evaluate it (slaf_approx.precision.achieved_error); nan when not asked for
    #: (fit's dtype=None: the fitting stack then needs neither torch nor a kernel build) or not measurable
    dtype: str = "float64"
    achieved_error: float = math.nan
    achieved_rms: float = math.nan
    #: the format the coefficients are representable in (see slaf_approx.coefround); float64: not rounded
    coef_dtype: str = "float64"
    #: coef_dtype other than float64: the max error (weighted, under a weight) of naively rounded coefficients
    naive_error: float = math.nan
    #: coef_dtype other than float64: a proven lower bound on the max error of every polynomial in this basis
    #: whose constant coefficient is representable in coef_dtype (coefround.constant_floor); nan if unknown
    coef_floor: float = math.nan
    #: coef_dtype other than float64: the max error evaluated in coef_dtype (inputs, coefficients and the SLAF
    #: kernel's arithmetic; precision.achieved_error) of the stored coefficients and of naive rounding's
    coef_achieved_error: float = math.nan
    naive_achieved_error: float = math.nan

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


def solve_lstsq(basis: Basis, v: np.ndarray, y: np.ndarray, degree: int, w: np.ndarray | None = None,
                parity: str = "", pins: tuple[np.ndarray, np.ndarray] | None = None):
    """Least squares coefficients of sum w (y - V c)^2, V the basis Vandermonde at v; and cond(V scaled).

    Columns are scaled to unit norm before the SVD solve (as numpy.polynomial's fits do), so the condition
    number reflects the basis, not the units. `parity` keeps only the even or odd basis functions (the
    others' coefficients are exactly 0). `pins` = (arguments u, values f): the constrained problem with
    V(u) c = f, solved by the null-space method: c = c0 + N z, c0 the least-norm solution of the
    constraints (from the QR factors of V(u)^T) and N the rest of Q, then z by least squares.
    """
    A = basis.vander(v, degree)
    keep = basis.parity_columns(degree, parity)
    A = A[:, keep]
    if w is not None:
        sw = np.sqrt(w)
        A, y = A * sw[:, None], y * sw
    scl = np.sqrt(np.square(A).sum(0))
    scl[scl == 0] = 1.0
    A = A / scl
    c0 = np.zeros(A.shape[1])
    N = None
    if pins is not None and len(pins[0]):
        B = basis.vander(pins[0], degree)[:, keep] / scl
        k = B.shape[0]
        if k >= B.shape[1]:
            raise ValueError(f"{k} pin(s) leave no free coefficient at degree {degree} (at most "
                             f"{B.shape[1] - 1} here)")
        Q, R = np.linalg.qr(B.T, mode="complete")
        d = np.abs(np.diag(R[:k]))
        if np.min(d) <= 64 * EPS * np.max(d):
            raise ValueError(f"the pins {list(pins[0])} are dependent constraints for the basis functions "
                             f"kept (parity {parity or 'free'})")
        c0 = Q[:, :k] @ np.linalg.solve(R[:k].T, pins[1])
        N = Q[:, k:]
        y = y - A @ c0
        A = A @ N
    z, _, _, s = np.linalg.lstsq(A, y, rcond=None)
    cond = float(s[0] / s[-1]) if s[-1] > 0 else math.inf
    c = np.zeros(degree + 1)
    c[keep] = (c0 + (z if N is None else N @ z)) / scl
    return c, cond


def design_condition(problem: FitProblem, degree: int) -> float:
    """cond of the column-scaled Vandermonde matrix of the problem's basis on Chebyshev points of the
    interval: how many digits coefficients in this basis lose, whatever method produced them."""
    x = from_mapped(np.cos(np.pi * (np.arange(2 * degree + 2) + 0.5) / (2 * degree + 2)), *problem.interval)
    A = problem.basis.vander(problem.argument(x), degree)
    scl = np.sqrt(np.square(A).sum(0))
    scl[scl == 0] = 1.0
    s = np.linalg.svd(A / scl, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else math.inf


# --------------------------------------------------------------------------------------------
# The methods. Each takes the problem, the degrees and the options, checks the options it does not
# take before any work, and returns one dict of FitRecord fields per degree ("coefficients" required;
# errors are measured by `fit_degrees` unless the method measured them itself).
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[FitProblem, list[int], dict], list[dict]]
    rational: bool = False
    check: Callable[[dict], object] | None = None  # validates the options before the problem is built


REGISTRY: dict[str, Method] = {}


def register(name: str, rational: bool = False, check: Callable[[dict], object] | None = None):
    """Decorator: `fn(problem, degrees, options) -> [dict of FitRecord fields per degree]` is `name`."""
    def deco(fn):
        REGISTRY[name] = Method(name, fn, rational, check)
        return fn
    return deco


def _refuse(opts: dict, method: str, **what) -> None:
    """ValueError when an option `method` does not take was set (what: option -> its default)."""
    for key, default in what.items():
        if opts.get(key, default) != default:
            raise ValueError(f"{method} fits take no {key} (got {opts[key]!r})")


def _plain_only(problem: FitProblem, method: str) -> None:
    """ValueError when a method that solves only the classical problem gets relative error, pins or parity."""
    for key, value, default in (("error", problem.error, "absolute"), ("pin", problem.pin, ()),
                                ("parity", problem.parity, "")):
        if value != default:
            raise ValueError(f"{method} fits take no {key} (got {value!r}); lstsq and minimax do")


@register("lstsq")
def _lstsq(problem: FitProblem, degrees: list[int], opts: dict) -> list[dict]:
    """Best L2 in the problem's measure (Gauss-Legendre on kink-split panels), or discrete on `points`;
    under the problem's pins (p(X) = f(X)) and forced parity, the constrained least squares."""
    _refuse(opts, "lstsq", form=None)
    if problem.error != "absolute":
        raise ValueError("lstsq fits take no relative error (the relative error is a minimax option)")
    points = opts.get("points")
    if points is not None:
        x = np.asarray(points, dtype=float).ravel()
        if x.size <= max(degrees) or not np.all(np.isfinite(x)):
            raise ValueError(f"points must be more than degree = {max(degrees)} finite numbers, got {x.size}")
    outs = []
    for d in degrees:
        if points is None:  # continuous: Gauss-Legendre on panels split at the kinks, times the weight
            x, w = problem.quadrature(d)
        else:
            w = None if problem.weight == "uniform" else problem.weights(x)
        pins = None
        if problem.pin:
            px = np.asarray(problem.pin)
            pins = (problem.argument(px), problem.f(px))
        c, cond = solve_lstsq(problem.basis, problem.argument(x), problem.f(x), d, w, problem.parity, pins)
        outs.append(dict(coefficients=c, condition_number=cond, iterations=1))
    return outs


@register("minimax")
def _minimax(problem: FitProblem, degrees: list[int], opts: dict) -> list[dict]:
    """Remez in Chebyshev polynomials of t, converted to the problem's basis; certified afterwards.

    The problem's weight, relative error (w = 1/|f|), pins and parity make it the weighted, constrained
    exchange of :func:`~slaf_approx.remez.remez_constrained`, certified for that problem."""
    if opts.get("points") is not None:
        raise ValueError("minimax fits take no points (the sup is over the whole interval)")
    _refuse(opts, "minimax", form=None)
    rtol = 1e-9 if opts.get("rtol") is None else opts["rtol"]
    maxiter = opts.get("maxiter", 60)
    outs = []
    lo, hi = problem.interval
    for d in degrees:
        if problem.plain:
            r = remez(problem.f_t, d, problem.breaks_t(), rtol=rtol, maxiter=maxiter)
        else:
            r = remez_constrained(
                problem.f_t, d, problem.breaks_t(),
                weight=lambda t: problem.sup_weight(from_mapped(t, lo, hi)),
                pins_t=to_mapped(problem.constraints, lo, hi), holes_t=to_mapped(problem.zeros, lo, hi),
                parity=problem.parity or None, rtol=rtol, maxiter=maxiter, scale=problem.weight_scale())
        p = SlafPolynomial("chebyshev", tuple(r.cheb), problem.interval).convert(problem.basis.name,
                                                                                 problem.variable)
        outs.append(dict(coefficients=np.asarray(p.coef), levelled_error=r.levelled_error,
                         iterations=r.iterations, converged=r.converged, note=r.note,
                         history=[e for _, e in r.history], condition_number=design_condition(problem, d),
                         _rtol=rtol))
    return outs


def certify_minimax(problem: FitProblem, coef: np.ndarray, degree: int, rtol: float, out: dict) -> None:
    """De la Vallée Poussin for the reported coefficients: h <= E_n <= max_error must agree to rtol plus
    the rounding floor of the exchange itself (that of evaluating f - p in Chebyshev polynomials); otherwise
    the fit is not converged, and the note says why. Coefficients in an ill-conditioned basis (raw powers at
    high degree) lose the best approximation in rounding: they are not certified."""
    h, emax = out.get("levelled_error", math.nan), out["weighted_max_error"]
    if not (out["converged"] and math.isfinite(h)):
        return
    scale = problem.weight_scale()
    rounding = 4 * (degree + 2) * EPS * scale  # remez's floor
    if problem.zeros:
        # relative error next to a zero x0 of f: p from its coefficients carries an absolute rounding error
        # ~ (n + 2) eps sum |c_k phi_k|, and w = 1/|f| is largest at the exchange's distance from x0
        x = problem.off_zeros(np.r_[np.linspace(problem.lo, problem.hi, 129), problem.zeros])
        terms = np.abs(problem.basis.vander(problem.argument(x), degree) * coef).sum(1)
        rounding += (degree + 2) * EPS * float(np.max(problem.sup_weight(x) * terms))
    if emax - h > rtol * emax + rounding:
        out["converged"] = False
        out["note"] = "; ".join(s for s in (out.get("note", ""), (
            f"certificate fails in the {problem.basis.name} basis ({problem.variable}): (E - h)/E = "
            f"{(emax - h) / emax:.2g} > rtol {rtol:g}, max error {emax:.3g} against levelled error {h:.3g} "
            f"(converting from Chebyshev lost accuracy)")) if s)


def _check_optimizer(opts: dict) -> tuple[str, int]:
    optimizer, steps = opts.get("optimizer", "adam"), opts.get("steps", 2000)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return optimizer, steps


@register("gradient", check=_check_optimizer)
def _gradient(problem: FitProblem, degrees: list[int], opts: dict) -> list[dict]:
    """The paper's way: coefficients learned by a torch optimizer on points drawn from the interval.

    Several degrees train together as rows of one masked coefficient matrix. The loss is the sum of the
    rows' losses and each row's gradient depends on its own loss alone, so every row follows the same
    trajectory as a fit of that degree by itself (Adam and the cosine schedule act coordinate-wise; LBFGS
    is not coordinate-wise, so it runs one degree at a time).

    converged: finite coefficients whose training loss is within GRADIENT_GAP (relative) of the least-squares
    optimum on the same points.
    """
    _plain_only(problem, "gradient")
    import torch

    _refuse(opts, "gradient", form=None, points=None)
    optimizer, steps = _check_optimizer(opts)
    if optimizer == "lbfgs" and len(degrees) > 1:
        return [_gradient(problem, [d], opts)[0] for d in degrees]
    # The matrices are tiny (npoints x degree): torch's intra-op threads only add synchronisation, and on a
    # busy 2-core machine their spin-waiting made these fits 15x slower. Run them on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(problem, degrees, steps, opts.get("lr", 0.05), optimizer, opts.get("seed", 0),
                      opts.get("npoints", 1024))
    finally:
        torch.set_num_threads(threads)


def _train(problem: FitProblem, degrees, steps, lr, optimizer, seed, npoints):
    import torch

    x = np.random.default_rng(seed).uniform(problem.lo, problem.hi, npoints)
    y = problem.f(x)
    v = problem.argument(x)
    V = problem.basis.vander(v, max(degrees))
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
    # an exact fit has optimum 0: measure the gap against the rounding level of the targets instead
    floor = (16 * EPS) ** 2 * float(np.mean(y * y))
    outs = []
    for k, d in enumerate(degrees):
        c = A[k, : d + 1].copy()
        c_opt, cond = solve_lstsq(problem.basis, v, y, d)
        best = float(np.mean((V[:, : d + 1] @ c_opt - y) ** 2))
        final = float(np.mean((V[:, : d + 1] @ c - y) ** 2))
        finite = bool(np.all(np.isfinite(c))) and math.isfinite(final)
        gap = (final - best) / max(best, floor, np.finfo(float).tiny) if finite else math.inf
        ok = finite and gap <= GRADIENT_GAP
        note = ("" if ok else "diverged (non-finite coefficients)" if not finite else
                f"not converged: training loss {gap:.3g} above the least-squares optimum (relative; "
                f"converged means <= {GRADIENT_GAP:g})")
        outs.append(dict(coefficients=c, history=[float(h[k]) for h in history] + [final], iterations=steps,
                         converged=ok, gap=gap, condition_number=cond, note=note))
    return outs


@register("rational", rational=True)
def _rational(problem: FitProblem, degrees: list[int], opts: dict) -> list[dict]:
    """Best L2 rational P/D of type rational_type(d); the previous degree's fit is one of the starts."""
    _plain_only(problem, "rational")
    _refuse(opts, "rational", points=None)
    form = _form(opts, "pau")
    outs, prev = [], None
    for d in degrees:
        m, n = rational_type(d)
        r = rational_lstsq(problem, m, n, form, start=prev)
        prev = r.function
        outs.append(_rational_out(r))
    return outs


@register("rational-minimax", rational=True)
def _rational_minimax(problem: FitProblem, degrees: list[int], opts: dict) -> list[dict]:
    """Best uniform rational P/D of type rational_type(d), certified by de la Vallée Poussin."""
    _plain_only(problem, "rational-minimax")
    _refuse(opts, "rational-minimax", points=None)
    if problem.weight != "uniform":
        raise ValueError("rational-minimax fits take no weight (uniform on the interval)")
    form = _form(opts, "standard")
    rtol = 1e-6 if opts.get("rtol") is None else opts["rtol"]
    outs = []
    for d in degrees:
        m, n = rational_type(d)
        outs.append(_rational_out(rational_minimax(problem, m, n, form, rtol=rtol,
                                                   maxiter=opts.get("maxiter", 60))))
    return outs


def _form(opts: dict, default: str) -> str:
    form = opts.get("form") or default
    if form not in FORMS:
        raise ValueError(f"unknown rational form {form!r}; allowed: {', '.join(FORMS)}")
    return form


def _rational_out(r) -> dict:
    fn = r.function
    return dict(coefficients=list(fn.numerator), denominator=list(fn.denominator), form=fn.form,
                basis=fn.basis, variable=fn.variable, max_error=r.max_error, max_error_at=r.max_error_at,
                rms_error=r.rms_error, levelled_error=r.levelled_error, iterations=r.iterations,
                converged=r.converged, note=r.note, history=list(r.history))


METHODS = ("lstsq", "minimax", "gradient")
#: rational P/D methods; a record's degree is the polynomial-equivalent degree m + n (equal parameter count)
RATIONAL_METHODS = tuple(m for m, spec in REGISTRY.items() if spec.rational)
ALL_METHODS = tuple(REGISTRY)


# --------------------------------------------------------------------------------------------
# The entry points
# --------------------------------------------------------------------------------------------
def _achieved(rec: FitRecord, target, dtype: str) -> FitRecord:
    """rec with its achieved errors in `dtype` (precision.achieved_error against the problem's target); a
    rational whose raw-power form is ill-conditioned keeps nan and says why in its note."""
    try:
        a = achieved_error(rec, dtype, target=target)
    except ValueError as exc:
        rec.note = "; ".join(s for s in (rec.note, f"achieved error in {dtype} not measured: {exc}") if s)
        return rec
    rec.dtype, rec.achieved_error, rec.achieved_rms = dtype, a.max_error, a.rms_error
    return rec


def _record(problem: FitProblem, degree: int, method: str, points, out: dict) -> FitRecord:
    """Measure the fit's errors exactly (unless the method did) and package everything as a FitRecord."""
    t0 = time.perf_counter()
    out = dict(out)
    c = np.asarray(out.pop("coefficients"), dtype=float)
    basis, variable = out.pop("basis", problem.basis.name), out.pop("variable", problem.variable)
    if "max_error" not in out:
        g = approximant(dict(coefficients=c, denominator=out.get("denominator"), form=out.get("form", ""),
                             basis=basis, variable=variable, interval=problem.interval))
        out["max_error"], out["max_error_at"], out["rms_error"] = measure(problem, g)
    out["converged"] = bool(out.get("converged", True))
    rtol = out.pop("_rtol", None)
    if rtol is not None:
        if problem.plain:
            out["weighted_max_error"] = out["max_error"]
        else:
            out["weighted_max_error"] = problem.weighted_max_error(approximant(dict(
                coefficients=c, basis=basis, variable=variable, interval=problem.interval)))[0]
        certify_minimax(problem, c, degree, rtol, out)
    if problem.zeros:
        zs = ", ".join(f"{z:.17g}" for z in problem.zeros)
        out["note"] = "; ".join(s for s in (out.get("note", ""), (
            f"relative error: f has simple zero(s) at x = {zs}, imposed as pins so that (f - p)/f stays "
            f"bounded")) if s)
    cond = out.get("condition_number", math.nan)
    if cond > COND_WARN:
        warnings.warn(f"{basis} basis ({variable}) at degree {degree} on [{problem.lo}, {problem.hi}] is "
                      f"ill-conditioned: condition number {cond:.3g} > {COND_WARN:.3g}", ConditioningWarning,
                      stacklevel=4)
    if problem.note:
        out["note"] = "; ".join(s for s in (out.get("note", ""), problem.note) if s)
    out["seconds"] = out.get("seconds", 0.0) + time.perf_counter() - t0
    return FitRecord(target=problem.name, basis=basis, variable=variable, degree=degree, lo=problem.lo,
                     hi=problem.hi, method=method, coefficients=c.tolist(),
                     weight=problem.weight if points is None else f"{problem.weight} (points)",
                     params=problem.params, error_kind=problem.error, pin=list(problem.constraints),
                     parity=problem.parity, **out)


def _problem(target, basis, interval, variable, params, weight, error="absolute", pin=(),
             parity=None) -> FitProblem:
    if isinstance(target, FitProblem):
        given = (basis, tuple(interval), variable, params, weight, error, tuple(pin or ()), parity or None)
        if given != (DEFAULT_BASIS, DEFAULT_INTERVAL, None, None, "uniform", "absolute", (), None):
            raise ValueError("a FitProblem already holds the basis, interval, variable, params, weight, "
                             "error, pin and parity: pass none of them")
        return target
    return FitProblem.make(target, basis, interval, variable, weight, params, error=error, pin=pin,
                           parity=parity)


def _check_method(method) -> Method:
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(ALL_METHODS)}")
    return REGISTRY[method]


#: the constraints each method solves (every other method refuses them)
CONSTRAINTS = {"lstsq": ("pin", "parity"), "minimax": ("error", "pin", "parity")}


def check_options(method: str, *, error: str = "absolute", pin=(), parity: str | None = None,
                  coef_dtype: str | None = None) -> None:
    """ValueError, before any work, when `method` takes not one of these options: the error kind, pins and
    parity (see CONSTRAINTS), and a coef_dtype (polynomial methods, without pins or relative error: rounded
    coefficients cannot keep p(X) = f(X) exactly)."""
    spec = _check_method(method)
    given = {"error": (error, error != "absolute"), "pin": (list(pin or ()), bool(pin)),
             "parity": (parity, parity not in (None, "", "none"))}
    for key, (value, set_) in given.items():
        if set_ and key not in CONSTRAINTS.get(method, ()):
            takes = " and ".join(m for m, keys in CONSTRAINTS.items() if key in keys)
            what = f"{value} error" if key == "error" else f"{key} (got {value!r})"
            raise ValueError(f"{method} fits take no {what}; {takes} do")
    if coef_dtype is None:
        return
    check_coef_dtype(coef_dtype)
    if spec.rational:
        raise ValueError(f"coef_dtype rounds polynomial coefficients; {method} fits take none (got "
                         f"{coef_dtype!r})")
    for key in ("error", "pin"):
        if given[key][1]:
            raise ValueError(f"coef_dtype {coef_dtype!r} takes no {key} (got {given[key][0]!r}): rounded "
                             f"coefficients cannot keep p(X) = f(X) exactly")


def _round(problem: FitProblem, out: dict, coef_dtype: str) -> dict:
    """A method's output with its coefficients rounded to coef_dtype (rounding-aware, see
    :mod:`slaf_approx.coefround`). The minimax certificate was for the float64 coefficients: its levelled
    error stays (a lower bound for any coefficients), the rounded ones are not certified."""
    r = round_coefficients(problem, out["coefficients"], coef_dtype)
    row = dict(basis=problem.basis.name, variable=problem.variable, interval=problem.interval)
    achieved = [achieved_error(dict(row, coefficients=c), coef_dtype, target=problem.target).max_error
                for c in (r.coefficients, r.naive)]
    out = dict(out, coefficients=r.coefficients, coef_dtype=coef_dtype, naive_error=r.naive_error,
               coef_floor=constant_floor(problem, coef_dtype), coef_achieved_error=achieved[0],
               naive_achieved_error=achieved[1])
    out["note"] = "; ".join(s for s in (out.get("note", ""), r.note(coef_dtype)) if s)
    if out.pop("_rtol", None) is not None and not problem.plain:
        out["weighted_max_error"] = r.error
    return out


def fit_degrees(target, degrees, method: str = "lstsq", basis: str = DEFAULT_BASIS,
                interval=DEFAULT_INTERVAL, *, variable: str | None = None, params: dict | None = None,
                weight: str = "uniform", points=None, rtol: float | None = None, maxiter: int = 60,
                steps: int = 2000, lr: float = 0.05, optimizer: str = "adam", seed: int = 0,
                npoints: int = 1024, form: str | None = None, error: str = "absolute", pin=(),
                parity: str | None = None, dtype: str | None = None,
                coef_dtype: str | None = None) -> list[FitRecord]:
    """:func:`fit` for several degrees at once (gradient fits train together; `seconds` is shared out)."""
    t0 = time.perf_counter()
    if dtype is not None:
        check_dtype(dtype)
    degrees = [check_degree(d) for d in degrees]
    if not degrees:
        raise ValueError("degrees must hold at least one degree")
    spec = _check_method(method)
    opts = dict(points=points, rtol=rtol, maxiter=maxiter, steps=steps, lr=lr, optimizer=optimizer, seed=seed,
                npoints=npoints, form=form)
    if form is not None and not spec.rational:
        raise ValueError(f"form is an option of the rational methods ({', '.join(RATIONAL_METHODS)})")
    if spec.check is not None:
        spec.check(opts)
    if coef_dtype is not None:
        check_coef_dtype(coef_dtype)
    problem = _problem(target, basis, interval, variable, params, weight, error, pin, parity)
    check_options(method, error=problem.error, pin=problem.pin, parity=problem.parity, coef_dtype=coef_dtype)
    outs = spec.run(problem, degrees, opts)
    if coef_dtype not in (None, "float64"):
        outs = [_round(problem, out, coef_dtype) for out in outs]
    share = (time.perf_counter() - t0) / len(degrees)
    recs = [_record(problem, d, method, points, dict(out, seconds=share))
            for d, out in zip(degrees, outs, strict=True)]
    if dtype is not None:
        for rec in recs:
            rec.dtype = dtype
            _achieved(rec, problem.target, dtype)
    return recs


def fit_tol(target, tol: float, method: str = "lstsq", max_degree: int = MAX_DEGREE, **kwargs) -> FitRecord:
    """The fit of the lowest degree <= max_degree whose max error is <= tol (lstsq or minimax; a weighted or
    relative-error minimax fit: its weighted_max_error).

    Like chebfun's constructor, but certified by the exact max error: degrees 1, 2, 4, ... are tried until
    one meets tol, then the degree is bisected between the last that failed and the first that met it
    (exact for minimax, whose E_n does not increase with n; for lstsq it returns a degree meeting tol whose
    predecessor does not). ValueError naming the best error reached when even max_degree misses tol.
    """
    if method not in ("lstsq", "minimax"):
        raise ValueError(f"tol picks the degree for the lstsq and minimax methods, got method {method!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    max_degree = check_degree(max_degree)
    _check_method(method)
    problem = _problem(target, kwargs.pop("basis", DEFAULT_BASIS),
                       kwargs.pop("interval", DEFAULT_INTERVAL), kwargs.pop("variable", None),
                       kwargs.pop("params", None), kwargs.pop("weight", "uniform"),
                       kwargs.pop("error", "absolute"), kwargs.pop("pin", ()), kwargs.pop("parity", None))
    tried: dict[int, FitRecord] = {}

    def at(d: int) -> FitRecord:
        if d not in tried:
            tried[d] = fit_degrees(problem, [d], method, **kwargs)[0]
        return tried[d]

    def err(rec: FitRecord) -> float:  # a weighted or relative minimax fit: tol bounds its own norm
        return rec.weighted_max_error if math.isfinite(rec.weighted_max_error) else rec.max_error

    lo, hi = -1, 0
    while err(at(hi)) > tol:  # doubling: 0, 1, 2, 4, ... max_degree
        if hi == max_degree:
            raise ValueError(f"tol {tol:g} not reached by degree {max_degree} ({method}): the best max error "
                             f"there is {err(at(hi)):.3g}")
        lo, hi = hi, min(max_degree, max(1, 2 * hi))
    while hi - lo > 1:  # bisection: at(lo) misses tol (or lo = -1), at(hi) meets it
        mid = (lo + hi) // 2
        if err(at(mid)) <= tol:
            hi = mid
        else:
            lo = mid
    rec = at(hi)
    kind = "max error" if not math.isfinite(rec.weighted_max_error) or problem.plain else "weighted max error"
    found = (f"degree {hi} chosen by tol {tol:g}: the lowest with {kind} <= tol "
             f"({len(tried)} degrees tried, doubling then bisection)")
    rec.note = "; ".join(s for s in (rec.note, found) if s)
    return rec


def fit(target, degree: int | None = None, method: str = "lstsq", basis: str = DEFAULT_BASIS,
        interval=DEFAULT_INTERVAL, *, tol: float | None = None, **options) -> FitRecord:
    """Fit `target` by a degree-`degree` expansion in `basis` on `interval` with `method`.

    Args:
        target: a catalogue name (see ``slaf-approx targets``), a :class:`Target`, any numpy-vectorised
            Python callable f(x) (its kinks unknown: sampled densely, and the record's note says so; wrap
            it in :class:`~slaf_approx.problem.FunctionTarget` to declare kinks), or a :class:`FitProblem`
            (which then holds basis, interval, variable, params and weight).
        degree: 0 ... 64; with `tol`, the largest degree tried (default 64).
        method: "lstsq" (best L2 with uniform or `weight`ed measure; discrete on `points` if given),
            "minimax" (Remez; `rtol` is the certificate's relative gap), "gradient" (torch `optimizer`
            for `steps` on `npoints` uniform samples, seeded by `seed`); "rational" (best L2 rational
            P/D, `form` "pau" by default) and "rational-minimax" (best uniform rational with its
            certificate, `rtol` default 1e-6, `form` "standard" by default), both of type
            (ceil(degree/2), floor(degree/2)): numerator in `coefficients`, q_1..q_n in `denominator`.
        basis: "power", "chebyshev", "legendre" or "hermite".
        interval: (lo, hi), finite, lo < hi, at least 256 ulps of its larger end wide.
        tol: lstsq and minimax only: fit the lowest degree whose max error is <= tol (see :func:`fit_tol`).
        options: variable ("mapped" = t in [-1, 1]; power basis also "raw" = x itself, the paper's form
            and the power basis' default), params (target parameters, e.g. {"beta": 2}), weight
            ("uniform", "normal", "normal:SIGMA"; lstsq: the measure, minimax: max |w (f - p)|), error
            (minimax: "absolute" or "relative", max |(f - p)/f|; simple zeros of f are pinned, other zeros
            refused), pin (lstsq, minimax: points X where p(X) = f(X) is imposed), parity (lstsq, minimax:
            "even" or "odd" forced, on an interval symmetric about 0), points, rtol, maxiter, steps, lr,
            optimizer, seed, npoints, form (rational methods: "pau" or "standard"), dtype ("float64",
            "float32", "bfloat16", "float16": the record's achieved_error and achieved_rms are the
            approximant's errors evaluated in it as the kernels evaluate it, see slaf_approx.precision;
            None, the default: not measured, nan),
            coef_dtype (polynomial methods: "float32", "bfloat16" or "float16": coefficients representable
            in that format, fitted for it by :func:`~slaf_approx.coefround.round_coefficients`; "float64" or
            None: not rounded).
    """
    if tol is not None:
        return fit_tol(target, tol, method, MAX_DEGREE if degree is None else degree, basis=basis,
                       interval=interval, **options)
    if degree is None:
        raise ValueError("fit needs a degree (0 ... 64) or a tol")
    return fit_degrees(target, [degree], method, basis, interval, **options)[0]
