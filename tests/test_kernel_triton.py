"""The Triton SLAF kernels against the float64 plain-torch reference, under the Triton interpreter.

TRITON_INTERPRET=1 must be in the environment before `triton.jit` runs (that is, before the kernel module
is imported): it makes every @triton.jit function an interpreted one that runs on CPU tensors with numpy,
so these tests need no GPU. It is set here with setdefault, ahead of every other import; if the kernel
module was already imported without it (by an earlier test module), it is reloaded below.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("these tests run the kernels on CPU tensors and need TRITON_INTERPRET=1",
                allow_module_level=True)

from slaf_approx.kernels import triton_kernels as tk  # noqa: E402
from slaf_approx.kernels.reference import recurrence, slaf_reference  # noqa: E402

if type(tk._slaf_fwd_kernel).__name__ != "InterpretedFunction":  # imported earlier, without the interpreter
    tk = importlib.reload(tk)

BASES = ("power", "chebyshev", "legendre", "hermite")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
EPS32 = 2.0**-23  # float32 machine epsilon: the kernels compute in float32
C0 = 2.0  # the constant in the rounding-error bounds below (see _bounds)

# x in [-3, 5] maps onto t in [-1, 1] with dyadic scale and shift, so t = scale * x + shift is exact in
# float32 near the clamp bounds and the kernel and the reference agree on which points are clamped.
LO, HI = -3.0, 5.0
SCALE, SHIFT = 2.0 / (HI - LO), -(HI + LO) / (HI - LO)

# layouts: name -> (N, C, S); None for N means shared coefficients (coef [K], x of S elements, rows = 1)
LAYOUTS = {
    "shared": (None, 1, 300),          # one row, two tiles of the interpreter's 256, a masked tail
    "shared_even": (None, 1, 512),     # tiles divide the row: the unmasked (EVEN) kernels
    "per_row": (2, 3, 50),             # per-channel, several rows per tile, masked
    "per_row_long": (2, 3, 600),       # per-channel, long rows: three tiles per row, masked tail
    "per_column": (16, 5, 3),          # small S: the [N, C * S] layout, partials summed down the tile
    "per_column_tiles": (200, 3, 1),   # x of shape [N, C]: several row tiles of that layout
}


def _ab(basis, K):
    A, B = recurrence(basis, K)
    return torch.tensor(A, dtype=torch.float32), torch.tensor(B, dtype=torch.float32)


def _coef(basis, K, C, gen):
    """Random coefficients, coef_k scaled by 1 / max |phi_k| over t in [-1.5, 1.5] so that every term
    is O(1) for every basis (Hermite's He_16 reaches 2e6 there) and y stays inside float16's range."""
    t = torch.linspace(-1.5, 1.5, 301, dtype=torch.float64)
    A, B = recurrence(basis, K)
    phi = [torch.ones_like(t)]
    for k in range(K - 1):
        phi.append(A[k] * t * phi[k] - (B[k] * phi[k - 1] if k else 0.0))
    w = torch.stack([1.0 / p.abs().max() for p in phi]).float()
    return torch.randn(C, K, generator=gen) * w


def _inputs(layout, K, basis, dtype, seed=0):
    """x covering [LO, HI] and a quarter of its width beyond each side (t in [-1.5, 1.5]), never zero;
    gy never zero; float32 coefficients. Returns x and gy in `dtype`, in their caller-facing shape."""
    N, C, S = LAYOUTS[layout]
    gen = torch.Generator().manual_seed(seed)
    shape = (S,) if N is None else (N, C, S)
    w = HI - LO
    x = torch.rand(shape, generator=gen, dtype=torch.float64) * 1.5 * w + (LO - 0.25 * w)
    x = torch.where(x == 0, 0.125, x).to(dtype)
    gy = (torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5)
    gy = (gy * torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)).to(dtype)
    coef = _coef(basis, K, C, gen)
    return x, gy, (coef[0] if N is None else coef)


def _as2d(x, C):
    """The kernels' [rows, S] view: rows = N * C for x of shape [N, C, S], one row for shared coef."""
    return x.reshape(1, -1) if x.dim() == 1 else x.reshape(x.shape[0] * C, -1)


def _reference(x, gy, coef, basis, clamp):
    """float64 y, gx, gcoef of slaf_reference by autograd, from the same (rounded) x, gy and coef."""
    x64 = x.double().requires_grad_()
    c64 = coef.double().requires_grad_()
    y = slaf_reference(x64, c64, basis, SCALE, SHIFT, clamp, -1.0, 1.0)
    y.backward(gy.double())
    gx = torch.zeros_like(x64) if x64.grad is None else x64.grad  # degree 0: y does not depend on x
    return y.detach(), gx, c64.grad


def _bounds(x, coef, basis, clamp):
    """Per-element float64 scales for the float32 rounding errors of the kernels.

    With local rounding errors of relative size eps32 at every step of a three-term recurrence (forward
    for phi_k, Clenshaw backward for y and p'), the error an early step leaves in the result is carried
    by the recurrence's own solutions, which for these bases stay within about (k + 1) max_(j <= k)
    |phi_j(t)| (Chebyshev on [-1, 1]: |U_k| <= k + 1). Summing over the K steps:

        |y - p(t)|   <= C0 eps32 (K s0 + |t| s1),    s0 = sum_k |coef_k| (k + 1) max_(j<=k) |phi_j(t)|
        |p' - p'(t)| <= C0 eps32 (K s1 + |t| s2),    s1 = same with phi_j', s2 = sum_k |coef_k| |phi_k''|

    The |t| terms are the rounding of t = scale * x + shift itself (|t| here is |scale x| + |shift|),
    times the slope of what is evaluated. Power basis (Horner) and |t| > 1 are covered by the same form:
    there max_(j<=k) |phi_j| is |t|^k. Returns t_mag, |gy|-free scales for y, p', and per-k scales
    for phi_k, plus phi_k(t) itself, all float64 numpy arrays over the flattened elements.
    """
    K = coef.shape[-1]
    A, B = recurrence(basis, K)
    xs = x.double().numpy().reshape(-1)
    t = SCALE * xs + SHIFT
    if clamp:
        t = np.clip(t, -1.0, 1.0)
    tmag = np.abs(SCALE * xs) + abs(SHIFT)
    n = t.size
    ph, d1, d2 = np.zeros((K, n)), np.zeros((K, n)), np.zeros((K, n))
    ph[0] = 1.0
    for k in range(K - 1):
        prev = (ph[k - 1], d1[k - 1], d2[k - 1]) if k else (0.0, 0.0, 0.0)
        ph[k + 1] = A[k] * t * ph[k] - B[k] * prev[0]
        d1[k + 1] = A[k] * ph[k] + A[k] * t * d1[k] - B[k] * prev[1]
        d2[k + 1] = 2 * A[k] * d1[k] + A[k] * t * d2[k] - B[k] * prev[2]
    c = coef.double().numpy()
    ce = np.abs(np.broadcast_to(c, (n, K)) if c.ndim == 1 else _channel_coef(c, x.shape)).T  # [K, n]
    kk = np.arange(1, K + 1)[:, None]
    m0 = np.maximum.accumulate(np.abs(ph), axis=0)
    m1 = np.maximum.accumulate(np.abs(d1), axis=0)
    s0, s1, s2 = (ce * kk * m0).sum(0), (ce * kk * m1).sum(0), (ce * np.abs(d2)).sum(0)
    tol_y = C0 * EPS32 * (K * s0 + tmag * s1)
    tol_dp = C0 * EPS32 * (K * s1 + tmag * s2)
    tol_phi = C0 * EPS32 * (kk**2 * m0 + tmag * np.abs(d1))  # [K, n]
    return t, tol_y, tol_dp, tol_phi, ph


def _channel_coef(c, shape):
    """[n, K]: the coefficient row of every element of x of shape [N, C, S]."""
    N, C, S = shape
    return np.broadcast_to(c[None, :, None, :], (N, C, S, c.shape[1])).reshape(-1, c.shape[1])


def _out_round(dtype):
    """(relative, absolute) rounding of a float32 result stored in dtype: 1 ulp of |value| (relative
    eps of the dtype) and, for values in the subnormal range, the smallest subnormal. One ulp, not the
    half ulp of round-to-nearest: the interpreter converts float32 to bfloat16 by truncation (the GPU
    rounds to nearest), and the errors seen here reach 0.98 ulp in bfloat16, 0.49 in float16."""
    fi = torch.finfo(dtype)
    return fi.eps, fi.smallest_normal * fi.eps


def _report(name, got, ref, tol, extra):
    """Assert |got - ref| <= tol elementwise (NaN-aware); on failure show the worst points."""
    got, ref, tol = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (got, ref, tol))
    err = np.abs(got - ref)
    bad = ~(err <= tol)
    if bad.any():
        ratio = np.where(np.isnan(err), np.inf, err / tol)
        worst = np.argsort(-ratio)[:6]
        lines = [f"{name}: {bad.sum()} of {err.size} points outside tolerance; worst:"]
        for i in worst:
            cols = ", ".join(f"{k}={float(v[i]):.6g}" for k, v in extra.items() if np.size(v) == err.size)
            lines.append(f" [{i}] got={got[i]:.9g} ref={ref[i]:.9g} err={err[i]:.3g} tol={tol[i]:.3g} {cols}")
        pytest.fail("\n".join(lines))
    return float(np.max(err / tol)) if err.size else 0.0


def _check(layout, basis, degree, clamp, dtype_name):
    dtype = DTYPES[dtype_name]
    K = degree + 1
    x, gy, coef = _inputs(layout, K, basis, dtype, seed=degree * 31 + len(basis))
    C = 1 if coef.dim() == 1 else coef.shape[0]
    A, B = _ab(basis, K)
    coef2d = coef.reshape(C, K).contiguous()
    x2d, gy2d = _as2d(x, C), _as2d(gy, C)

    y = tk.forward(x2d, coef2d, A, B, SCALE, SHIFT, clamp, -1.0, 1.0)
    gx, gcoef = tk.backward(x2d, gy2d, coef2d, A, B, SCALE, SHIFT, clamp, -1.0, 1.0)
    assert y.dtype == dtype and y.shape == x2d.shape
    assert gx.dtype == dtype and gx.shape == x2d.shape
    assert gcoef.dtype == torch.float64 and gcoef.shape == (C, K)  # the registry's convention

    y_ref, gx_ref, gc_ref = _reference(x, gy, coef, basis, clamp)
    t, tol_y, tol_dp, tol_phi, ph = _bounds(x, coef, basis, clamp)
    rel, tiny = _out_round(dtype)
    y_ref = y_ref.numpy().reshape(-1)
    extra = {"x": x.double().numpy().reshape(-1), "t": t}
    _report(f"y {dtype_name}", y.double().numpy(), y_ref, tol_y + rel * (np.abs(y_ref) + tol_y) + tiny, extra)

    g = np.abs(gy.double().numpy().reshape(-1))
    gx_ref = gx_ref.numpy().reshape(-1)
    tol_gx = g * abs(SCALE) * tol_dp + 2 * EPS32 * np.abs(gx_ref)  # + the two float32 products
    _report(f"gx {dtype_name}", gx.double().numpy(), gx_ref, tol_gx + rel * (np.abs(gx_ref) + tol_gx) + tiny,
            extra)

    # gcoef[c, k] = sum over channel c of gy phi_k(t): the phi_k errors times |gy|, plus the float32
    # summation error (pairwise / tree sums: about log2(n) + 16 roundings of the sum of |terms|)
    chan = np.zeros(t.size, dtype=int) if C == 1 else np.indices(x.shape)[1].reshape(-1)
    tol_gc = np.zeros((C, K))
    for c in range(C):
        sel = chan == c
        n = sel.sum()
        tol_gc[c] = (g[sel] * tol_phi[:, sel]).sum(1) + (math.log2(n) + 16) * EPS32 * (g[sel] * np.abs(
            ph[:, sel])).sum(1)
    _report(f"gcoef {dtype_name}", gcoef.double().numpy(), gc_ref.reshape(C, K).numpy(), tol_gc, {})


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("degree", [0, 1, 2, 5, 8, 16])
@pytest.mark.parametrize("layout", ["shared", "per_row", "per_column"])
@pytest.mark.parametrize("clamp", [False, True])
def test_float32(layout, basis, degree, clamp):
    _check(layout, basis, degree, clamp, "float32")


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("degree", [1, 5, 16])
@pytest.mark.parametrize("layout", ["shared", "per_row", "per_column"])
@pytest.mark.parametrize("clamp", [False, True])
def test_half_precision(layout, basis, degree, clamp, dtype_name):
    _check(layout, basis, degree, clamp, dtype_name)


@pytest.mark.parametrize("layout", ["shared_even", "per_column_tiles", "per_row_long"])
@pytest.mark.parametrize("basis", ["chebyshev", "hermite"])
@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_other_tilings(layout, basis, dtype_name):
    _check(layout, basis, 7, True, dtype_name)
    _check(layout, basis, 7, False, dtype_name)


def test_degree_64():
    """K = 65, the largest supported: still within the bounds (power and Legendre, shared and per row)."""
    _check("shared", "power", 64, False, "float32")
    _check("per_row", "legendre", 64, True, "float32")


def test_plans_cover_both_layouts():
    """The layouts above really exercise both tilings, masked and unmasked."""
    def plan(layout):
        N, C, S = LAYOUTS[layout]
        return tk._plan(1 if N is None else N * C, S, C, tk.INTERP_TILE, cuda=False)

    assert plan("shared")["per_row"] and not plan("shared")["even"] and plan("shared")["grid"] == (2,)
    assert plan("shared_even")["per_row"] and plan("shared_even")["even"]
    assert plan("per_row")["per_row"] and plan("per_row")["BR"] > 1
    p = plan("per_row_long")
    assert p["per_row"] and p["BR"] == 1 and p["grid"] == (6 * 3,) and not p["even"]
    assert not plan("per_column")["per_row"]
    p = plan("per_column_tiles")
    assert not p["per_row"] and p["grid"][0] > 1 and p["NR"] == 200


def test_need_gx_false_and_determinism():
    x, gy, coef = _inputs("per_row", 9, "chebyshev", torch.float32, seed=5)
    A, B = _ab("chebyshev", 9)
    args = (coef, A, B, SCALE, SHIFT, True, -1.0, 1.0)
    gx1, gc1 = tk.backward(_as2d(x, 3), _as2d(gy, 3), *args)
    gx2, gc2 = tk.backward(_as2d(x, 3), _as2d(gy, 3), *args)
    gx3, gc3 = tk.backward(_as2d(x, 3), _as2d(gy, 3), *args, need_gx=False)
    gx4, gc4 = tk.backward(_as2d(x, 3), _as2d(gy, 3), *args, need_gcoef=False)
    assert torch.equal(gc1, gc2) and torch.equal(gx1, gx2)  # bitwise, run to run
    assert gx3 is None and torch.equal(gc1, gc3)
    assert gc4 is None and torch.equal(gx1, gx4)


@pytest.mark.parametrize("clamp", [False, True])
def test_nan_propagates(clamp):
    K = 6
    x, gy, coef = _inputs("per_row", K, "legendre", torch.float32, seed=3)
    x[1, 2, 7] = float("nan")  # channel 2
    A, B = _ab("legendre", K)
    x2d, gy2d = _as2d(x, 3), _as2d(gy, 3)
    y = tk.forward(x2d, coef, A, B, SCALE, SHIFT, clamp, -1.0, 1.0).view_as(x)
    gx, gc = tk.backward(x2d, gy2d, coef, A, B, SCALE, SHIFT, clamp, -1.0, 1.0)
    gx = gx.view_as(x)
    nan = torch.isnan(x)
    assert torch.isnan(y[nan]).all() and torch.isfinite(y[~nan]).all()
    assert torch.isnan(gx[nan]).all() and torch.isfinite(gx[~nan]).all()  # NaN t gives NaN gx, also clamped
    assert torch.isnan(gc[2, 1:]).all() and torch.isfinite(gc[2, 0])  # phi_0 = 1 does not see x
    assert torch.isfinite(gc[:2]).all()


def test_infinities():
    K = 4
    x, gy, coef = _inputs("shared", K, "chebyshev", torch.float32, seed=4)
    x[:2] = torch.tensor([float("inf"), float("-inf")])
    A, B = _ab("chebyshev", K)
    x2d, gy2d, c2d = _as2d(x, 1), _as2d(gy, 1), coef.view(1, K)
    # clamped: +-inf lands on thi / tlo, with zero slope there
    y = tk.forward(x2d, c2d, A, B, SCALE, SHIFT, True, -1.0, 1.0)[0]
    gx, _ = tk.backward(x2d, gy2d, c2d, A, B, SCALE, SHIFT, True, -1.0, 1.0)
    ends = torch.tensor([1.0, -1.0], dtype=torch.float64)
    expected = slaf_reference(ends, coef.double(), "chebyshev")
    torch.testing.assert_close(y[:2].double(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(gx[0, :2], torch.zeros(2)) and torch.isfinite(gx).all()
    # unclamped: a cubic at +-inf is not finite (inf or NaN, like the reference), the rest is untouched
    with np.errstate(all="ignore"):
        y = tk.forward(x2d, c2d, A, B, SCALE, SHIFT, False, -1.0, 1.0)[0]
    assert not torch.isfinite(y[:2]).any() and torch.isfinite(y[2:]).all()


def test_empty():
    A, B = _ab("power", 3)
    coef = torch.randn(2, 3)
    x = torch.empty(4, 0)
    assert tk.forward(x, coef, A, B, 1.0, 0.0, False, -1.0, 1.0).shape == (4, 0)
    gx, gc = tk.backward(x, x, coef, A, B, 1.0, 0.0, False, -1.0, 1.0)
    assert gx.shape == (4, 0) and torch.equal(gc, torch.zeros(2, 3, dtype=torch.float64))


def test_available():
    assert tk.available() and tk.unavailable_reason("cpu") is None
    assert "CUDA" in tk.unavailable_reason("meta")


def _bad_calls():
    A, B = _ab("power", 3)
    x, coef = torch.rand(6, 5), torch.randn(3, 3)
    ok = dict(x2d=x, coef=coef, A=A, B=B, scale=1.0, shift=0.0, clamp=False, tlo=-1.0, thi=1.0)
    return ok, [
        (dict(x2d=x.double()), TypeError, "float64"),
        (dict(x2d=x.t()), ValueError, "2-D|contiguous|rows"),
        (dict(x2d=torch.rand(6, 10)[:, ::2]), ValueError, "contiguous"),
        (dict(x2d=x.view(30)), ValueError, "2-D"),
        (dict(x2d=torch.rand(6, 5, device="meta")), ValueError, "meta"),
        (dict(x2d=x[:5]), ValueError, "multiple"),
        (dict(coef=coef.double()), TypeError, "coef"),
        (dict(coef=coef[0]), ValueError, "2-D"),
        (dict(coef=torch.randn(3, 0), A=A[:0], B=B[:0]), ValueError, "K = 0"),
        (dict(coef=torch.randn(3, 66), A=torch.ones(66), B=torch.zeros(66)), ValueError, "K = 66"),
        (dict(A=A[:2]), ValueError, "A must have shape"),
        (dict(B=B.double()), TypeError, "B has dtype"),
        (dict(scale=float("nan")), ValueError, "scale"),
        (dict(shift="0"), TypeError, "shift"),
        (dict(clamp=1), TypeError, "clamp"),
        (dict(clamp=True, tlo=1.0, thi=-1.0), ValueError, "tlo <= thi"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls()[1])))
def test_bad_inputs(case):
    ok, cases = _bad_calls()
    change, err, match = cases[case]
    with pytest.raises(err, match=match):
        tk.forward(**{**ok, **change})


def test_bad_gy():
    A, B = _ab("power", 3)
    x, coef = torch.rand(6, 5), torch.randn(3, 3)
    bad = ((torch.rand(6, 4), "gy2d"), (torch.rand(6, 5).half(), "gy2d"), (torch.rand(5, 6).t(), "contig"))
    for gy, match in bad:
        with pytest.raises(ValueError, match=match):
            tk.backward(x, gy, coef, A, B, 1.0, 0.0, False, -1.0, 1.0)


def test_import_without_triton(monkeypatch):
    """Without triton the module still imports; available() is False and the launchers say why."""
    for name in ("triton", "triton.language"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import triton` raise ImportError
    spec = importlib.util.spec_from_file_location("_tk_without_triton", tk.__file__)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not mod.available()
    A, B = _ab("power", 2)
    with pytest.raises(RuntimeError, match="triton is not installed"):
        mod.forward(torch.rand(1, 4), torch.randn(1, 2), A, B, 1.0, 0.0, False, -1.0, 1.0)
