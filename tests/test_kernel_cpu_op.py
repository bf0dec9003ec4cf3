"""The fused backend's C++ dispatcher op (slaf_approx/kernels/cpu_op.py + cpu_op.cpp).

It runs the C kernels that tests/test_kernel_cpu.py checks against the float64 reference with derived error
bounds; what the op adds is the layout, the basis recurrence (computed in C++), the dtype casts and the
autograd kernel. So: its values and gradients are bitwise those of the Python path over the same kernels
(ctypes + autograd.Function), its float64 gradients pass gradcheck and gradgradcheck, and a missing op
falls back to the Python path with a warning, never silently.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from slaf_approx import kernels
from slaf_approx.kernels import cpu, cpu_op, registry
from slaf_approx.kernels.reference import BASIS_CODES, recurrence, slaf_reference

try:
    cpu_op.load()
    UNAVAILABLE = ""
except RuntimeError as exc:
    UNAVAILABLE = str(exc)
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"C++ op unavailable: {UNAVAILABLE}")

# (x shape, coef shape): shared coefficients on any shape, per-channel along dim 1
SHAPES = {"shared": ((3000,), (None,)), "shared_2d": ((7, 130), (None,)),
          "per_channel": ((3, 5, 37), (5, None)), "dense": ((41, 7), (7, None)),
          "conv": ((2, 3, 4, 25), (3, None))}

NEEDS = ((True, True), (True, False), (False, True))  # gradients wanted for (x, coef)


def _case(shape, K, dtype, seed, coef_dtype=None):
    g = torch.Generator().manual_seed(seed)
    xs, cs = SHAPES[shape]
    x = (torch.rand(xs, generator=g, dtype=torch.float64) * 2.4 - 1.2).to(dtype)
    coef = torch.randn(tuple(K if d is None else d for d in cs), generator=g, dtype=torch.float64) / K
    gy = torch.randn(xs, generator=g, dtype=torch.float64).to(dtype)
    return x, coef.to(coef_dtype or dtype), gy


def _python_path(monkeypatch):
    """The fused backend without its eager op: the custom autograd.Function over ctypes."""
    registry.forget()
    monkeypatch.setitem(registry._eager, "fused", None)


def _fwd_bwd(x, coef, gy, basis, clamp, need=(True, True)):
    xr = x.clone().requires_grad_(need[0])
    cr = coef.clone().requires_grad_(need[1])
    y = kernels.slaf(xr, cr, basis, 0.8, 0.1, clamp, -1.0, 1.0, backend="fused")
    want = [t for t in (xr, cr) if t.requires_grad]
    return y.detach(), torch.autograd.grad(y, want, gy)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_bitwise_the_python_path(basis, dtype, shape, monkeypatch):
    for K, clamp in ((1, False), (2, True), (3, False), (9, True), (17, False), (24, True)):
        x, coef, gy = _case(shape, K, dtype, seed=K)
        tag = f"{basis} {dtype} {shape} K={K} clamp={clamp}"
        registry.forget()
        assert registry.eager_op("fused") is not None
        got = [_fwd_bwd(x, coef, gy, basis, clamp, need) for need in NEEDS]
        with torch.no_grad():
            got_nograd = kernels.slaf(x, coef, basis, 0.8, 0.1, clamp, -1.0, 1.0, backend="fused")
        with monkeypatch.context() as m:
            _python_path(m)
            exp = [_fwd_bwd(x, coef, gy, basis, clamp, need) for need in NEEDS]
        registry.forget()
        assert torch.equal(got_nograd, exp[0][0]), tag
        for (y, grads), (ye, grads_e) in zip(got, exp, strict=True):
            assert y.dtype == dtype and y.shape == x.shape, tag
            assert torch.equal(y, ye), tag
            assert len(grads) == len(grads_e), tag
            for a, b in zip(grads, grads_e, strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), tag


def test_a_call_with_nothing_to_record_is_the_kernel_alone_and_records_nothing():
    """No graph under no_grad or without an input that requires grad (the op skips the custom Function
    there), the same numbers as the recorded call, and a graph as soon as x or the coefficients need one."""
    x, coef, _ = _case("conv", 5, torch.float32, seed=3)
    call = lambda a, c: kernels.slaf(a, c, "chebyshev", 0.8, 0.1, False, -1.0, 1.0, backend="fused")  # noqa: E731
    recorded = call(x.clone().requires_grad_(), coef.clone().requires_grad_())
    assert recorded.grad_fn is not None
    with torch.no_grad():
        for a, c in ((x.clone().requires_grad_(), coef), (x, coef.clone().requires_grad_()), (x, coef)):
            y = call(a, c)
            assert not y.requires_grad and y.grad_fn is None and torch.equal(y, recorded.detach())
    y = call(x, coef)
    assert not y.requires_grad and torch.equal(y, recorded.detach())
    for a, c in ((x.clone().requires_grad_(), coef), (x, coef.clone().requires_grad_())):
        y = call(a, c)
        assert y.requires_grad and y.grad_fn is not None and torch.equal(y.detach(), recorded.detach())


def _majorants(basis, K, tmax):
    """(Phi, dPhi) [K]: Phi_k >= |phi_k(t)| and dPhi_k >= |phi_k'(t)| for |t| <= tmax, by the recurrence on
    absolute values (Phi_(k+1) = |A_k| tmax Phi_k + |B_k| Phi_(k-1), and its derivative)."""
    A, B = recurrence(basis, K)
    P, D = np.zeros(K), np.zeros(K)
    P[0] = 1.0
    for k in range(K - 1):
        P[k + 1] = abs(A[k]) * tmax * P[k] + (abs(B[k]) * P[k - 1] if k else 0.0)
        D[k + 1] = abs(A[k]) * (P[k] + tmax * D[k]) + (abs(B[k]) * D[k - 1] if k else 0.0)
    return P, D


def _close(name, got, exp, tol):
    """Fail with the worst points where |got - exp| > tol."""
    tol = torch.as_tensor(tol, dtype=torch.float64).expand_as(exp)
    err = (got - exp).abs()
    bad = ~(err <= tol)
    if bad.any():
        worst = torch.argsort(torch.where(bad, err / tol, -1.0).ravel(), descending=True)[:5]
        lines = [f"  index {int(i)}: got {got.ravel()[i].item()!r} expected {exp.ravel()[i].item()!r} "
                 f"tol {tol.ravel()[i].item():.3g}" for i in worst]
        head = f"{name}: {int(bad.sum())} of {bad.numel()} outside tolerance; worst:"
        pytest.fail("\n".join([head, *lines]))


def test_against_the_float64_reference():
    """Values and both gradients near the reference's. Both are float64 recurrences: each errs by at most
    ~8 K u times the majorant of its sum (tests/test_kernel_cpu.py derives it), u = eps/2; twice that here."""
    u = torch.finfo(torch.float64).eps / 2
    K = 12
    for basis in BASIS_CODES:
        for shape in SHAPES:
            x, coef, gy = _case(shape, K, torch.float64, seed=5)
            y, (gx, gc) = _fwd_bwd(x, coef, gy, basis, False)
            xr, cr = x.clone().requires_grad_(), coef.clone().requires_grad_()
            yr = slaf_reference(xr, cr, basis, 0.8, 0.1, False, -1.0, 1.0)
            gxr, gcr = torch.autograd.grad(yr, [xr, cr], gy)
            P, D = _majorants(basis, K, 0.8 * x.abs().max().item() + 0.1)
            cmax = coef.abs().max().item()
            m0, m1 = cmax * P.sum(), cmax * D.sum()
            n = x.numel() // (coef.shape[0] if coef.dim() == 2 else 1)  # terms per coefficient
            gmax = gy.abs().max().item()
            tag = f"{basis} {shape}"
            _close(f"y {tag}", y, yr.detach(), 2 * 2 * 8 * K * u * m0)
            _close(f"gx {tag}", gx, gxr, 2 * 2 * 8 * K * u * 0.8 * gmax * m1)
            # a sum of n terms, each within ~8 K u of |gy| Phi_k: (8 K + n) u n |gy| Phi_k
            tol_gc = 2 * 2 * (8 * K + n) * u * gmax * n * torch.from_numpy(P).expand_as(gc)
            _close(f"gcoef {tag}", gc, gcr, tol_gc)


@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_gradcheck_and_gradgradcheck(basis):
    g = torch.Generator().manual_seed(3)
    for xs, cs in (((30,), (6,)), ((2, 3, 4), (3, 6)), ((2, 3, 2, 2), (3, 6))):  # shared, per channel, conv
        for clamp in (False, True):
            x = torch.rand(xs, generator=g, dtype=torch.float64).mul_(2.4).sub_(1.2).requires_grad_()
            coef = (torch.randn(cs, generator=g, dtype=torch.float64) / 6).requires_grad_()

            def f(a, c, clamp=clamp):
                return kernels.slaf(a, c, basis, 0.8, 0.1, clamp, -1.0, 1.0, backend="fused")

            assert torch.autograd.gradcheck(f, (x, coef))
            assert torch.autograd.gradgradcheck(f, (x, coef))


def test_mixed_dtypes_and_strides():
    """float64 coefficients on float32 x (cast as the Python path does), a non-contiguous x."""
    x, coef, gy = _case("per_channel", 7, torch.float32, seed=11, coef_dtype=torch.float64)
    xt = x.transpose(0, 2).contiguous().transpose(0, 2)  # same values, other strides
    assert not xt.is_contiguous()
    y, (gx, gc) = _fwd_bwd(xt, coef, gy, "legendre", True)
    y2, (gx2, gc2) = _fwd_bwd(x, coef, gy, "legendre", True)
    assert gc.dtype == torch.float64 and gx.dtype == torch.float32
    assert torch.equal(y, y2) and torch.equal(gx, gx2) and torch.equal(gc, gc2)


def test_unavailable_op_warns_and_takes_the_python_path(monkeypatch):
    x, coef, _ = _case("per_channel", 5, torch.float32, seed=2)
    with torch.no_grad():
        want = kernels.slaf(x, coef, "chebyshev", backend="fused")
    monkeypatch.setattr(cpu_op, "_op", None)
    monkeypatch.setattr(cpu_op, "_error", "the SLAF C++ op needs a C++ compiler (simulated)")
    registry.forget()
    try:
        with pytest.warns(kernels.SlafBackendWarning, match=r"'fused' runs through its Python path") as rec:
            y = kernels.slaf(x, coef, "chebyshev", backend="fused")
        assert "needs a C++ compiler (simulated)" in str(rec[0].message)  # the reason, as load() gave it
        assert torch.equal(y, want)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per reason
            kernels.slaf(x, coef, "chebyshev", backend="fused")
    finally:
        registry.forget()


def test_build_is_verified_and_reused(monkeypatch):
    path = cpu_op._library_path()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] == cpu._sha256(path.read_bytes()) and meta["size"] == path.stat().st_size
    assert meta["kernel"] == str(cpu._library_path()) and meta["torch"] == torch.__version__
    assert cpu_op._library_path() == path  # a second call finds it, verified


def test_no_compiler_and_nothing_cached(tmp_path, monkeypatch):
    kernel = cpu._library_path()
    monkeypatch.setattr(cpu, "_library_path", lambda: kernel)
    monkeypatch.setenv("SLAF_APPROX_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-slaf")
    with pytest.raises(RuntimeError, match=r"needs a C\+\+ compiler \(no-such-compiler-slaf\), which is not"):
        cpu_op._library_path()
