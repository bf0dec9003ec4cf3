"""Overflow semantics, the same in every backend (the rule in slaf_approx/kernels/reference.py's docstring).

Far outside the interval the true y = p(t) and gx = gy scale p'(t) overflow; they must come out as the
infinity with the sign of the leading term (the limit |t| -> inf), never NaN. A NaN input stays NaN. Large
values that do not overflow must still agree with a float64 evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slaf_approx.kernels import available_backends, slaf
from slaf_approx.kernels.reference import BASIS_CODES, recurrence

SCALE = 1 / 3  # the SLAF default interval [-3, 3]
K = 9  # degree 8: (1e10 / 3)^8 overflows float32


def _backends(dtype: torch.dtype) -> list[str]:
    return available_backends(torch.empty(1, dtype=dtype))


def _expected(xs: np.ndarray, gys: np.ndarray, coef: np.ndarray, basis: str, dtype: torch.dtype):
    """The rule, written out: y and gx where t = SCALE * x overflows (computed in float64, then rounded
    to the dtype), NaN where x is NaN."""
    A, _ = recurrence(basis, K)
    m = max(k for k in range(K) if coef[k] != 0)
    lead = coef[m] * np.prod(A[:m])
    y, gx = [], []
    for x, gy in zip(xs, gys, strict=True):
        if math.isnan(x):
            y.append(math.nan)
            gx.append(math.nan)
            continue
        st = -1.0 if x < 0 else 1.0
        y.append(math.copysign(math.inf, lead * st**m))
        gx.append(0.0 if gy == 0 else math.copysign(math.inf, SCALE * gy * lead * st ** (m - 1)))
    return torch.tensor(y, dtype=dtype), torch.tensor(gx, dtype=dtype)


def _run(backend, x, coef, basis, clamp=False, gy=None):
    x = x.clone().requires_grad_(True)
    c = coef.clone().requires_grad_(True)
    # the Triton interpreter runs on numpy, which warns at inf - inf and 0 * inf (the cases tested here)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        y = slaf(x, c, basis, SCALE, 0.0, clamp, -1.0, 1.0, backend=backend)
        y.backward(gy if gy is not None else torch.ones_like(y))
    return y.detach(), x.grad, c.grad


def _assert_same(name, got, want, x):
    same = (got == want) | (torch.isnan(got) & torch.isnan(want))
    if not bool(same.all()):
        bad = (~same).nonzero().flatten().tolist()
        raise AssertionError(f"{name}: at x = {[x[i].item() for i in bad]} got {[got[i].item() for i in bad]}"
                             f", expected {[want[i].item() for i in bad]}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_overflow_is_signed_infinity(basis, dtype):
    big = 1e10 if dtype == torch.float32 else 1e300
    vals = [big, -big, math.inf, -math.inf, math.nan, 3 * big, -7 * big]
    xs = torch.tensor(vals * 40, dtype=dtype)  # 280 elements: vector bodies and tails
    g = torch.Generator().manual_seed(5)
    gy = torch.randn(xs.shape, generator=g, dtype=torch.float64).to(dtype)
    gy[5] = 0.0  # gy = 0 at an overflowing point: gx = 0
    for seed in range(3):
        coef = torch.randn(K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        if seed == 2:
            coef[K - 1] = 0.0  # the leading term is the highest nonzero one
        coef = coef.to(dtype)
        y_exp, gx_exp = _expected(xs.double().numpy(), gy.double().numpy(), coef.double().numpy(), basis,
                                  dtype)
        for backend in _backends(dtype):
            y, gx, _ = _run(backend, xs, coef, basis, gy=gy)
            tag = f"{backend} {basis} {dtype} seed={seed}"
            _assert_same(f"y {tag}", y, y_exp, xs)
            _assert_same(f"gx {tag}", gx, gx_exp, xs)


@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_overflow_per_channel_and_clamped(basis):
    """Per-channel coefficients of both signs; with clamping nothing overflows and gx is 0 outside."""
    dtype = torch.float32
    coef = torch.tensor([[0.3, -1.0, 0.5, 0.2, -0.1, 0.7, 0.2, 0.1, 0.05],
                         [0.2, 0.1, -0.4, 0.3, 0.0, 0.1, -0.2, -0.6, 0.0]], dtype=dtype)
    x = torch.tensor([1e10, -1e10, math.inf, -math.inf, math.nan, 0.5] * 6, dtype=dtype).reshape(3, 2, 6)
    for backend in _backends(dtype):
        y, gx, _ = _run(backend, x, coef, basis)
        for c in range(2):
            xc = x[:, c].reshape(-1)
            y_exp, gx_exp = _expected(xc.double().numpy(), np.ones(18), coef[c].double().numpy(), basis,
                                      dtype)
            far = xc.abs() != 0.5  # the overflowing points and the NaN
            _assert_same(f"y {backend} {basis} channel {c}", y[:, c].reshape(-1)[far], y_exp[far], xc[far])
            _assert_same(f"gx {backend} {basis} channel {c}", gx[:, c].reshape(-1)[far], gx_exp[far], xc[far])
        yc, gxc, _ = _run(backend, x, coef, basis, clamp=True)
        nan = torch.isnan(x)
        assert torch.isfinite(yc[~nan]).all() and torch.isnan(yc[nan]).all(), backend
        outside = ~nan & (x.abs() > 3)
        assert (gxc[outside] == 0).all(), backend


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_large_finite_values_match_float64(basis, dtype):
    """Far outside the interval but without overflow: y and gx agree with a float64 evaluation of the same
    series to a relative K * 8 eps (the leading term dominates, so there is no cancellation to amplify)."""
    g = torch.Generator().manual_seed(9)
    top = 1e4 if dtype == torch.float32 else 1e30
    mag = torch.logspace(2, math.log10(top), 64, dtype=torch.float64)  # |t| >= 33: past every root
    x64 = torch.cat([mag, -mag])
    x = x64.to(dtype)
    coef = torch.rand(K, generator=g, dtype=torch.float64).to(dtype) + 0.5  # positive: no cancellation
    gy = torch.ones_like(x)
    eps = torch.finfo(dtype).eps
    for backend in _backends(dtype):
        y, gx, _ = _run(backend, x, coef, basis, gy=gy)
        y_ref, gx_ref, _ = _run("reference", x.double(), coef.double(), basis, gy=gy.double())
        for name, got, want in (("y", y, y_ref), ("gx", gx, gx_ref)):
            assert torch.isfinite(want).all()
            rel = ((got.double() - want).abs() / want.abs())
            worst = int(rel.argmax())
            assert rel.max() <= 8 * K * eps, (f"{name} {backend} {basis} {dtype}: relative error "
                                              f"{rel.max().item():.3g} at x = {x[worst].item()}: got "
                                              f"{got[worst].item()}, float64 {want[worst].item()}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_reference_backend_layout_obeys_the_rule(basis, dtype):
    """The reference's registry entry (the kernels' [rows, S] layout, used by the registry's callers) gives
    the same signed infinities as the op, and float64 gradients of its finite part pass gradcheck."""
    from slaf_approx.kernels import REGISTRY

    be = REGISTRY["reference"]
    A, B = (torch.tensor(v, dtype=dtype) for v in recurrence(basis, K))
    big = 1e10 if dtype == torch.float32 else 1e300
    xs = torch.tensor([big, -big, math.inf, -math.inf, math.nan, 3 * big, -7 * big] * 6, dtype=dtype)
    g = torch.Generator().manual_seed(9)
    gy = torch.randn(xs.shape, generator=g, dtype=torch.float64).to(dtype)
    coef = torch.randn(K, generator=g, dtype=torch.float64).to(dtype)
    y_exp, gx_exp = _expected(xs.double().numpy(), gy.double().numpy(), coef.double().numpy(), basis, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        y = be.forward(xs.view(1, -1), coef.view(1, -1), A, B, SCALE, 0.0, False, -1.0, 1.0)
        gx, gc = be.backward(xs.view(1, -1), gy.view(1, -1), coef.view(1, -1), A, B, SCALE, 0.0, False, -1.0,
                             1.0, True, True)
    _assert_same(f"y reference layout {basis} {dtype}", y.view(-1), y_exp, xs)
    _assert_same(f"gx reference layout {basis} {dtype}", gx.view(-1), gx_exp, xs)
    assert gc.dtype == torch.float64 and gc.shape == (1, K)
    if dtype == torch.float64:  # random finite inputs: [rows, S] with two coefficient rows
        x2 = torch.randn(4, 5, generator=g, dtype=dtype).requires_grad_()
        c2 = torch.randn(2, K, generator=g, dtype=dtype).requires_grad_()

        def f(x, c):
            return be.forward(x, c, A, B, SCALE, 0.1, False, -1.0, 1.0)

        assert torch.autograd.gradcheck(f, (x2, c2))
        assert torch.autograd.gradgradcheck(f, (x2, c2))
