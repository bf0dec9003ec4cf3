"""The SLAF op, written plainly in PyTorch: the readable definition every fused kernel is tested against.

    y = sum_k coef[c, k] * phi_k(t),   t = scale * x + shift   (clamped to [tlo, thi] if `clamp`)

with c the channel of x along dim 1 (per-channel coefficients, shape [C, K]) or one shared row (shape
[K]). Every basis is one three-term recurrence, phi_0 = 1 and

    phi_(k+1) = A_k t phi_k - B_k phi_(k-1),

so one Clenshaw loop evaluates them all (power: Horner). Autograd differentiates it and keeps one
intermediate tensor per basis function alive: about K times the memory of x, which the fused kernels
avoid.

Overflow (the same rule in every backend). Far outside the interval the recurrence meets inf - inf or
0 * inf and gives NaN where the true value overflows. With the coefficients all finite, m the highest
degree with a nonzero coefficient and lead = sign(coef_m * A_0 ... A_(m-1)) the sign of the leading term:

* y NaN while t is not NaN: y = lead * sign(t)^m * inf (m >= 1), coef_0 (m = 0), 0 (all zero);
* grad x NaN while t and grad y are not NaN and grad y is finite: 0 where grad y = 0, else
  scale * grad y * coef_1 * A_0 (m = 1), 0 (m = 0),
  sign(scale * grad y * lead) * sign(t)^(m-1) * inf (m >= 2).

That is the limit |t| -> inf. NaN inputs (x, grad y or a coefficient) stay NaN; with clamping nothing
overflows. Here the gradient rule applies where y came out non-finite; the fused kernels apply it where
grad x came out NaN.
"""

from __future__ import annotations

import numpy as np
import torch

#: kernel basis codes; the recurrence below is the whole difference between them
BASIS_CODES = {"power": 0, "chebyshev": 1, "legendre": 2, "hermite": 3}


def recurrence(basis: str, K: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, B), float64 arrays of length K, with phi_(k+1) = A_k t phi_k - B_k phi_(k-1) (B_0 = 0)."""
    k = np.arange(K, dtype=float)
    if basis == "power":
        return np.ones(K), np.zeros(K)
    if basis == "chebyshev":
        return np.where(k == 0, 1.0, 2.0), np.where(k == 0, 0.0, 1.0)
    if basis == "legendre":
        return (2 * k + 1) / (k + 1), k / (k + 1)
    if basis == "hermite":  # probabilists' He_k, as numpy.polynomial.hermite_e
        return np.ones(K), k
    raise ValueError(f"unknown basis {basis!r}; allowed: {', '.join(BASIS_CODES)}")


def basis_values(t: torch.Tensor, basis: str, K: int) -> list[torch.Tensor]:
    """[phi_0(t), ..., phi_(K-1)(t)] by the forward recurrence."""
    A, B = recurrence(basis, K)
    phi = [torch.ones_like(t)]
    if K > 1:
        phi.append(float(A[0]) * t * phi[0])
    for k in range(1, K - 1):
        phi.append(float(A[k]) * t * phi[k] - float(B[k]) * phi[k - 1])
    return phi


def series(t: torch.Tensor, coef: torch.Tensor, basis: str, shape: list[int]) -> torch.Tensor:
    """sum_k coef[.., k] phi_k(t) as written, with no overflow rule (per-channel rows broadcast by
    `shape`)."""
    K = coef.shape[-1]
    phi = basis_values(t, basis, K)
    if coef.dim() == 1:
        return sum(coef[k] * phi[k] for k in range(K))
    return sum(coef[:, k].reshape(shape) * phi[k] for k in range(K))


class _Limit(torch.autograd.Function):
    """The overflow limit (module docstring) at the given points: value lim, derivative in t dlim, and in
    the coefficients the basis values phi [K, *t.shape] themselves (as the series would give)."""

    @staticmethod
    def forward(t, coef, lim, dlim, phi):
        return lim.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[3], inputs[4])
        ctx.coef_shape = inputs[1].shape

    @staticmethod
    def backward(ctx, grad):
        dlim, phi = ctx.saved_tensors
        g = torch.where(grad == 0, torch.zeros_like(grad), grad * dlim)
        gt = torch.where(torch.isfinite(grad), g, torch.full_like(grad, float("nan")))
        gp = grad * phi  # [K, *shape]
        if len(ctx.coef_shape) == 1:
            gc = gp.reshape(gp.shape[0], -1).sum(1)
        else:
            gc = gp.transpose(0, 2).transpose(1, 2).reshape(gp.shape[2], gp.shape[0], -1).sum(2)  # [C, K]
        return gt, gc, None, None, None


def _limits(t: torch.Tensor, coef: torch.Tensor, basis: str, shape: list[int]):
    """(lim, dlim, ok): the limit of the series and of its t-derivative as |t| -> inf, broadcast to t;
    ok is False where a coefficient row is not all finite."""
    c = coef.detach().reshape(-1, coef.shape[-1]).double()  # [C, K]
    K = c.shape[1]
    A, _ = recurrence(basis, K)
    lead = c * torch.tensor(np.concatenate([[1.0], np.cumprod(A[:-1])]), dtype=torch.float64)  # monic
    nz = lead != 0
    m = torch.where(nz.any(1), K - 1 - nz.flip(1).int().argmax(1), torch.full((c.shape[0],), -1))
    sign = torch.sign(lead.gather(1, m.clamp(min=0)[:, None])[:, 0])
    ok = torch.isfinite(c).all(1)
    view = (lambda v: v.reshape(shape)) if coef.dim() == 2 else (lambda v: v.reshape(()))
    m, sign, ok = view(m), view(sign), view(ok)
    c0, c1 = view(c[:, 0]), view(lead[:, 1] if K > 1 else torch.zeros_like(c[:, 0]))
    td = t.detach().double()
    neg_t = (td < 0).double()
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    lim = torch.where(m >= 1, sign * (1 - 2 * neg_t * (m % 2)) * inf, torch.where(m == 0, c0, 0.0))
    dlim = torch.where(m >= 2, sign * (1 - 2 * neg_t * ((m - 1) % 2)) * inf, torch.where(m == 1, c1, 0.0))
    return lim.to(t.dtype), dlim.to(t.dtype), ok


#: half-precision inputs are computed in float32 and the output rounded to the input's dtype once, as the
#: Triton kernels and torch's own CPU activations do. Computing in bfloat16 rounds t, every recurrence step
#: and every product: the achieved error of a degree-12 GELU minimax fit on [-3, 3] was 0.027 in bfloat16
#: and 0.0036 in float16 that way, 0.0082 and 0.0013 through float32 (native F.gelu: 0.0078, 0.00098).
WIDEN = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def slaf_reference(x: torch.Tensor, coef: torch.Tensor, basis: str, scale: float = 1.0, shift: float = 0.0,
                   clamp: bool = False, tlo: float = -1.0, thi: float = 1.0) -> torch.Tensor:
    """The SLAF op in plain torch ops (differentiable in x and coef by autograd), with the overflow rule of
    the module docstring; half-precision x is computed in float32 (WIDEN) and y rounded to x's dtype."""
    wide = WIDEN.get(x.dtype)
    if wide is not None:
        return _slaf_reference(x.to(wide), coef.to(wide), basis, scale, shift, clamp, tlo, thi).to(x.dtype)
    return _slaf_reference(x, coef, basis, scale, shift, clamp, tlo, thi)


def _slaf_reference(x, coef, basis, scale, shift, clamp, tlo, thi):
    t = x * scale + shift
    if clamp:
        t = torch.clamp(t, tlo, thi)  # propagates NaN; zero gradient outside [tlo, thi]
    shape = [1] * x.dim()
    if coef.dim() == 2:
        shape[1] = coef.shape[0]
    y = series(t, coef, basis, shape)
    # under torch.compile the fix-up below is traced unconditionally (no branch on the data)
    compiling = torch.compiler.is_compiling()
    with torch.no_grad():
        over = ~torch.isfinite(y) & ~torch.isnan(t)
    if not compiling and not bool(over.any()):
        return y
    lim, dlim, ok = _limits(t, coef, basis, shape)
    over = over & ok
    if not compiling and not bool(over.any()):
        return y
    with torch.no_grad():
        fix_y = over & torch.isnan(y)
    safe_t = torch.where(over, torch.zeros_like(t), t)  # no NaN through autograd at the fixed points
    y_safe = series(safe_t, coef, basis, shape)
    with torch.no_grad():
        phis = basis_values(t, basis, coef.shape[-1])
        phi = torch.stack([torch.where(over, p, torch.zeros_like(p)) for p in phis])
    y_lim = _Limit.apply(t, coef, torch.where(fix_y, lim, y.detach()), dlim, phi)
    return torch.where(over, y_lim, y_safe)


# ----------------------------------------------------------------------------------------------------
# The reference as a backend (kernels/registry.py): the common [rows, S] signature of the fused kernels.
# ----------------------------------------------------------------------------------------------------
def unavailable_reason(device_type: str) -> str | None:
    """Plain torch ops run on every device."""
    return None


def forward(x2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float,
            shift: float, clamp: bool, tlo: float, thi: float) -> torch.Tensor:
    """The [rows, S] layout of the kernels (row r uses coefficient row r % C), by the recurrence A, B."""
    C, K = coef.shape
    x3 = x2d.reshape(x2d.shape[0] // C, C, x2d.shape[1]).to(coef.dtype)  # halves: in float32 (WIDEN)
    t = x3 * scale + shift
    if clamp:
        t = torch.clamp(t, tlo, thi)
    a, b = A.tolist(), B.tolist()
    phi = [torch.ones_like(t)]
    if K > 1:
        phi.append(a[0] * t)
    for k in range(1, K - 1):
        phi.append(a[k] * t * phi[k] - b[k] * phi[k - 1])
    y = sum(coef[:, k].reshape(1, C, 1) * phi[k] for k in range(K)).reshape(x2d.shape)
    return y.to(x2d.dtype)


def backward(x2d: torch.Tensor, gy2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             scale: float, shift: float, clamp: bool, tlo: float, thi: float, need_gx: bool,
             need_gcoef: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(gx or None, gcoef float64 or None) by autograd through :func:`forward`."""
    with torch.enable_grad():
        x = x2d.detach().requires_grad_(need_gx)
        c = coef.detach().requires_grad_(need_gcoef)
        want = [t for t, need in ((x, need_gx), (c, need_gcoef)) if need]
        if not want:
            return None, None
        y = forward(x, c, A, B, scale, shift, clamp, tlo, thi)
        grads = list(torch.autograd.grad(y, want, gy2d, allow_unused=True))
    gx = (grads.pop(0) if need_gx else None)
    gx = torch.zeros_like(x2d) if need_gx and gx is None else gx  # degree 0: y does not depend on x
    gc = grads.pop(0).double() if need_gcoef else None
    return gx, gc
