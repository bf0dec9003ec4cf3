"""The SLAF layer: every backend against the float64 reference, gradients, memory, determinism, compile.

CI runs this on the CPU (the Triton kernels under the interpreter). On a GPU machine,
SLAF_TEST_DEVICE=cuda runs the same backend checks on CUDA tensors (bench/gpu_check.sh).
"""

import os

DEVICE = os.environ.get("SLAF_TEST_DEVICE", "cpu")
if DEVICE == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")  # the Triton kernels run on CPU tensors in CI (no GPU)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from slaf_approx.fit import fit  # noqa: E402
from slaf_approx.kernels import available_backends, registry, slaf, slaf_reference  # noqa: E402
from slaf_approx.kernels.reference import basis_values  # noqa: E402
from slaf_approx.nn import SLAF  # noqa: E402

BASES = ("power", "chebyshev", "legendre", "hermite")
PROBE = torch.zeros(1, device=DEVICE)
BACKENDS = [b for b in ("reference", "fused", "triton") if b in available_backends(PROBE)]


def test_backends_are_all_there():
    # CI must exercise every kernel: the C kernel (gcc) and the Triton interpreter; CUDA: Triton
    want = ["reference", "fused", "triton"] if DEVICE == "cpu" else ["reference", "triton"]
    assert BACKENDS == want, available_backends(PROBE)


def _inputs(seed, shape, K, channels):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * 1.4  # [-1.4, 1.4]: beyond [-1, 1]
    x[x.abs() < 1e-3] += 0.25  # never test on (near) zeros
    cshape = (K,) if channels is None else (channels, K)
    coef = torch.randn(cshape, generator=g, dtype=torch.float64) / (1 + torch.arange(K, dtype=torch.float64))
    return x, coef


def _sizes(x, coef, basis, scale, shift):
    """sum_k |c_k phi_k(t)| and sum_k |c_k phi_k'(t)|: the scales of the rounding errors of a K-term
    recurrence (Clenshaw's error is ~K eps times the first; its derivative's, times both)."""
    t = (x.detach() * scale + shift).double().requires_grad_()
    K = coef.shape[-1]
    phi = basis_values(t, basis, K)
    dphi = [torch.autograd.grad(p.sum(), t, retain_graph=True)[0] if k else torch.zeros_like(t)
            for k, p in enumerate(phi)]
    c = coef.detach().double()
    shape = [1] * x.dim()
    if c.dim() == 2:
        shape[1] = c.shape[0]
    ck = [c[..., k].reshape(shape if c.dim() == 2 else []).abs() for k in range(K)]
    mag = sum(ck[k] * phi[k].detach().abs() for k in range(K))
    dmag = sum(ck[k] * dphi[k].abs() for k in range(K))
    return mag, dmag


def _check(name, got, want, tol, x):
    # a degree-0 SLAF does not depend on x: autograd leaves grad None, which means zero
    got = torch.zeros_like(x) if got is None else got
    want = torch.zeros(x.shape, dtype=torch.float64) if want is None else want
    err = (got.detach().cpu().double() - want).abs()
    ratio = err / tol
    i = int(torch.argmax(ratio.reshape(-1)))
    assert ratio.reshape(-1)[i] <= 1, (f"{name}: worst at x = {x.reshape(-1)[i].item():.6g}: got "
                                       f"{got.reshape(-1)[i].item()!r}, want {want.reshape(-1)[i].item()!r}, "
                                       f"tol {tol.reshape(-1)[i].item():.3g}")


CASES = [(b, d, ch) for b in BASES for d in (0, 1, 2, 5, 8, 16) for ch in (None, 3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("basis,degree,channels", CASES)
def test_backend_against_float64_reference(backend, basis, degree, channels):
    K = degree + 1
    shape = (4, 3, 5, 7) if channels else (3, 37)
    x64, c64 = _inputs(degree * 31 + len(basis), shape, K, channels)
    dtype = torch.float64 if backend == "fused" and degree % 2 else torch.float32
    eps = torch.finfo(dtype).eps
    scale, shift = 0.9, 0.05
    x = x64.to(DEVICE, dtype).requires_grad_()
    if channels:  # non-contiguous input for the per-channel cases
        x = x64.to(DEVICE, dtype).transpose(2, 3).contiguous().transpose(2, 3).detach().requires_grad_()
        assert not x.is_contiguous()
    c = c64.to(DEVICE, dtype).requires_grad_()
    xr, cr = x.detach().cpu().double().requires_grad_(), c.detach().cpu().double().requires_grad_()
    y = slaf(x, c, basis, scale, shift, backend=backend)
    yr = slaf_reference(xr, cr, basis, scale, shift)
    assert y.dtype == dtype and y.shape == x.shape
    # the reference runs on the same dtype-rounded inputs, so only evaluation rounding is left
    mag, dmag = _sizes(xr, cr, basis, scale, shift)
    _check(f"{backend} forward", y.detach(), yr.detach(), 4 * (K + 1) * eps * (mag + 1e-300), x)
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y.backward(g.to(DEVICE, dtype))
    yr.backward(g)
    # grad_x = g * scale * p'(t), by the differentiated recurrence: error ~ K eps (sum|c phi'| + K sum|c phi|)
    _check(f"{backend} grad_x", x.grad, xr.grad,
           4 * (K + 1) * eps * (g.abs() * scale * (dmag + K * mag) + 1e-300), x)
    # coefficient gradients: sums of n products |g phi_k|; rounding grows like (K + log2 n) eps
    t = (xr.detach() * scale + shift)
    phi = basis_values(t, basis, K)
    dims = [d for d in range(x.dim()) if not (channels and d == 1)]
    sizes = torch.stack([(g.abs() * p.abs()).sum(dims) for p in phi], -1)
    n = x.numel() / (channels or 1)
    _check(f"{backend} grad_coef", c.grad, cr.grad, 4 * (K + np.log2(n)) * eps * (sizes + 1e-300), c)


@pytest.mark.parametrize("backend", ["reference", "fused"])
@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("channels", [None, 2])
def test_gradcheck(backend, basis, channels):
    x, c = _inputs(7, (3, 2, 4) if channels else (11,), 5, channels)
    x.requires_grad_()
    c.requires_grad_()
    for clamp in (False, True):  # kinks of the clamp are at |t| = 1; random points avoid them
        assert torch.autograd.gradcheck(
            lambda x, c, clamp=clamp: slaf(x, c, basis, 1.1, 0.0, clamp, backend=backend),
            (x, c), eps=1e-6, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("channels", [None, 4])
def test_coefficient_gradients_are_bitwise_reproducible(backend, channels):
    x, c = _inputs(3, (8, 4, 33) if channels else (5000,), 9, channels)
    x, c = x.to(DEVICE).float(), c.to(DEVICE).float().requires_grad_()
    grads = []
    for _ in range(2):
        c.grad = None
        slaf(x, c, "chebyshev", backend=backend).sum().backward()
        grads.append(c.grad.clone())
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
def test_fused_backward_saves_only_x_and_the_coefficients(backend):
    x, c = _inputs(5, (64, 3, 16), 9, 3)
    x, c = x.to(DEVICE).float().requires_grad_(), c.to(DEVICE).float().requires_grad_()
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = slaf(x, c, "legendre", backend=backend)
    assert sum(saved) == x.numel() * 4 + c.numel() * 4, saved
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        slaf(x, c, "legendre", backend="reference")
    assert sum(saved) > 5 * x.numel() * 4  # autograd's polynomial keeps ~K intermediates alive
    y.sum().backward()


def test_torch_compile_fullgraph():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), SLAF(4, init="gelu", backend=BACKENDS[-1]),
                                torch.nn.Linear(8, 2)).to(DEVICE)
    x = torch.randn(16, 6, device=DEVICE)
    ref = model(x)
    compiled = torch.compile(model, fullgraph=True)  # inductor; a graph break would raise
    out = compiled(x)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert model[1].coefficients.grad is not None and torch.isfinite(model[1].coefficients.grad).all()


# --- the module ---------------------------------------------------------------------------------------

def test_identity_init_and_clamp():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    for basis in BASES:
        act = SLAF(5, basis, (-2.0, 3.0), dtype=torch.float64)
        torch.testing.assert_close(act(x), x, rtol=0, atol=64 * 1.1e-16 * 5)
        clamped = SLAF(5, basis, (-2.0, 3.0), out_of_range="clamp", dtype=torch.float64)
        torch.testing.assert_close(clamped(x), x.clamp(-2, 3), rtol=0, atol=1e-13)


def test_init_from_a_target_and_from_fit():
    act = SLAF(8, init="gelu", dtype=torch.float64)
    rec = fit("gelu", 8)
    x = torch.linspace(-3, 3, 1001, dtype=torch.float64)
    err = (act(x) - torch.nn.functional.gelu(x)).abs().max().item()
    assert abs(err - rec.max_error) <= 1e-3 * rec.max_error  # the grid just misses the exact sup
    same = SLAF.from_fit(rec, dtype=torch.float64)
    torch.testing.assert_close(same(x), act(x))
    assert same.polynomial().coef == tuple(rec.coefficients)


def test_per_channel_matches_separate_shared_layers():
    act = SLAF(4, "legendre", channels=3, dtype=torch.float64)
    with torch.no_grad():
        act.coefficients.copy_(torch.randn(3, 5, dtype=torch.float64))
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    y = act(x)
    for ch in range(3):
        one = SLAF(4, "legendre", init=act.coefficients[ch], dtype=torch.float64)
        torch.testing.assert_close(y[:, ch], one(x[:, ch]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_and_inf_propagate(backend):
    act = SLAF(3, "chebyshev", backend=backend).to(DEVICE)
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.5], device=DEVICE)
    with np.errstate(all="ignore"):  # the Triton interpreter computes with numpy, which warns on inf * 0
        y = act(x)
        clamped = SLAF(3, "chebyshev", out_of_range="clamp", backend=backend).to(DEVICE)(x)
    assert torch.isnan(y[0]) and not torch.isnan(y[3])
    assert torch.isnan(clamped[0]) and torch.isfinite(clamped[1:]).all()


def test_bad_input():
    with pytest.raises(ValueError, match="unknown basis 'fourier'"):
        SLAF(3, "fourier")
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        SLAF(3, backend="cuda")
    with pytest.raises(ValueError, match="init coefficients must have length degree \\+ 1 = 4"):
        SLAF(3, init=[1.0, 2.0])
    with pytest.raises(ValueError, match="unknown out_of_range"):
        SLAF(3, out_of_range="wrap")
    act = SLAF(3)
    with pytest.raises(TypeError, match="floating-point tensors, got torch.int64"):
        act(torch.arange(4))
    act.coefficients = torch.nn.Parameter(torch.zeros(6))
    with pytest.raises(ValueError, match=r"coefficients have shape \(6,\); .* needs \(4,\)"):
        act(torch.randn(3))
    act.coefficients = torch.nn.Parameter(torch.zeros(4, device="meta"))
    with pytest.raises(ValueError, match="coefficients are on meta but the input is on cpu"):
        act(torch.randn(3))
    with pytest.raises(ValueError, match="per-channel coefficients for 3 channels"):
        SLAF(3, channels=3)(torch.randn(2, 4))


def test_triton_without_cuda_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    registry.forget()  # the choice for (triton, cpu) was remembered with the interpreter on
    try:
        with pytest.raises(ValueError, match="backend 'triton' cannot run here: it needs a CUDA tensor"):
            SLAF(3, backend="triton")(torch.randn(4))
    finally:
        registry.forget()
    with pytest.raises(ValueError, match="backend 'fused' cannot run here: it takes float32, float64, got "
                                         "torch.bfloat16"):
        SLAF(3, backend="fused")(torch.randn(4).bfloat16())


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("needs", [(True, False), (False, True)])
def test_backward_computes_only_the_gradients_asked_for(backend, needs):
    x, c = _inputs(11, (3, 4, 5), 6, 4)
    dtype = torch.float32
    xa, ca = x.to(DEVICE, dtype).requires_grad_(needs[0]), c.to(DEVICE, dtype).requires_grad_(needs[1])
    xb, cb = x.clone().requires_grad_(needs[0]), c.clone().requires_grad_(needs[1])
    slaf(xa, ca, "legendre", 0.5, backend=backend).sum().backward()
    slaf_reference(xb, cb, "legendre", 0.5).sum().backward()
    for got, want in ((xa.grad, xb.grad), (ca.grad, cb.grad)):
        assert (got is None) == (want is None)
        if got is not None:  # float32 kernel against float64: sums of <= 60 terms of size <= ~10
            torch.testing.assert_close(got.cpu().double(), want, rtol=1e-5, atol=1e-5)
