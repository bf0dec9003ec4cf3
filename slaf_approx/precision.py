"""Achieved error in a dtype: a fitted approximant as the kernels evaluate it in float32, bfloat16 or float16,
against the float64 target at the inputs the dtype can hold.

The fits' ``max_error`` is the error in exact arithmetic (float64). A user runs the activation in a narrower
dtype, where the inputs are that dtype's values, the coefficients are rounded to the parameter dtype, the
arithmetic rounds and the output is rounded to the dtype. :func:`achieved_error` measures that error:

* a polynomial is evaluated by the SLAF op itself (:func:`slaf_approx.kernels.slaf`) on the backend
  ``backend`` resolves to for the dtype (``auto`` on CPU: the fused C kernel for float32 and float64, the
  reference for bfloat16 and float16), so the arithmetic (compute precision, recurrence order, rounding of
  the output) is the kernel's by construction, not a model of it;
* a rational P/D is evaluated by the PAU formula of :mod:`slaf_approx.kernels.pau` (Horner in the raw x,
  each operation in the dtype): its coefficients are converted to powers of the raw x, which is the form a
  PAU holds and the benchmarks time. The conversion is exact in exact arithmetic; where its float64
  rounding alone moves r by more than ``CONVERSION_RTOL`` of max|r| (an off-centre interval, a high type),
  the powers would measure the conversion rather than the format, and ValueError says so.

Inputs (:func:`inputs`): for bfloat16 and float16 every representable value in [lo, hi] (tens of
thousands); for float32 a dense uniform sample rounded to the dtype plus ``NEIGHBOURS`` ulps on each side
of the float64 error's extrema (where the rounded error is largest); for float64 a sparser sample plus the
neighbourhood of the row's max_error_at. The rms error weights each input by half the distance to its
neighbours (the trapezoid rule on the inputs), so it estimates the rms over the interval, not over the
unevenly spaced representable values.

:func:`native_error` does the same for the native torch activation in the dtype (F.gelu in bfloat16
against the float64 GELU), so that an SLAF can be compared with the op it replaces.

torch is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import norms
from .bases import SlafPolynomial, get_basis, kernel_mapping
from .problem import FitProblem, _field, approximant, resolve_target
from .ratfun import RationalFunction

DTYPES = ("float64", "float32", "bfloat16", "float16")
#: float32: uniform sample size (before rounding to the dtype and removing duplicates)
DENSE = 2**18
#: float64: the rounding is far below the error, whose max sits at the float64 max_error_at (in
#: `around`); the sample only guards against a row without it, and keeps every fit's own measurement cheap
DENSE64 = 2**12
#: float32/float64: inputs taken on each side of every extremum of the float64 error, in ulps of the dtype
NEIGHBOURS = 16
#: a rational whose raw-power form differs from the fitted r by more than this, relative to max|r|, in
#: float64, is refused (the conversion, not the dtype, would dominate the error)
CONVERSION_RTOL = 2.0**-40


@dataclass(frozen=True)
class Achieved:
    """Errors against the float64 target at the dtype's inputs."""

    max_error: float
    rms_error: float
    at: float  # x of the max error
    points: int  # how many inputs were evaluated


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    return dtype


def _torch_dtype(dtype: str):
    import torch

    return getattr(torch, check_dtype(dtype))


def _all_values(dtype: str) -> np.ndarray:
    """Every finite value of a 16-bit dtype, as float64, ascending, -0 dropped."""
    import torch

    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    v = bits.view(_torch_dtype(dtype)).double().numpy()
    return np.unique(v[np.isfinite(v)])


def _np_dtype(dtype: str):
    return np.float32 if dtype == "float32" else np.float64


def _neighbourhoods(points, dtype: str, lo: float, hi: float) -> np.ndarray:
    """NEIGHBOURS consecutive values of the dtype on each side of each point (the point rounded to the
    dtype in the middle)."""
    nd = _np_dtype(dtype)
    out = []
    for p in points:
        if not math.isfinite(p):
            continue
        c = nd(min(max(p, lo), hi))
        up, down = [c], [c]
        for _ in range(NEIGHBOURS):
            up.append(np.nextafter(up[-1], nd(math.inf)))
            down.append(np.nextafter(down[-1], nd(-math.inf)))
        out.append(np.array(up + down, dtype=float))
    return np.concatenate(out) if out else np.zeros(0)


def inputs(lo: float, hi: float, dtype: str, *, around=()) -> np.ndarray:
    """float64 array, ascending, of values exactly representable in `dtype` inside [lo, hi]: every one for
    bfloat16 and float16; for float32 a dense sample (DENSE points, rounded), for float64 a sparser one
    (DENSE64), plus NEIGHBOURS values on each side of the points in `around`."""
    check_dtype(dtype)
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"inputs need a finite interval lo < hi, got [{lo}, {hi}]")
    if dtype in ("bfloat16", "float16"):
        v = _all_values(dtype)
    else:
        nd = _np_dtype(dtype)
        n = DENSE if dtype == "float32" else DENSE64
        v = np.r_[np.linspace(lo, hi, n).astype(nd).astype(float), _neighbourhoods(around, dtype, lo, hi),
                  np.float64(nd(lo)), np.float64(nd(hi))]
    v = np.unique(v[(v >= lo) & (v <= hi)])
    if v.size == 0:
        raise ValueError(f"no {dtype} value lies in [{lo}, {hi}]")
    return v + 0.0  # -0.0 -> 0.0


def _trapezoid_weights(x: np.ndarray) -> np.ndarray:
    if x.size == 1:
        return np.ones(1)
    d = np.diff(x)
    return 0.5 * (np.r_[0.0, d] + np.r_[d, 0.0])


def _errors(x: np.ndarray, f: np.ndarray, y: np.ndarray) -> Achieved:
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.abs(f - y)
    e = np.where(np.isnan(e), math.inf, e)  # a NaN output is an infinite error, never a hidden one
    i = int(np.argmax(e))
    w = _trapezoid_weights(x)
    with np.errstate(over="ignore", invalid="ignore"):
        rms = math.sqrt(float(np.dot(w, e * e)) / float(np.sum(w))) if np.all(np.isfinite(e)) else math.inf
    return Achieved(float(e[i]), rms, float(x[i]), int(x.size))


def _extrema(problem: FitProblem, g, degree: int) -> np.ndarray:
    """x of the float64 error's local extrema (the equioscillation points of a minimax fit)."""
    lo, hi = g.interval
    with np.errstate(all="ignore"):
        xs, _ = norms.signed_extrema(lambda x: problem.f(x) - g(x), norms.breakpoints(lo, hi, problem.breaks),
                                     norms.grid_size(degree))
    return xs


def _evaluate_polynomial(g: SlafPolynomial, x: np.ndarray, dtype: str, coef_dtype: str, backend: str):
    import torch

    from .kernels import slaf

    scale, shift, tlo, thi = kernel_mapping(g.interval, g.variable)
    xt = torch.from_numpy(x).to(_torch_dtype(dtype))
    c = torch.tensor(g.coef, dtype=torch.float64).to(_torch_dtype(coef_dtype))
    with torch.no_grad():
        y = slaf(xt, c, g.basis, scale, shift, False, tlo, thi, backend=backend)
    return y.double().numpy()


def power_form(r: RationalFunction) -> tuple[np.ndarray, float, np.ndarray]:
    """(a, q_0, b): r = P / (1 + |Q|) (form "pau") or P / (1 + Q) (form "standard") with P = sum a_j x^j and
    Q = q_0 + x (b_1 + b_2 x + ...), powers of the raw x, as :func:`slaf_approx.kernels.pau.pau` takes them.

    ValueError when the conversion's float64 rounding moves r by more than CONVERSION_RTOL of max|r|.
    """
    def powers(c) -> np.ndarray:
        p = SlafPolynomial(r.basis, tuple(c), r.interval, r.variable)
        return np.asarray(p.convert("power", "raw").coef)

    a = powers(r.numerator)
    q = powers((0.0, *r.denominator)) if r.denominator else np.zeros(1)
    lo, hi = r.interval
    x = np.linspace(lo, hi, 2049)
    P, Q = np.polynomial.polynomial.polyval(x, a), np.polynomial.polynomial.polyval(x, q)
    conv = P / (1.0 + (np.abs(Q) if r.form == "pau" else Q))
    ref = r(x)
    scale = float(np.max(np.abs(ref))) or 1.0
    dev = float(np.max(np.abs(conv - ref)))
    if not dev <= CONVERSION_RTOL * scale:
        raise ValueError(f"the rational of type {r.type} in the {r.basis} basis ({r.variable}) on "
                         f"[{lo}, {hi}] loses {dev / scale:.2g} of max|r| in float64 when converted to "
                         f"powers of x (allowed: {CONVERSION_RTOL:.2g}); its error in a dtype would measure "
                         f"the conversion")
    return a, float(q[0]), q[1:]


def _evaluate_rational(r: RationalFunction, x: np.ndarray, dtype: str, coef_dtype: str):
    import torch

    from .kernels.pau import pau

    a, q0, b = power_form(r)
    cdt = _torch_dtype(coef_dtype)
    xt = torch.from_numpy(x).to(_torch_dtype(dtype))
    at, bt = torch.tensor(a).to(cdt), torch.tensor(b).to(cdt)
    q0 = float(torch.tensor(q0, dtype=torch.float64).to(cdt))
    with torch.no_grad():
        y = pau(xt, at, bt, q0, safe=r.form == "pau")
    return y.to(_torch_dtype(dtype)).double().numpy()


def achieved_error(row, dtype: str, *, target=None, backend: str = "auto",
                   coef_dtype: str | None = None) -> Achieved:
    """Errors of a fitted row (FitRecord, results-table row or coefficient entry; polynomial or rational)
    evaluated in `dtype` (coefficients in `coef_dtype`, default `dtype`) against the float64 target
    (default: the row's catalogue target with its params) at :func:`inputs` of the dtype.

    A polynomial goes through the SLAF op on `backend` (see the module docstring); a rational through the
    PAU formula (`backend` must then be "auto").
    """
    check_dtype(dtype)
    coef_dtype = check_dtype(coef_dtype or dtype)
    g = approximant(row)
    tg = resolve_target(target if target is not None else _field(row, "target"),
                        None if target is not None else _field(row, "params"))
    problem = FitProblem(tg, get_basis("power"), "raw", g.interval)
    lo, hi = g.interval
    rational = isinstance(g, RationalFunction)
    if rational and backend != "auto":
        raise ValueError(f"a rational is evaluated by the PAU formula only; backend must be 'auto', "
                         f"got {backend!r}")
    around: list[float] = []
    if dtype in ("float32", "float64"):
        at = _field(row, "max_error_at")
        around = [float(at)] if at is not None and math.isfinite(float(at)) else []
        if dtype == "float32":  # float64: max_error_at is where the max is (see DENSE64)
            around += _extrema(problem, g, sum(g.type) if rational else g.degree).tolist()
    x = inputs(lo, hi, dtype, around=around)
    y = (_evaluate_rational(g, x, dtype, coef_dtype) if rational
         else _evaluate_polynomial(g, x, dtype, coef_dtype, backend))
    return _errors(x, problem.f(x), y)


# ----------------------------------------------------------------------------------------------------
# Native activations: one entry per catalogue target torch computes by one op (None: no native op)
# ----------------------------------------------------------------------------------------------------
def _native_ops() -> dict[str, tuple[str, Callable]]:
    """Catalogue name -> (the op's name, f(x, params)); f gives None for parameters the op does not take."""
    import torch
    import torch.nn.functional as F

    return {
        "abs": ("torch.abs", lambda x, p: torch.abs(x)),
        "elu": ("F.elu", lambda x, p: F.elu(x, alpha=p.get("alpha", 1.0))),
        "gelu": ("F.gelu", lambda x, p: F.gelu(x)),
        "gelu_tanh": ("F.gelu(tanh)", lambda x, p: F.gelu(x, approximate="tanh")),
        "hardsigmoid": ("F.hardsigmoid", lambda x, p: F.hardsigmoid(x)),
        "hardswish": ("F.hardswish", lambda x, p: F.hardswish(x)),
        "hardtanh": ("F.hardtanh", lambda x, p: F.hardtanh(x)),
        "leaky_relu": ("F.leaky_relu", lambda x, p: F.leaky_relu(x, p.get("slope", 0.01))),
        "mish": ("F.mish", lambda x, p: F.mish(x)),
        "relu": ("F.relu", lambda x, p: F.relu(x)),
        "sigmoid": ("torch.sigmoid", lambda x, p: torch.sigmoid(x)),
        "silu": ("F.silu", lambda x, p: F.silu(x)),
        "softplus": ("F.softplus", lambda x, p: F.softplus(x)),
        "swish": ("F.silu", lambda x, p: F.silu(x) if p.get("beta", 1.0) == 1.0 else None),
        "tanh": ("torch.tanh", lambda x, p: torch.tanh(x)),
    }


def native_op(target) -> tuple[str, Callable] | None:
    """(the op's name, f(x)) of the native torch activation of `target` (a catalogue name or Target) with
    its parameters, as :func:`native_error` measures it (the benchmarks time the same op); None where torch
    has no op for it."""
    import torch

    tg = resolve_target(target)
    hit = _native_ops().get(getattr(tg, "name", ""))
    if hit is None or not hasattr(tg, "params"):
        return None
    name, op = hit
    params = dict(tg.params)
    if op(torch.zeros(1), params) is None:
        return None
    return name, lambda x: op(x, params)


def native_error(target, lo: float, hi: float, dtype: str) -> Achieved | None:
    """Errors of the native torch activation of `target` (a catalogue name or Target) computed in `dtype`
    against the float64 target at :func:`inputs` of the dtype; None where torch has no op for it (a
    callable, a target outside the table, a parameter value the op does not take)."""
    import torch

    check_dtype(dtype)
    tg = resolve_target(target)
    hit = native_op(tg)
    if hit is None:
        return None
    x = inputs(lo, hi, dtype)
    with torch.no_grad():
        y = hit[1](torch.from_numpy(x).to(_torch_dtype(dtype)))
    problem = FitProblem(tg, get_basis("power"), "raw", (float(lo), float(hi)))
    return _errors(x, problem.f(x), y.double().numpy())
