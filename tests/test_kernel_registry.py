"""The backend registry and the op's plumbing: one signature for every backend, availability with reasons,
the fallback warning, double backward through every backend, torch.compile from a cold kernel cache."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # the Triton kernels run on CPU tensors in CI (no GPU)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from slaf_approx import kernels  # noqa: E402
from slaf_approx.kernels import cpu, registry  # noqa: E402
from slaf_approx.kernels.reference import BASIS_CODES, recurrence, slaf_reference  # noqa: E402

CPU_BACKENDS = kernels.available_backends(torch.zeros(1))
KERNELS = [b for b in CPU_BACKENDS if b != "reference"]


@pytest.fixture
def fresh_choices():
    """Forget the remembered backend choices and warnings before and after the test."""
    registry.forget()
    yield
    registry.forget()


def test_registry_declares_every_backend():
    assert kernels.BACKENDS == ("reference", "fused", "triton", "auto")
    assert CPU_BACKENDS == ["reference", "fused", "triton"]  # CI must exercise every kernel
    for b in registry.REGISTRY.values():
        assert callable(b.forward) and callable(b.backward)
        assert b.unavailable_reason("cpu", torch.float64 if b.name != "triton" else torch.float32) is None


def _layout_case(basis, K, C, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(3 * C, 29, generator=g, dtype=torch.float64) * 2.8 - 1.4).to(dtype)
    gy = torch.randn(3 * C, 29, generator=g, dtype=torch.float64).to(dtype)
    coef = torch.randn(C, K, generator=g, dtype=torch.float64)
    A, B = (torch.tensor(v) for v in recurrence(basis, K))
    return x, gy, coef, A, B


@pytest.mark.parametrize("name", list(registry.REGISTRY))
@pytest.mark.parametrize("basis", list(BASIS_CODES))
def test_one_signature_and_gradient_convention(name, basis):
    """forward / backward with the common signature, gcoef in float64 on every backend, each output against
    the float64 reference (tolerance: K roundings of the compute dtype on sums of |terms| <= ~K * 2)."""
    b = registry.REGISTRY[name]
    dtype = torch.float32
    ct = b.compute(dtype)
    K, C = 7, 2
    x, gy, coef, A, B = _layout_case(basis, K, C, dtype, seed=len(basis))
    args = (coef.to(ct), A.to(ct), B.to(ct), 0.8, 0.1, True, -1.0, 1.0)
    y = b.forward(x, *args)
    gx, gc = b.backward(x, gy, *args, True, True)
    gx_only, none = b.backward(x, gy, *args, True, False)
    none2, gc_only = b.backward(x, gy, *args, False, True)
    assert none is None and none2 is None
    assert y.dtype == dtype and gx.dtype == dtype and gc.dtype == torch.float64 and gc.shape == (C, K)
    torch.testing.assert_close(gx_only, gx, rtol=0, atol=0)
    torch.testing.assert_close(gc_only, gc, rtol=0, atol=0)
    xr = x.double().reshape(3, C, 29).requires_grad_()
    cr = coef.to(ct).double().requires_grad_()
    yr = slaf_reference(xr, cr, basis, 0.8, 0.1, True, -1.0, 1.0)
    yr.backward(gy.double().reshape(3, C, 29))
    tol = 64 * K * torch.finfo(dtype).eps * (1 + 2.0**K)  # |phi_k| <= 2^k (Hermite at t = 1: 1 + k)
    torch.testing.assert_close(y.double(), yr.detach().reshape(x.shape), rtol=0, atol=tol)
    torch.testing.assert_close(gx.double(), xr.grad.reshape(x.shape), rtol=0, atol=K * tol)
    torch.testing.assert_close(gc, cr.grad, rtol=0, atol=29 * 3 * tol)


def test_fused_unavailable_is_a_value_error_with_the_reason(monkeypatch, fresh_choices):
    monkeypatch.setattr(cpu, "_lib", None)
    monkeypatch.setattr(cpu, "_error", "the SLAF CPU kernel needs gcc, which is not on PATH (simulated)")
    x, c = torch.randn(5), torch.randn(4)
    with pytest.raises(ValueError, match=r"backend 'fused' cannot run here: .*needs gcc.*\(simulated\)"):
        kernels.slaf(x, c, backend="fused")
    with pytest.warns(kernels.SlafBackendWarning, match=r"'reference' instead of 'fused'.*needs gcc"):
        y = kernels.slaf(x, c, backend="auto")
    torch.testing.assert_close(y, slaf_reference(x, c, "chebyshev"), rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per reason: a second call (another dtype too) is silent
        kernels.slaf(x, c, backend="auto")
        kernels.slaf(x.double(), c.double(), backend="auto")
    assert kernels.available_backends(x) == ["reference", "triton"]


def test_auto_falls_back_quietly_where_no_kernel_is_meant_to_run(fresh_choices):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.resolve_backend("auto", torch.zeros(2, dtype=torch.bfloat16)) == "reference"
        assert kernels.resolve_backend("auto", torch.zeros(2, device="meta")) == "reference"
    with pytest.raises(ValueError, match="unknown backend 'gpu'; allowed: reference, fused, triton, auto"):
        kernels.resolve_backend("gpu", torch.zeros(2))


# --- double backward through every backend -------------------------------------------------------------

def _inputs(seed, channels, dtype):
    g = torch.Generator().manual_seed(seed)
    shape = (2, channels, 3) if channels else (7,)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 1.6 - 0.8  # kinks of the clamp at |t| = 1
    x[x.abs() < 0.05] += 0.3
    c = torch.randn((channels, 5) if channels else (5,), generator=g, dtype=torch.float64)
    return x.to(dtype).requires_grad_(), c.to(dtype).requires_grad_()


# Triton computes in float32, so its checks run in float32: central differences with step h err by
# ~h^2 |p'''| / 6 + u |p| / h; h = 2^-7 and |p'''|, |p| <= ~100 here give ~3e-4 + 5e-4.
TOL = {torch.float64: dict(eps=1e-6, atol=1e-7, rtol=1e-6),
       torch.float32: dict(eps=2**-7, atol=3e-3, rtol=3e-3)}


@pytest.mark.filterwarnings("ignore:Input #.* is not a double precision:UserWarning")  # Triton: float32
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("basis", list(BASIS_CODES))
@pytest.mark.parametrize("channels", [None, 2])
@pytest.mark.parametrize("clamp", [False, True])
def test_gradcheck_and_gradgradcheck(backend, basis, channels, clamp):
    dtype = torch.float32 if backend == "triton" else torch.float64
    x, c = _inputs(len(basis) + 3 * bool(channels), channels, dtype)
    kw = TOL[dtype]

    def f(x, c):
        return kernels.slaf(x, c, basis, 1.1, 0.05, clamp, backend=backend)

    assert torch.autograd.gradcheck(f, (x, c), **kw)
    assert torch.autograd.gradgradcheck(f, (x, c), **kw)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_grad_with_create_graph_then_backward(backend):
    """The usual double-backward idiom (a gradient penalty) gives the reference's second derivatives."""
    x, c = _inputs(5, 3, torch.float32)
    xr, cr = (t.detach().double().requires_grad_() for t in (x, c))
    for xs, cs, bk in ((x, c, backend), (xr, cr, "reference")):
        y = kernels.slaf(xs, cs, "legendre", 0.9, 0.0, backend=bk)
        (gx,) = torch.autograd.grad(y.sum(), xs, create_graph=True)
        (gx**2).sum().backward()
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(c.grad.double(), cr.grad, rtol=1e-4, atol=1e-4)


# --- torch.compile on the first call, from an empty kernel cache -------------------------------------------

COLD_COMPILE = textwrap.dedent("""
    import json, os, sys
    import torch
    from slaf_approx.nn import SLAF
    cache = os.environ["SLAF_APPROX_CACHE"]
    assert not os.listdir(cache)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), SLAF(4, init="gelu", channels=8),
                                torch.nn.Linear(8, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 8), SLAF(4, init="gelu", channels=8, backend="reference"),
                               torch.nn.Linear(8, 2))
    twin.load_state_dict(model.state_dict())
    x = torch.randn(16, 6)
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)  # the first call of anything SLAF in this process
    out.square().sum().backward()
    ref = twin(x)
    ref.square().sum().backward()
    err = {"out": (out - ref).abs().max().item()}
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        err[name] = (p.grad - q.grad).abs().max().item()
    built = [f for f in os.listdir(cache) if f.endswith(".so")]
    print(json.dumps({"err": err, "built": built}))
""")


def test_torch_compile_first_call_with_an_empty_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "SLAF_APPROX_CACHE": str(cache), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind")}
    res = subprocess.run([sys.executable, "-c", COLD_COMPILE], capture_output=True, text=True, env=env,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(got["built"]) == 1, got  # the fused kernel, built during the compiled call
    # float32 through two linear layers and a degree-4 polynomial: a few ulps of values of size ~10
    bad = {k: v for k, v in got["err"].items() if not v <= 1e-4}
    assert not bad, got["err"]
