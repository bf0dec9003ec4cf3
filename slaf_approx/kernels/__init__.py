"""The SLAF op y = sum_k coef[c, k] phi_k(scale * x + shift) and its backends.

* ``reference`` — plain torch ops and autograd (:mod:`.reference`): the definition.
* ``fused`` — CPU: one C pass forward (read x, write y), one pass backward (read x and grad_y, write
  grad_x, reduce the coefficient gradients in a fixed order) (:mod:`.cpu`, compiled with gcc on first use).
* ``triton`` — CUDA (or CPU tensors under ``TRITON_INTERPRET=1``): the same two passes as Triton kernels
  (:mod:`.triton_kernels`).

The fused and Triton backends are one ``torch.library.custom_op`` with a fake (meta) implementation and
an autograd formula, so ``torch.compile(fullgraph=True)`` sees them as single ops. Backward saves only x
and the coefficients.
"""

from __future__ import annotations

import functools
import os

import torch

from .reference import BASIS_CODES, recurrence, slaf_reference

BACKENDS = ("reference", "fused", "triton", "auto")
_FUSED_DTYPES = (torch.float32, torch.float64)
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

__all__ = ["BACKENDS", "BASIS_CODES", "available_backends", "check_inputs", "resolve_backend", "slaf",
           "slaf_reference"]


def _cpu():
    from . import cpu

    return cpu


def _triton():
    from . import triton_kernels

    return triton_kernels


def _triton_usable(x: torch.Tensor) -> bool:
    if not (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        return False
    try:
        return _triton().available()
    except ImportError:
        return False


def available_backends(x: torch.Tensor) -> list[str]:
    """The backends that can run on x's device and dtype."""
    out = ["reference"]
    if x.device.type == "cpu" and x.dtype in _FUSED_DTYPES and _cpu().available():
        out.append("fused")
    if x.dtype in _TRITON_DTYPES and _triton_usable(x):
        out.append("triton")
    return out


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The concrete backend for x; ValueError naming what is allowed where the choice cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend == "auto":
        have = available_backends(x)
        return "triton" if x.is_cuda and "triton" in have else ("fused" if "fused" in have else "reference")
    if backend == "fused":
        if x.device.type != "cpu":
            raise ValueError(f"backend 'fused' runs on CPU tensors, got device {x.device}; "
                             "use 'triton' or 'auto' on CUDA")
        if x.dtype not in _FUSED_DTYPES:
            raise ValueError(f"backend 'fused' takes float32 or float64, got {x.dtype}; use 'reference'")
        if not _cpu().available():
            raise ValueError(f"backend 'fused' is unavailable: {_cpu().unavailable_reason()}")
    if backend == "triton":
        if not (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
            raise ValueError(f"backend 'triton' needs a CUDA tensor (or TRITON_INTERPRET=1 to run the "
                             f"interpreter on CPU), got device {x.device}")
        if x.dtype not in _TRITON_DTYPES:
            raise ValueError(f"backend 'triton' takes float32, float16 or bfloat16, got {x.dtype}")
        if not _triton_usable(x):
            raise ValueError("backend 'triton' is unavailable: triton is not installed")
    return backend


def check_inputs(x: torch.Tensor, coef: torch.Tensor, basis: str) -> None:
    """TypeError/ValueError for inputs no backend accepts."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"SLAF takes floating-point tensors, got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(coef, torch.Tensor) or not coef.is_floating_point():
        raise TypeError("SLAF coefficients must be a floating-point tensor")
    if coef.device != x.device:
        raise ValueError(f"coefficients are on {coef.device} but the input is on {x.device}")
    if basis not in BASIS_CODES:
        raise ValueError(f"unknown basis {basis!r}; allowed: {', '.join(BASIS_CODES)}")
    if coef.dim() not in (1, 2) or coef.shape[-1] < 1:
        raise ValueError(f"coefficients must have shape [K] or [C, K] with K >= 1, got {tuple(coef.shape)}")
    if coef.dim() == 2 and (x.dim() < 2 or x.shape[1] != coef.shape[0]):
        raise ValueError(f"per-channel coefficients for {coef.shape[0]} channels need an input with that "
                         f"many channels along dim 1, got shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------------------------------
# The custom op: layout, dtype and dispatch between the C and Triton kernels
# ----------------------------------------------------------------------------------------------------
def _layout(x: torch.Tensor, coef: torch.Tensor):
    """x as contiguous [rows, S] with row r using channel r % C, and coef as [C, K]."""
    xc = x.contiguous()
    if coef.dim() == 1:
        return xc.view(1, -1), coef.reshape(1, -1)
    rows = x.shape[0] * x.shape[1]
    return xc.view(rows, x.numel() // rows if rows else 0), coef


def _compute_dtype(impl: str, x: torch.Tensor) -> torch.dtype:
    return x.dtype if impl == "fused" else torch.float32


@functools.cache
def _recurrence(basis: str, K: int, dtype, device):
    """The recurrence arrays on the kernel's device, built once per (basis, K, dtype, device)."""
    A, B = recurrence(basis, K)
    return (torch.tensor(A, dtype=dtype, device=device), torch.tensor(B, dtype=dtype, device=device))


@torch.library.custom_op("slaf_approx::slaf", mutates_args=())
def _slaf_op(x: torch.Tensor, coef: torch.Tensor, basis: str, scale: float, shift: float, clamp: bool,
             tlo: float, thi: float, impl: str) -> torch.Tensor:
    x2, c2 = _layout(x, coef)
    dt = _compute_dtype(impl, x)
    A, B = _recurrence(basis, c2.shape[1], dt, x.device)
    args = (c2.to(dt).contiguous(), A, B, scale, shift, clamp, tlo, thi)
    if impl == "fused":
        y = _cpu().forward(x2, *args)
    else:
        y = _triton().forward(x2, *args)
    return y.view(x.shape).to(x.dtype)


@_slaf_op.register_fake
def _(x, coef, basis, scale, shift, clamp, tlo, thi, impl):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("slaf_approx::slaf_backward", mutates_args=())
def _slaf_backward_op(grad: torch.Tensor, x: torch.Tensor, coef: torch.Tensor, basis: str, scale: float,
                      shift: float, clamp: bool, tlo: float, thi: float, impl: str, need_gx: bool,
                      need_gc: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x, grad_coef); a gradient nobody needs is skipped and returned as an empty tensor."""
    x2, c2 = _layout(x, coef)
    g2 = grad.contiguous().view(x2.shape)
    dt = _compute_dtype(impl, x)
    A, B = _recurrence(basis, c2.shape[1], dt, x.device)
    args = (c2.to(dt).contiguous(), A, B, scale, shift, clamp, tlo, thi)
    if impl == "fused":
        gx, gc = _cpu().backward(x2, g2, *args, need_gx=need_gx, need_gcoef=need_gc)
    else:  # the Triton backward always produces the coefficient partial sums
        gx, gc = _triton().backward(x2, g2, *args, need_gx=need_gx)
    gx = gx.view(x.shape).to(x.dtype) if need_gx else x.new_empty(0)
    gc = gc.view(coef.shape).to(coef.dtype) if need_gc else coef.new_empty(0)
    return gx, gc


@_slaf_backward_op.register_fake
def _(grad, x, coef, basis, scale, shift, clamp, tlo, thi, impl, need_gx, need_gc):
    gx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_gx else x.new_empty(0)
    return gx, torch.empty_like(coef) if need_gc else coef.new_empty(0)


def _setup_context(ctx, inputs, output):
    x, coef, *rest = inputs
    ctx.save_for_backward(x, coef)  # nothing of x's size but x itself
    ctx.rest = rest


def _backward(ctx, grad):
    x, coef = ctx.saved_tensors
    need_gx, need_gc = ctx.needs_input_grad[:2]
    gx, gc = _slaf_backward_op(grad, x, coef, *ctx.rest, need_gx, need_gc)
    return (gx if need_gx else None, gc if need_gc else None, None, None, None, None, None, None, None)


_slaf_op.register_autograd(_backward, setup_context=_setup_context)


def slaf(x: torch.Tensor, coef: torch.Tensor, basis: str = "chebyshev", scale: float = 1.0,
         shift: float = 0.0, clamp: bool = False, tlo: float = -1.0, thi: float = 1.0,
         backend: str = "auto") -> torch.Tensor:
    """y = sum_k coef[.., k] phi_k(t), t = scale * x + shift (clamped to [tlo, thi] if `clamp`).

    `coef` is [K] (shared) or [C, K] (per channel, applied along dim 1 of x).
    """
    check_inputs(x, coef, basis)
    impl = resolve_backend(backend, x)
    if impl == "reference":
        return slaf_reference(x, coef, basis, scale, shift, clamp, tlo, thi)
    return _slaf_op(x, coef, basis, float(scale), float(shift), bool(clamp), float(tlo), float(thi), impl)
