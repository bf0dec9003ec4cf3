"""The SLAF op y = sum_k coef[c, k] phi_k(scale * x + shift) and its backends.

The backends are declared in :mod:`.registry` (name, devices, dtypes, availability, forward, backward):

* ``reference`` — plain torch ops and autograd (:mod:`.reference`): the definition.
* ``fused`` — CPU: one C pass forward (read x, write y), one pass backward (read x and grad_y, write
  grad_x, reduce the coefficient gradients in a fixed order) (:mod:`.cpu`, compiled with gcc on first use).
* ``triton`` — CUDA (or CPU tensors under ``TRITON_INTERPRET=1``): the same two passes as Triton kernels
  (:mod:`.triton_kernels`).
* ``auto`` — the fastest one available for x's device and dtype (see :func:`.registry.resolve`).

How a call reaches a fused kernel:

* eagerly on the fused CPU backend, through one dispatcher call of its C++ op (:mod:`.cpu_op`: a C++
  autograd kernel over the same C functions), when that op can be built; otherwise, and on Triton:
* eagerly without gradients, directly (the per-call cost is a few Python calls and one kernel call);
* eagerly with gradients, through a thin ``torch.autograd.Function`` that saves only x and the coefficients;
* under ``torch.compile``, through the ``torch.library.custom_op`` ``slaf_approx::slaf`` (with a fake
  implementation and an autograd formula), so that the graph holds it as one node. The backend is resolved
  outside the traced code (:func:`.registry.resolve` is a constant to dynamo), so a cold kernel cache builds
  at trace time, not inside the graph.

Backward under ``create_graph=True`` (double backward) goes through the reference's differentiable ops:
the fused kernels compute first derivatives only.
"""

from __future__ import annotations

import functools

import torch

from .reference import BASIS_CODES, recurrence, slaf_reference
from .registry import NAMES as BACKENDS
from .registry import REGISTRY, SlafBackendWarning, eager_op, resolve

__all__ = ["BACKENDS", "BASIS_CODES", "REGISTRY", "SlafBackendWarning", "available_backends", "check_inputs",
           "resolve_backend", "slaf", "slaf_reference"]


def available_backends(x: torch.Tensor) -> list[str]:
    """The backends that can run on x's device and dtype, in registry order."""
    from .registry import available

    return available(x.device.type, x.dtype)


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The concrete backend for x; ValueError naming what is allowed, or why the choice cannot run."""
    return resolve(backend, x.device.type, x.dtype)


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
# Layout, dtype and dispatch to a registered backend
# ----------------------------------------------------------------------------------------------------
def _layout(x: torch.Tensor, coef: torch.Tensor):
    """x as contiguous [rows, S] with row r using channel r % C, and coef as [C, K]."""
    xc = x.contiguous()
    if coef.dim() == 1:
        return xc.view(1, -1), coef.reshape(1, -1)
    rows = x.shape[0] * x.shape[1]
    return xc.view(rows, x.numel() // rows if rows else 0), coef


@functools.cache
def _plan(impl: str, basis: str, K: int, dtype: torch.dtype, device: torch.device):
    """(backend, compute dtype, A, B): what a call needs besides its tensors, once per combination (the
    per-call cost matters at small sizes)."""
    be = REGISTRY[impl]
    dt = be.compute(dtype)
    A, B = recurrence(basis, K)
    return be, dt, torch.tensor(A, dtype=dt, device=device), torch.tensor(B, dtype=dt, device=device)


def _prepare(x, coef, basis, impl):
    """(backend, x2d, coef2d in the compute dtype, A, B)."""
    be, dt, A, B = _plan(impl, basis, coef.shape[-1], x.dtype, x.device)
    x2, c2 = _layout(x, coef)
    return be, x2, c2.to(dt).contiguous(), A, B


def _forward(x, coef, basis, scale, shift, clamp, tlo, thi, impl):
    be, x2, c2, A, B = _prepare(x, coef, basis, impl)
    return be.forward(x2, c2, A, B, scale, shift, clamp, tlo, thi).view(x.shape)


def _backward(grad, x, coef, basis, scale, shift, clamp, tlo, thi, impl, need_gx, need_gc):
    """(grad_x or None, grad_coef or None) in x's and coef's dtypes.

    Under create_graph (grad mode on inside backward) the gradients are computed by the reference's
    differentiable ops, so that they can be differentiated again; otherwise by the backend's kernel.
    """
    if torch.is_grad_enabled():
        return _differentiable_backward(grad, x, coef, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc)
    be, x2, c2, A, B = _prepare(x, coef, basis, impl)
    g2 = grad.contiguous().view(x2.shape).to(x2.dtype)
    gx, gc = be.backward(x2, g2, c2, A, B, scale, shift, clamp, tlo, thi, need_gx, need_gc)
    return (gx.view(x.shape) if need_gx else None), (gc.view(coef.shape).to(coef.dtype) if need_gc else None)


def _differentiable_backward(grad, x, coef, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc):
    want = [t for t, need in ((x, need_gx), (coef, need_gc)) if need]
    if not want:
        return None, None
    y = slaf_reference(x, coef, basis, scale, shift, clamp, tlo, thi)
    grads = list(torch.autograd.grad(y, want, grad, create_graph=True, allow_unused=True))
    return (grads.pop(0) if need_gx else None), (grads.pop(0) if need_gc else None)


class _SlafFunction(torch.autograd.Function):
    """The eager autograd path: saves x and the coefficients, nothing of x's size besides x."""

    @staticmethod
    def forward(ctx, x, coef, basis, scale, shift, clamp, tlo, thi, impl):
        ctx.save_for_backward(x, coef)
        ctx.args = (basis, scale, shift, clamp, tlo, thi, impl)
        return _forward(x, coef, basis, scale, shift, clamp, tlo, thi, impl)

    @staticmethod
    def backward(ctx, grad):
        x, coef = ctx.saved_tensors
        gx, gc = _backward(grad, x, coef, *ctx.args, *ctx.needs_input_grad[:2])
        return gx, gc, None, None, None, None, None, None, None


# ----------------------------------------------------------------------------------------------------
# The custom op: what torch.compile sees (one node, a fake implementation, an autograd formula)
# ----------------------------------------------------------------------------------------------------
@torch.library.custom_op("slaf_approx::slaf", mutates_args=())
def _slaf_op(x: torch.Tensor, coef: torch.Tensor, basis: str, scale: float, shift: float, clamp: bool,
             tlo: float, thi: float, impl: str) -> torch.Tensor:
    return _forward(x, coef, basis, scale, shift, clamp, tlo, thi, impl)


@_slaf_op.register_fake
def _(x, coef, basis, scale, shift, clamp, tlo, thi, impl):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("slaf_approx::slaf_backward", mutates_args=())
def _slaf_backward_op(grad: torch.Tensor, x: torch.Tensor, coef: torch.Tensor, basis: str, scale: float,
                      shift: float, clamp: bool, tlo: float, thi: float, impl: str, need_gx: bool,
                      need_gc: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x, grad_coef); a gradient nobody needs is skipped and returned as an empty tensor."""
    gx, gc = _backward(grad, x, coef, basis, scale, shift, clamp, tlo, thi, impl, need_gx, need_gc)
    return (gx if need_gx else x.new_empty(0)), (gc if need_gc else coef.new_empty(0))


@_slaf_backward_op.register_fake
def _(grad, x, coef, basis, scale, shift, clamp, tlo, thi, impl, need_gx, need_gc):
    gx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_gx else x.new_empty(0)
    return gx, torch.empty_like(coef) if need_gc else coef.new_empty(0)


def _setup_context(ctx, inputs, output):
    x, coef, *rest = inputs
    ctx.save_for_backward(x, coef)  # nothing of x's size but x itself
    ctx.rest = rest


def _op_backward(ctx, grad):
    x, coef = ctx.saved_tensors
    need_gx, need_gc = ctx.needs_input_grad[:2]
    if torch.is_grad_enabled():
        gx, gc = _differentiable_backward(grad, x, coef, *ctx.rest[:-1], need_gx, need_gc)
    else:
        gx, gc = _slaf_backward_op(grad, x, coef, *ctx.rest, need_gx, need_gc)
    return (gx if need_gx else None, gc if need_gc else None, None, None, None, None, None, None, None)


_slaf_op.register_autograd(_op_backward, setup_context=_setup_context)


def slaf(x: torch.Tensor, coef: torch.Tensor, basis: str = "chebyshev", scale: float = 1.0,
         shift: float = 0.0, clamp: bool = False, tlo: float = -1.0, thi: float = 1.0,
         backend: str = "auto") -> torch.Tensor:
    """y = sum_k coef[.., k] phi_k(t), t = scale * x + shift (clamped to [tlo, thi] if `clamp`).

    `coef` is [K] (shared) or [C, K] (per channel, applied along dim 1 of x).
    """
    check_inputs(x, coef, basis)
    impl = resolve(backend, x.device.type, x.dtype)
    if REGISTRY[impl].autograd:
        return slaf_reference(x, coef, basis, scale, shift, clamp, tlo, thi)
    args = (basis, float(scale), float(shift), bool(clamp), float(tlo), float(thi), impl)
    if torch.compiler.is_compiling():
        return _slaf_op(x, coef, *args)
    op = eager_op(impl)
    if op is not None:
        return op(x, coef, BASIS_CODES[basis], *args[1:-1])
    if torch.is_grad_enabled() and (x.requires_grad or coef.requires_grad):
        return _SlafFunction.apply(x, coef, *args)
    return _forward(x, coef, *args)
