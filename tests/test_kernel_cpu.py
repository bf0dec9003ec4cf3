"""The fused CPU kernel (slaf_approx/kernels/cpu.py + cpu.c) against the plain-torch reference in float64.

Tolerances (u = eps/2, the unit roundoff of the kernel's dtype). Write Phi_k(t) >= |phi_k(t)| for the basis
recurrence run on absolute values, Phi_0 = 1, Phi_(k+1) = |A_k t| Phi_k + |B_k| Phi_(k-1), and Phi'_k, Phi''_k
for its t-derivatives; M_j = sum_k |c_k| Phi^(j)_k(t). The kernel works in the monic basis
psi_k = phi_k/P_k (P_k = A_0...A_(k-1)), a rescaling that leaves the bounds below as they are
(|c_k P_k| Phi_k/|P_k| = |c_k| Phi_k) but for one more rounding of each coefficient.

* Forward (Clenshaw). Each step b_k = c_k + t b_(k+1) - Bm_(k+1) b_(k+2) makes a local error of at most ~4u
  (|c_k| + |t b_(k+1)| + |Bm_(k+1) b_(k+2)|) (the roundings of the step and of c_k, Bm_k in the dtype), and an
  error added to b_k reaches y = b_0 exactly as if added to c_k: multiplied by psi_k(t). Bounding |b_k| by the
  absolute-value Clenshaw sums and counting paths of the recurrence gives sum_k (...) Psi_k <= K M_0, so
      |y - y_ref| <= 4u K M_0 + M_1 dt,
  dt the error of t = scale*x + shift itself. With cancellation M_0 can be far above |y|: the bound grows with
  the basis' conditioning off its interval (Hermite, Chebyshev outside [-1, 1]) as it should.
* gx = gy scale sum_j c'_j phi_j(t), c' the derivative's coefficients in the basis (numpy's chebder, legder,
  hermeder, polyder here): the upward recurrence for gy*phi_j errs by <= 4u j |gy| Phi_j (induction on the
  majorant), the sum over j by <= K u sum_j |c'_j gy phi_j|, the rounding of c'_j by u, so
      |gx - gx_ref| <= |gy scale| (u sum_j (4j + K + 2) |c'_j| Phi_j + M_2 dt) + 2u |gx|.
  Points with t within a few dt of a clamping bound are left out (the gradient jumps there).
* gcoef[c, k] = sum_i gy_i phi_k(t_i): phi_k errs by <= 4u k Phi_k as above, and the kernel sums per vector
  lane in the dtype over at most FLUSH = 16 blocks before adding into float64 (the kernel's SLAF_FLUSH), so
      |gcoef - ref| <= sum_i |gy_i| ((4k + FLUSH + 1) u Phi_k(t_i) + Phi'_k(t_i) dt_i).
The float64 reference has errors of the same form with u = 2^-53 (its gx, by autograd through the forward
recurrence, within 8u K M_1). Every bound is first-order; the tests use twice of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from slaf_approx.kernels import cpu
from slaf_approx.kernels.reference import BASIS_CODES, recurrence, slaf_reference

try:
    cpu.load()
    UNAVAILABLE = ""
except RuntimeError as exc:
    UNAVAILABLE = str(exc)
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"CPU kernel unavailable: {UNAVAILABLE}")

FLUSH = 16  # SLAF_FLUSH in cpu.c: blocks summed per lane in the compute dtype
SAFETY = 2.0
U64 = np.finfo(np.float64).eps / 2
DTYPES = (torch.float32, torch.float64)
INTERVAL = {"power": (-1.0, 1.0), "chebyshev": (-1.0, 1.0), "legendre": (-1.0, 1.0), "hermite": (-3.0, 3.0)}
SCALE, SHIFT = 1.25, 0.125  # exact in float32
# N, C, S: rows of S >= 16 (the kernel's SLAF_SMALL_S) run as blocks of one row, shorter ones as blocks of
# positions across samples (per-lane coefficients); "dense" is x [N, C] of a linear layer (S = 1)
LAYOUTS = {"shared": (1, 1, 3000), "per_channel": (3, 5, 37), "many_channels": (2, 300, 3),
           "conv": (2, 3, 300), "dense": (41, 7, 1)}


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def ab(basis: str, K: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    A, B = recurrence(basis, K)
    return torch.tensor(A, dtype=dtype), torch.tensor(B, dtype=dtype)


DERIVATIVE = {"power": np.polynomial.polynomial.polyder, "chebyshev": np.polynomial.chebyshev.chebder,
              "legendre": np.polynomial.legendre.legder, "hermite": np.polynomial.hermite_e.hermeder}


def derivative_coefficients(coef: np.ndarray, basis: str) -> np.ndarray:
    """[C, K]: the coefficients of p' in the same basis (the last one 0)."""
    K = coef.shape[1]
    if K == 1:
        return np.zeros_like(coef)
    d = DERIVATIVE[basis](coef, axis=1)
    return np.concatenate([d, np.zeros((coef.shape[0], 1))], axis=1)


def majorants(t: np.ndarray, basis: str, K: int) -> np.ndarray:
    """[3, K, *t.shape]: Phi_k(t), Phi'_k(t), Phi''_k(t) of the absolute-value recurrence."""
    A, B = (np.abs(v) for v in recurrence(basis, K))
    at = np.abs(t)
    P = np.zeros((3, K, *t.shape))
    P[0, 0] = 1.0
    if K > 1:
        P[0, 1], P[1, 1] = A[0] * at, A[0]
    for k in range(1, K - 1):
        P[0, k + 1] = A[k] * at * P[0, k] + B[k] * P[0, k - 1]
        P[1, k + 1] = A[k] * P[0, k] + A[k] * at * P[1, k] + B[k] * P[1, k - 1]
        P[2, k + 1] = 2 * A[k] * P[1, k] + A[k] * at * P[2, k] + B[k] * P[2, k - 1]
    return P


def make_case(basis: str, K: int, layout: str, dtype: torch.dtype, seed: int):
    """x [N, C, S] with t spanning the basis interval and a quarter of its width beyond on each side, coef
    [C, K], gy like x; all in `dtype` and never zero."""
    N, C, S = LAYOUTS[layout]
    g = torch.Generator().manual_seed(seed)
    lo, hi = INTERVAL[basis]
    w = (hi - lo) / 4
    t = lo - w + (hi - lo + 2 * w) * torch.rand(N, C, S, generator=g, dtype=torch.float64)
    x = ((t - SHIFT) / SCALE).to(dtype)
    x[x == 0] = 0.5
    coef = torch.randn(C, K, generator=g, dtype=torch.float64).to(dtype)
    coef[coef == 0] = 0.5
    gy = torch.randn(N, C, S, generator=g, dtype=torch.float64).to(dtype)
    gy[gy == 0] = 0.5
    return x, coef, gy


def reference(x, coef, gy, basis, clamp, tlo, thi):
    """y, gx, gcoef of slaf_reference in float64 (autograd)."""
    xr = x.detach().double().clone().requires_grad_()
    cr = coef.detach().double().clone().requires_grad_()
    y = slaf_reference(xr, cr, basis, SCALE, SHIFT, clamp, tlo, thi)
    y.backward(gy.double())
    gx = xr.grad if xr.grad is not None else torch.zeros_like(xr)  # degree 0: y does not depend on x
    return y.detach(), gx, cr.grad


def bounds(x, coef, gy, basis, clamp, tlo, thi, dtype):
    """(tol_y, tol_gx, tol_gcoef, near_bound) as float64 arrays (see the module docstring)."""
    K = coef.shape[1]
    xs = SCALE * x.double().numpy()
    traw = xs + SHIFT
    t = np.clip(traw, tlo, thi) if clamp else traw
    cnp = coef.double().numpy()

    def per_k(c):  # [C, K] -> [K, 1, C, 1], to broadcast against [K, N, C, S]
        return np.abs(c).T[:, None, :, None]

    P = majorants(t, basis, K)
    M = [(per_k(cnp) * P[j]).sum(axis=0) for j in range(3)]
    kk = np.arange(K)[:, None, None, None]
    D = (per_k(derivative_coefficients(cnp, basis)) * P[0] * (4 * kk + K + 2)).sum(axis=0)
    agy = np.abs(gy.double().numpy())

    def kernel(u):
        dt = u * (np.abs(traw) + np.abs(xs) + abs(SHIFT))
        tol_y = 4 * u * K * M[0] + M[1] * dt
        tol_gx = agy * SCALE * (u * D + M[2] * dt)
        tol_gc = (agy * ((4 * kk + FLUSH + 1) * u * P[0] + P[1] * dt)).sum(axis=(1, 3)).T  # [C, K]
        return tol_y, tol_gx, tol_gc, dt

    ty, tg, tc, dt = kernel(unit_roundoff(dtype))
    ry, _, rc, _ = kernel(U64)
    rg = agy * SCALE * 8 * U64 * K * M[1]  # the reference's own gx, by autograd through the recurrence
    near = clamp & ((np.abs(traw - tlo) <= 4 * dt) | (np.abs(traw - thi) <= 4 * dt))
    return SAFETY * (ty + ry), SAFETY * (tg + rg), SAFETY * (tc + rc), near


def check(name, got, exp, tol, x=None, extra_tol=0.0, skip=None):
    """Fail with the worst points (x, got, expected, tolerance) where |got - exp| > tol."""
    got = got.double().numpy().reshape(exp.shape)
    exp = exp.double().numpy()
    tol = np.broadcast_to(tol + extra_tol * np.abs(exp), exp.shape)
    err = np.abs(got - exp)
    bad = ~(err <= tol)
    if skip is not None:
        bad &= ~skip
    if bad.any():
        ratio = np.where(bad, err / np.maximum(tol, 1e-300), -1).ravel()
        worst = np.argsort(ratio)[::-1][: min(6, int(bad.sum()))]
        lines = [f"{name}: {int(bad.sum())} of {bad.size} outside tolerance; worst:"]
        xs = x.double().numpy().ravel() if x is not None else None
        for i in worst:
            where = f"x={float(xs[i])!r}" if xs is not None else f"index {np.unravel_index(i, exp.shape)}"
            g, e, t = float(got.ravel()[i]), float(exp.ravel()[i]), float(tol.ravel()[i])
            lines.append(f"  {where} got={g!r} expected={e!r} |diff|={abs(g - e):.3g} tol={t:.3g}")
        pytest.fail("\n".join(lines))


def run_and_check(x, coef, gy, basis, clamp, tlo, thi, dtype, tag=""):
    """Fused forward and backward on x as [N*C, S], each output checked against the float64 reference."""
    N, C, S = x.shape
    A, B = ab(basis, coef.shape[1], dtype)
    x2, gy2 = x.reshape(N * C, S), gy.reshape(N * C, S)
    y = cpu.forward(x2, coef, A, B, SCALE, SHIFT, clamp, tlo, thi)
    gx, gc = cpu.backward(x2, gy2, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, True, True)
    y_ref, gx_ref, gc_ref = reference(x, coef, gy, basis, clamp, tlo, thi)
    tol_y, tol_gx, tol_gc, near = bounds(x, coef, gy, basis, clamp, tlo, thi, dtype)
    check(f"y {tag}", y, y_ref, tol_y, x)
    check(f"gx {tag}", gx, gx_ref, tol_gx, x, extra_tol=2 * unit_roundoff(dtype), skip=near)
    check(f"gcoef {tag}", gc, gc_ref, tol_gc)
    return (x2, gy2, A, B), y, gx, gc


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("clamp", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_matches_reference(basis, dtype, clamp, layout):
    tlo, thi = INTERVAL[basis]
    for K in range(1, 18):
        x, coef, gy = make_case(basis, K, layout, dtype, seed=K)
        tag = f"{basis} K={K} {dtype} clamp={clamp} {layout}"
        (x2, gy2, A, B), y, gx, gc = run_and_check(x, coef, gy, basis, clamp, tlo, thi, dtype, tag)
        assert y.dtype == dtype and gx.dtype == dtype and gc.dtype == torch.float64
        if K in (1, 2, 11):  # the gx-only and gcoef-only paths give the same numbers as the fused pass
            gx_only, _ = cpu.backward(x2, gy2, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, True, False)
            _, gc_only = cpu.backward(x2, gy2, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, False, True)
            assert torch.equal(gx_only, gx) and torch.equal(gc_only, gc), tag


@pytest.mark.parametrize("K", [33, 65])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("basis", ["chebyshev", "legendre", "power"])
def test_high_degree(basis, dtype, K):
    """Degrees up to 64 (several groups of degrees in the backward pass), on the interval (clamped)."""
    tlo, thi = INTERVAL[basis]
    x, coef, gy = make_case(basis, K, "per_channel", dtype, seed=K)
    run_and_check(x, coef, gy, basis, True, tlo, thi, dtype, f"{basis} K={K} {dtype}")


def test_large_input_and_flushes():
    """1.2M elements, C = 1 and N = 4 rows: many blocks per chunk, lane sums flushed after FLUSH blocks."""
    dtype, basis, K, clamp, (tlo, thi) = torch.float32, "chebyshev", 6, True, INTERVAL["chebyshev"]
    g = torch.Generator().manual_seed(7)
    x = ((torch.rand(4, 1, 300_001, generator=g, dtype=torch.float64) * 3 - 1.5 - SHIFT) / SCALE).to(dtype)
    coef = torch.randn(1, K, generator=g, dtype=torch.float64).to(dtype)
    gy = torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)
    (x2, gy2, A, B), y, gx, gc = run_and_check(x, coef, gy, basis, clamp, tlo, thi, dtype, "large")
    # the gx-only and gcoef-only paths give the same numbers as the fused pass
    gx_only, none = cpu.backward(x2, gy2, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, True, False)
    none2, gc_only = cpu.backward(x2, gy2, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, False, True)
    assert none is None and none2 is None
    assert torch.equal(gx_only, gx) and torch.equal(gc_only, gc)


def _fresh_mapping(nbytes: int):
    """A private anonymous mapping none of whose pages has been touched (as glibc serves a large request)."""
    import mmap

    return mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the populate path is Linux's")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fresh_output_mapping(dtype):
    """An output of 4 MiB or more in a fresh mapping (the kernel populates its pages before writing them):
    y, gx and gcoef bitwise those of the same call into resident memory, nothing written outside the output,
    and an output that starts mid-page and ends mid-page (the partial pages are left to be faulted in)."""
    basis, K, clamp, (tlo, thi) = "chebyshev", 9, False, INTERVAL["chebyshev"]
    n = (5 << 20) // dtype.itemsize + 3  # 5 MiB and a bit: above the kernel's SLAF_PREFAULT (4 MiB)
    x, coef, gy = make_case(basis, K, "shared", dtype, seed=11)
    g = torch.Generator().manual_seed(12)
    x = ((torch.rand(1, n, generator=g, dtype=torch.float64) * 2.5 - 1.25 - SHIFT) / SCALE).to(dtype)
    gy = torch.randn(1, n, generator=g, dtype=torch.float64).to(dtype)
    A, B = ab(basis, K, dtype)
    lib = cpu.load()
    fwd = lib.slaf_fwd_f32 if dtype == torch.float32 else lib.slaf_fwd_f64
    bwd = lib.slaf_bwd_f32 if dtype == torch.float32 else lib.slaf_bwd_f64
    nt = max(2, torch.get_num_threads())

    def run(y, gx):
        gc = torch.zeros(1, K, dtype=torch.float64)
        assert fwd(x.data_ptr(), y.data_ptr(), coef.data_ptr(), A.data_ptr(), B.data_ptr(), 1, n, 1, K, SCALE,
                   SHIFT, clamp, tlo, thi, nt) == 0
        assert bwd(x.data_ptr(), gy.data_ptr(), gx.data_ptr(), gc.data_ptr(), coef.data_ptr(), A.data_ptr(),
                   B.data_ptr(), 1, n, 1, K, SCALE, SHIFT, clamp, tlo, thi, nt) == 0
        return gc

    resident_y = torch.full_like(x, float("nan"))
    resident_gx = torch.full_like(x, float("nan"))
    gc_resident = run(resident_y, resident_gx)
    lead = 3  # elements before the output in its mapping: the output starts mid-page
    size = (lead + n + 5) * dtype.itemsize
    maps = [_fresh_mapping(size), _fresh_mapping(size)]
    try:
        whole = [torch.frombuffer(m, dtype=dtype) for m in maps]
        y, gx = (w[lead:lead + n].view(1, n) for w in whole)
        gc_fresh = run(y, gx)
        assert torch.equal(y, resident_y) and torch.equal(gx, resident_gx)
        assert torch.equal(gc_fresh, gc_resident)
        for w in whole:  # a fresh mapping reads zero wherever nothing was written
            assert not w[:lead].any() and not w[lead + n:].any()
        del whole, y, gx
    finally:
        for m in maps:
            m.close()
    y_ref, gx_ref, _ = reference(x.view(1, 1, n), coef, gy.view(1, 1, n), basis, clamp, tlo, thi)
    tol_y, tol_gx, _, _ = bounds(x.view(1, 1, n), coef, gy.view(1, 1, n), basis, clamp, tlo, thi, dtype)
    check("y (fresh output)", resident_y, y_ref, tol_y, x)
    check("gx (fresh output)", resident_gx, gx_ref, tol_gx, x, extra_tol=2 * unit_roundoff(dtype))


@pytest.mark.parametrize("shape", [(1, 1, 1 << 20), (8, 3, 40_000), (4096, 64, 1), (256, 16, 9)])
def test_gcoef_bitwise_deterministic(shape):
    N, C, S = shape
    g = torch.Generator().manual_seed(3)
    x = torch.rand(N * C, S, generator=g) * 2 - 1
    gy = torch.randn(N * C, S, generator=g)
    coef = torch.randn(C, 9, generator=g)
    A, B = ab("legendre", 9, torch.float32)
    args = (x, gy, coef, A, B, 1.0, 0.0, False, -1.0, 1.0, True, True)
    before = torch.get_num_threads()
    try:
        gx1, gc1 = cpu.backward(*args)
        gx2, gc2 = cpu.backward(*args)
        torch.set_num_threads(1)
        gx3, gc3 = cpu.backward(*args)
        torch.set_num_threads(2)
        gx4, gc4 = cpu.backward(*args)
    finally:
        torch.set_num_threads(before)
    for gc in (gc2, gc3, gc4):
        assert torch.equal(gc, gc1)
    for gx in (gx2, gx3, gx4):
        assert torch.equal(gx, gx1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_nan_and_inf(basis, dtype):
    K, (tlo, thi) = 6, INTERVAL[basis]
    g = torch.Generator().manual_seed(11)
    x = (torch.rand(2, 50, generator=g, dtype=torch.float64) - 0.5).to(dtype)
    x[0, 3], x[1, 7], x[1, 8] = float("nan"), float("inf"), float("-inf")
    gy = torch.randn(2, 50, generator=g, dtype=torch.float64).to(dtype)
    coef = torch.randn(1, K, generator=g, dtype=torch.float64).to(dtype)
    A, B = ab(basis, K, dtype)
    finite = torch.isfinite(x)
    x_clean = torch.where(finite, x, torch.zeros_like(x))
    for clamp in (False, True):
        y = cpu.forward(x, coef, A, B, SCALE, SHIFT, clamp, tlo, thi)
        gx, gc = cpu.backward(x, gy, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, True, True)
        y0 = cpu.forward(x_clean, coef, A, B, SCALE, SHIFT, clamp, tlo, thi)
        gx0, _ = cpu.backward(x_clean, gy, coef, A, B, SCALE, SHIFT, clamp, tlo, thi, True, False)
        assert torch.isnan(y[0, 3]) and torch.isnan(gx[0, 3])  # NaN in, NaN out
        assert torch.equal(y[finite], y0[finite]) and torch.equal(gx[finite], gx0[finite])  # others untouched
        assert not torch.isnan(gc[0, 0]) and torch.isnan(gc[0, 1:]).all()  # phi_0 = 1 ignores the NaN
        if clamp:  # inf is clamped to the bounds; the gradient there is 0
            big = torch.tensor([[1.0, -1.0]], dtype=dtype)
            edges = cpu.forward(big, coef, A, B, 1e30, 0.0, True, tlo, thi)  # t = +-1e30, clamped
            assert torch.equal(y[1, 7:9], edges[0])
            assert torch.equal(gx[1, 7:9], torch.zeros(2, dtype=dtype))
    # degree 0 is a constant, as in the reference (phi_0 = 1 whatever x is)
    c0 = torch.tensor([[1.5]], dtype=dtype)
    y = cpu.forward(x, c0, A[:1], B[:1], SCALE, SHIFT, False, tlo, thi)
    assert torch.equal(y, torch.full_like(x, 1.5))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_empty(dtype):
    coef = torch.randn(3, 4, dtype=dtype)
    A, B = ab("chebyshev", 4, dtype)
    for shape in ((0, 7), (6, 0)):
        x = torch.empty(shape, dtype=dtype)
        y = cpu.forward(x, coef, A, B, 1.0, 0.0, False, -1.0, 1.0)
        gx, gc = cpu.backward(x, x, coef, A, B, 1.0, 0.0, True, -1.0, 1.0, True, True)
        assert y.shape == shape and gx.shape == shape
        assert torch.equal(gc, torch.zeros(3, 4, dtype=torch.float64))


def test_bad_arguments():
    x = torch.rand(6, 10)
    coef = torch.rand(3, 4)
    A, B = ab("legendre", 4, torch.float32)
    args = (1.0, 0.0, False, -1.0, 1.0)
    with pytest.raises(TypeError, match="float16"):
        cpu.forward(x.half(), coef.half(), A.half(), B.half(), *args)
    with pytest.raises(TypeError, match="int64"):
        cpu.forward(x.long(), coef, A, B, *args)
    with pytest.raises(TypeError, match="coef has dtype torch.float64"):
        cpu.forward(x, coef.double(), A, B, *args)
    with pytest.raises(TypeError, match="torch.Tensor"):
        cpu.forward(x.numpy(), coef, A, B, *args)
    with pytest.raises(ValueError, match="2 dimension"):
        cpu.forward(x.reshape(60), coef, A, B, *args)
    with pytest.raises(ValueError, match="contiguous"):
        cpu.forward(torch.rand(10, 6).t(), coef, A, B, *args)
    with pytest.raises(ValueError, match="multiple"):
        cpu.forward(torch.rand(5, 10), coef, A, B, *args)
    with pytest.raises(ValueError, match="A and B"):
        cpu.forward(x, coef, A[:3], B[:3], *args)
    with pytest.raises(ValueError, match="device"):
        cpu.forward(x.to("meta"), coef, A, B, *args)
    with pytest.raises(ValueError, match="gy2d has shape"):
        cpu.backward(x, x[:3], coef, A, B, *args, True, True)
    with pytest.raises(RuntimeError, match="not a polynomial basis"):
        cpu.forward(x, coef, torch.tensor([1.0, 0.0, 2.0, 2.0]), B, *args)
    # the C entry points check their sizes as well
    lib = cpu.load()
    y = torch.empty_like(x)
    ptrs = (coef.data_ptr(), A.data_ptr(), B.data_ptr())
    assert lib.slaf_fwd_f32(x.data_ptr(), y.data_ptr(), *ptrs, 5, 10, 3, 4, 1.0, 0.0, 0, -1.0, 1.0, 1) == 2
    assert lib.slaf_fwd_f32(None, y.data_ptr(), *ptrs, 6, 10, 3, 4, 1.0, 0.0, 0, -1.0, 1.0, 1) == 1


STUB = """#include <stdint.h>
int slaf_fwd_f32(void) { return 7; }
int slaf_bwd_f32(void) { return 7; }
int slaf_fwd_f64(void) { return 7; }
int slaf_bwd_f64(void) { return 7; }
"""


def stub_value(lib) -> int:
    return lib.slaf_fwd_f32(*([None] * 5), 0, 0, 0, 0, 0.0, 0.0, 0, 0.0, 0.0, 0)  # the arguments it ignores


def _use_stub(monkeypatch, tmp_path, text=STUB):
    """cpu.SOURCE -> a stub with the four entry points (fast to build), a fresh cache, no loaded library."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SLAF_APPROX_CACHE", str(cache))
    monkeypatch.delenv(cpu.CFLAGS_ENV, raising=False)
    source = tmp_path / "stub.c"
    source.write_text(text)
    monkeypatch.setattr(cpu, "SOURCE", source)
    monkeypatch.setattr(cpu, "_lib", None)
    monkeypatch.setattr(cpu, "_error", None)
    return cache, source


def _reset(monkeypatch):
    monkeypatch.setattr(cpu, "_lib", None)
    monkeypatch.setattr(cpu, "_error", None)


def _libraries(cache):
    return sorted(p.name for p in cache.iterdir() if p.suffix == ".so")


def test_build_cache(tmp_path, monkeypatch):
    """Built into $SLAF_APPROX_CACHE under a name keyed by the source, with a sidecar holding its size and
    sha256; reused; rebuilt when the source changes."""
    cache, source = _use_stub(monkeypatch, tmp_path)
    assert cpu.available()
    built = _libraries(cache)
    assert len(built) == 1 and built[0].startswith("slaf_cpu_")
    lib = cache / built[0]
    meta = json.loads(lib.with_suffix(".json").read_text())
    assert meta["size"] == lib.stat().st_size
    assert meta["sha256"] == hashlib.sha256(lib.read_bytes()).hexdigest()
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    before = lib.stat().st_mtime_ns
    _reset(monkeypatch)  # a second load reuses the cached file
    assert stub_value(cpu.load()) == 7
    assert _libraries(cache) == built and lib.stat().st_mtime_ns == before
    source.write_text(STUB.replace("7", "8"))  # another source: another file
    _reset(monkeypatch)
    assert stub_value(cpu.load()) == 8
    assert len(_libraries(cache)) == 2


def test_cflags_are_part_of_the_key(tmp_path, monkeypatch):
    cache, _ = _use_stub(monkeypatch, tmp_path, STUB.replace("return 7", "return SLAF_STUB_VALUE"))
    monkeypatch.setenv(cpu.CFLAGS_ENV, "-DSLAF_STUB_VALUE=5 -O1")
    assert stub_value(cpu.load()) == 5
    _reset(monkeypatch)
    monkeypatch.setenv(cpu.CFLAGS_ENV, "-DSLAF_STUB_VALUE='(3 + 3)'")  # shell quoting, as a shell splits it
    assert stub_value(cpu.load()) == 6
    assert len(_libraries(cache)) == 2
    meta = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert sorted(m["flags"][-1] for m in meta) == ["-DSLAF_STUB_VALUE=(3 + 3)", "-O1"]
    _reset(monkeypatch)
    monkeypatch.setenv(cpu.CFLAGS_ENV, "-fno-such-flag-xyz")
    assert "-fno-such-flag-xyz" in cpu.unavailable_reason()
    _reset(monkeypatch)
    monkeypatch.setenv(cpu.CFLAGS_ENV, "'-O2")
    assert "SLAF_APPROX_CFLAGS=\"'-O2\" cannot be split" in cpu.unavailable_reason()


CHILD = """
import sys
from pathlib import Path
from slaf_approx.kernels import cpu
cpu.SOURCE = Path(sys.argv[1])
if len(sys.argv) > 2:  # wait for the start signal, so that the processes build at the same time
    while not Path(sys.argv[2]).exists():
        pass
lib = cpu.load()
print(lib.slaf_fwd_f32(*([None] * 5), 0, 0, 0, 0, 0.0, 0.0, 0, 0.0, 0.0, 0))
"""


def _damage(lib, data: bytes) -> None:
    """Replace lib by `data` under a new inode: this process has the old file mapped, and changing a mapped
    library in place would crash it (SIGBUS), which is the failure the sidecar protects new processes from."""
    tmp = lib.with_name(lib.name + ".damaged")
    tmp.write_bytes(data)
    os.replace(tmp, lib)


def _child(source, *extra, env):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(source), *map(str, extra)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_corrupt_cached_library_is_rebuilt(tmp_path, monkeypatch):
    """A truncated library (mapping one kills the process with SIGBUS) fails verification and is rebuilt;
    so is one whose bytes changed at the same size. Each in a fresh process, as a new run would see it."""
    cache, source = _use_stub(monkeypatch, tmp_path)
    cpu.load()
    (lib,) = (cache / n for n in _libraries(cache))
    good = lib.read_bytes()
    env = {**os.environ, "SLAF_APPROX_CACHE": str(cache)}
    for damaged in (good[: len(good) // 3], good[:-64] + b"\0" * 64):
        _damage(lib, damaged)
        proc = _child(source, env=env)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "7", err
        meta = json.loads(lib.with_suffix(".json").read_text())  # rebuilt: the pair verifies again
        assert meta["size"] == lib.stat().st_size == len(good)
        assert meta["sha256"] == hashlib.sha256(lib.read_bytes()).hexdigest()


def test_concurrent_builds(tmp_path, monkeypatch):
    """Several processes building the same kernel into one empty cache at once: all load it, one library."""
    cache, source = _use_stub(monkeypatch, tmp_path)
    cache.mkdir()
    go = tmp_path / "go"
    env = {**os.environ, "SLAF_APPROX_CACHE": str(cache)}
    procs = [_child(source, go, env=env) for _ in range(4)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip() == "7", err
    assert len(_libraries(cache)) == 1
    assert sorted(p.suffix for p in cache.iterdir() if not p.name.startswith(".")) == [".json", ".so"]
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_cached_library_is_used_without_gcc(tmp_path, monkeypatch):
    cache, _ = _use_stub(monkeypatch, tmp_path)
    cpu.load()
    _reset(monkeypatch)
    monkeypatch.setattr(cpu.shutil, "which", lambda name: None)
    assert stub_value(cpu.load()) == 7
    (lib,) = (cache / n for n in _libraries(cache))
    _damage(lib, lib.read_bytes()[:100])  # damaged, and no gcc to rebuild it: unavailable, no crash
    _reset(monkeypatch)
    assert "no verified build" in cpu.unavailable_reason() and "gcc" in cpu.unavailable_reason()


def test_read_only_cache(tmp_path, monkeypatch):
    """A cache where nothing can be written (simulated: the tests run as root, who may write anywhere)
    makes the kernel unavailable with the reason, unless a verified build is already there."""
    cache, source = _use_stub(monkeypatch, tmp_path)

    def refuse(self):
        raise PermissionError(30, "Read-only file system", str(self.path))

    monkeypatch.setattr(cpu._BuildLock, "__enter__", refuse)
    reason = cpu.unavailable_reason()
    assert reason.startswith(f"cannot build the SLAF CPU kernel in {cache}") and "Read-only" in reason
    monkeypatch.undo()
    _use_stub(monkeypatch, tmp_path)
    cpu.load()
    _reset(monkeypatch)
    monkeypatch.setattr(cpu._BuildLock, "__enter__", refuse)
    assert stub_value(cpu.load()) == 7  # verified before any lock is taken


def test_build_failures(tmp_path, monkeypatch):
    cache, _ = _use_stub(monkeypatch, tmp_path, "int f(void) { return undeclared_name; }\n")
    assert not cpu.available()
    with pytest.raises(RuntimeError, match="undeclared_name"):
        cpu.load()
    assert not [p for p in cache.iterdir() if p.suffix in (".so", ".json", ".tmp")]
    _reset(monkeypatch)
    monkeypatch.setattr(cpu.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs gcc, which is not on PATH"):
        cpu.load()
