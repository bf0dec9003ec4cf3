"""The SLAF op, written plainly in PyTorch: the readable definition every fused kernel is tested against.

    y = sum_k coef[c, k] * phi_k(t),   t = scale * x + shift   (clamped to [tlo, thi] if `clamp`)

with c the channel of x along dim 1 (per-channel coefficients, shape [C, K]) or one shared row (shape
[K]). Every basis is one three-term recurrence, phi_0 = 1 and

    phi_(k+1) = A_k t phi_k - B_k phi_(k-1),

so one Clenshaw loop evaluates them all (power: Horner). Autograd differentiates it and keeps one
intermediate tensor per basis function alive: about K times the memory of x, which the fused kernels
avoid.
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


def slaf_reference(x: torch.Tensor, coef: torch.Tensor, basis: str, scale: float = 1.0, shift: float = 0.0,
                   clamp: bool = False, tlo: float = -1.0, thi: float = 1.0) -> torch.Tensor:
    """The SLAF op in plain torch ops (differentiable in x and coef by autograd)."""
    t = x * scale + shift
    if clamp:
        t = torch.clamp(t, tlo, thi)  # propagates NaN; zero gradient outside [tlo, thi]
    K = coef.shape[-1]
    phi = basis_values(t, basis, K)
    if coef.dim() == 1:
        return sum(coef[k] * phi[k] for k in range(K))
    shape = [1] * x.dim()
    shape[1] = coef.shape[0]
    return sum(coef[:, k].reshape(shape) * phi[k] for k in range(K))


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
    x3 = x2d.reshape(x2d.shape[0] // C, C, x2d.shape[1])
    t = x3 * scale + shift
    if clamp:
        t = torch.clamp(t, tlo, thi)
    a, b = A.tolist(), B.tolist()
    phi = [torch.ones_like(t)]
    if K > 1:
        phi.append(a[0] * t)
    for k in range(1, K - 1):
        phi.append(a[k] * t * phi[k] - b[k] * phi[k - 1])
    return sum(coef[:, k].reshape(1, C, 1) * phi[k] for k in range(K)).reshape(x2d.shape)


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

