"""What is benchmarked: the SLAF op per backend, its peers (what a user would write instead), the native
activations, the copy roofline and a real layer, each as a no-argument callable; the bytes each must move
and its peak memory over one call.

Peers, all with learnable coefficients (``torch.nn.Parameter``, so that forward+backward computes their
gradients as the SLAF's does):

* ``horner`` — the polynomial sum_k a_k x^k by Horner's rule, in eager torch (``eager``) or under
  ``torch.compile`` (``compile``): the two lines a user writes first;
* ``recurrence`` — the SLAF's own definition as a user writes it (the three-term recurrence,
  :func:`slaf_approx.kernels.reference.series`, without the overflow rule) under ``torch.compile``;
* ``pau`` — a Padé activation unit P(x) / (1 + |b_1 x + ... + b_k x^k|), PAU's "safe" denominator in the
  form slaf_approx.rational calls "pau" (|.| around the whole sum, not around each term), eager or
  compiled, of type (5, 4) (PAU's default) or of the type with the polynomial's parameter count
  (m + 1 + k = n + 1: m = n - n // 2, k = n // 2).

A compiled peer is built after ``torch._dynamo.reset()``, so each benchmark compiles its own graph (no
recompile limit is reached, no dynamic-shape graph is reused); the first call, the compilation, is timed
on its own (the suite's ``first_call_s``).

Bytes moved are the compulsory traffic of an ideal kernel, n elements of s bytes: forward reads x and
writes y (2ns); forward + backward also reads x and grad y and writes grad x (5ns); the copy moves 2ns.

Test hook: ``SLAF_APPROX_BENCH_SLOWDOWN=F`` (F >= 1, e.g. 1.25) makes every SLAF op benchmark F times as
slow, by waiting after each call for (F - 1) times its duration. It exists to test that the regression
check catches a slowdown of known size; it touches the benchmarks only, never the library.

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

from .settings import ACTIVATIONS, BASIS, COPIES, INTERVAL, LAYER_DEGREE, LAYER_OPS, MODES, PEER_OPS

SLOWDOWN_ENV = "SLAF_APPROX_BENCH_SLOWDOWN"
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def bytes_moved(size: int, dtype: str, mode: str, op: str = "slaf") -> int:
    """Compulsory traffic: 2 n s for a forward pass or a copy, 5 n s for forward + backward."""
    return (2 if op in COPIES or mode == "forward" else 5) * int(size) * _ITEMSIZE[dtype]


def make_input(size: int, dtype: str, device: str, seed: int = 0):
    """(x uniform on INTERVAL, grad y standard normal), seeded, made on the device."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    lo, hi = INTERVAL
    x = torch.rand(size, generator=g, device=device, dtype=torch.float32).mul_(hi - lo).add_(lo)
    gy = torch.randn(size, generator=g, device=device, dtype=torch.float32)
    dt = getattr(torch, dtype)
    return x.to(dt), gy.to(dt)


def coefficients(K: int, like, scale: float = 1.0, seed: int | None = None):
    """K seeded standard-normal coefficients / K, the k-th divided by scale^k (so that a power-basis
    polynomial of x in [-scale, scale] stays of order one), on x's device and dtype."""
    import torch

    g = torch.Generator().manual_seed(K if seed is None else seed)
    c = torch.randn(K, generator=g, dtype=torch.float64) / K
    c *= scale ** -torch.arange(K, dtype=torch.float64)
    return c.to(dtype=like.dtype, device=like.device)


def pau_type(variant: str, degree: int | None) -> tuple[int, int]:
    """(m, k) of the PAU timed: (5, 4), or for 'matched' the type with degree + 1 parameters."""
    if variant == "5/4":
        return 5, 4
    if variant == "matched":
        if degree is None:
            raise ValueError("the matched PAU type needs a degree")
        return degree - degree // 2, degree // 2
    raise ValueError(f"unknown PAU variant {variant!r}; allowed: 5/4, matched")


def slowdown() -> float:
    """The test hook's factor (1.0 when unset); ValueError for anything but a finite number >= 1."""
    text = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not text:
        return 1.0
    try:
        f = float(text)
    except ValueError:
        f = math.nan
    if not (math.isfinite(f) and f >= 1.0):
        raise ValueError(f"{SLOWDOWN_ENV} is a factor >= 1 such as 1.25, got {text!r}")
    return f


def _slowed(fn, factor: float):
    if factor == 1.0:
        return fn

    def slow():
        t0 = time.perf_counter()
        out = fn()
        end = t0 + factor * (time.perf_counter() - t0)
        while time.perf_counter() < end:
            pass
        return out

    return slow


def _wrap(f, params, mode: str, x, gy):
    import torch

    if mode == "forward":

        def forward():
            with torch.no_grad():
                return f(x, *params)

        return forward
    xg = x.detach().requires_grad_(True)
    ps = [torch.nn.Parameter(p.detach().clone()) for p in params]

    def forward_backward():
        y = f(xg, *ps)
        return torch.autograd.grad(y, [xg, *ps], gy)

    return forward_backward


def _compiled(f):
    import torch

    torch._dynamo.reset()
    return torch.compile(f, fullgraph=True, dynamic=False)


def _peer(op: str, backend: str, x, degree: int | None, variant: str | None):
    """(function of (x, *params), params) of a peer."""
    from ..kernels.pau import horner, pau
    from ..kernels.reference import series

    if backend not in ("eager", "compile") or (op == "recurrence" and backend != "compile"):
        allowed = "compile" if op == "recurrence" else "eager, compile"
        raise ValueError(f"peer {op!r} has backends {allowed}, got {backend!r}")
    lo, hi = INTERVAL
    r = max(abs(lo), abs(hi))
    if op == "horner":
        f, params = horner, [coefficients(degree + 1, x, scale=r)]
    elif op == "recurrence":
        scale, shift = 2.0 / (hi - lo), -(lo + hi) / (hi - lo)

        def f(v, c):  # the recurrence as a user writes it (no overflow rule)
            return series(v * scale + shift, c, BASIS, [1] * v.dim())

        params = [coefficients(degree + 1, x)]
    else:
        m, k = pau_type(variant or "5/4", degree)
        params = [coefficients(m + 1, x, scale=r, seed=m), coefficients(k, x, scale=r, seed=100 + k)]
        f = pau
    return (_compiled(f) if backend == "compile" else f), params


def kernel_fn(
    op: str,
    mode: str,
    x,
    gy,
    *,
    backend: str | None = None,
    degree: int | None = None,
    variant: str | None = None,
):
    """A no-argument callable running `op` in `mode` on x (forward: under no_grad; forward+backward: y and
    torch.autograd.grad of y against x and the coefficients, with grad y = gy; nothing accumulates).
    `backend`: the SLAF backend (op 'slaf'), or 'eager' / 'compile' for a peer; `variant`: the PAU type."""
    import torch
    import torch.nn.functional as F

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    if op in COPIES:
        if mode != "forward":
            raise ValueError("the copy has a forward mode only")
        if op == "copy":
            return lambda: x.clone()
        y = torch.empty_like(x).copy_(x)  # written once here, so its pages are resident when timed
        return lambda: y.copy_(x)
    if op in ACTIVATIONS:
        f = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}[op]
        return _wrap(lambda v: f(v), [], mode, x, gy)
    if op == "slaf":
        from ..kernels import slaf

        lo, hi = INTERVAL
        scale, shift = 2.0 / (hi - lo), -(lo + hi) / (hi - lo)
        coef = coefficients(degree + 1, x)
        fn = _wrap(
            lambda v, c: slaf(v, c, BASIS, scale, shift, False, -1.0, 1.0, backend=backend),
            [coef],
            mode,
            x,
            gy,
        )
        return _slowed(fn, slowdown())
    if op in PEER_OPS:
        f, params = _peer(op, backend or "eager", x, degree, variant)
        return _wrap(f, params, mode, x, gy)
    raise ValueError(
        f"unknown op {op!r}; allowed: slaf, {', '.join(PEER_OPS)}, {', '.join(COPIES)}, "
        f"{', '.join(ACTIVATIONS)}"
    )


def native_fn(f, mode: str, x, gy):
    """A no-argument callable running a torch function f(x) without parameters (a native activation) in
    `mode`, as :func:`kernel_fn` runs its ops."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    return _wrap(lambda v: f(v), [], mode, x, gy)


def layer_fn(op: str, mode: str, shape: Sequence[int], dtype: str, device: str):
    """(callable, backend) for the real layer: per-channel SLAF(LAYER_DEGREE, init='gelu') or nn.GELU on
    an input of `shape` (batch, channels, height, width)."""
    import torch
    from torch import nn

    from ..kernels import resolve_backend
    from ..nn import SLAF

    n = math.prod(shape)
    x, gy = make_input(n, dtype, device)
    x, gy = x.view(*shape), gy.view(*shape)
    if op == "gelu_layer":
        module, backend = nn.GELU(), "torch"
    elif op == "slaf_layer":
        module = SLAF(
            LAYER_DEGREE, channels=shape[1], init="gelu", dtype=getattr(torch, dtype), device=device
        )
        backend = resolve_backend("auto", x)
    else:
        raise ValueError(f"unknown layer op {op!r}; allowed: {', '.join(LAYER_OPS)}")
    params = list(module.parameters())
    if mode == "forward":

        def forward():
            with torch.no_grad():
                return module(x)

        return forward, backend
    xg = x.detach().requires_grad_(True)

    def forward_backward():
        return torch.autograd.grad(module(xg), [xg, *params], gy)

    return forward_backward, backend


def allocator_peak(events) -> int:
    """The peak of the running sum of torch's allocation (+bytes) and free (-bytes) events, in time order."""
    total = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        total += e.nbytes()
        peak = max(peak, total)
    return peak


def peak_memory(fn, device: str):
    """(fn(), bytes of memory the call took at its peak beyond what was held before it).

    CUDA: the caching allocator's max_memory_allocated after reset_peak_memory_stats. CPU: torch's
    allocator, followed through the profiler's memory events (every allocation and free of the call, in
    order): the peak of their running sum. Both count every tensor the call makes, outputs included, to the
    byte; neither sees memory taken outside torch's allocator (the fused CPU kernel's scratch for the
    coefficient gradient, a few chunks of C·K doubles)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        return out, int(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "99")  # the profiler's start/stop lines on stderr, per call
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    return out, allocator_peak(events)
