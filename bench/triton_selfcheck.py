"""Self-check and bandwidth of the Triton SLAF kernels on a CUDA GPU (it cannot run without one).

    python bench/triton_selfcheck.py            # checks, then GB/s at 2^24 .. 2^28 float32 elements
    python bench/triton_selfcheck.py --sweep    # also time other tile sizes and warp counts
    python bench/triton_selfcheck.py --quick    # checks and one size only

1. Correctness: forward y, backward gx and gcoef of slaf_approx/kernels/triton_kernels.py against the
   float64 reference (slaf_approx/kernels/reference.py, by autograd) for the four bases, float32 / float16
   / bfloat16, shared and per-channel layouts (both tilings), clamp on and off; bitwise-equal gcoef over
   two backward calls; NaN propagation. Errors are normalised by the size of the terms (sum_k |coef_k
   phi_k(t)| and its analogues), so one tolerance serves every basis.
2. Bandwidth: achieved GB/s of forward (reads x, writes y: 8 B per float32 element), backward (reads x
   and gy, writes gx: 12 B) and forward + backward (20 B), against a device-to-device copy, x.clone()
   (8 B), timed by triton.testing.do_bench (median; it clears the L2 cache between runs).

Exit status: 0 all checks passed, 1 a check failed, 2 could not run (no CUDA device, or no triton).
The kernel and reference modules are loaded from their files, so the package's other modules (and
their dependencies) are not needed.
"""

import argparse
import importlib.util
import os
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASES = ("power", "chebyshev", "legendre", "hermite")
EPS32 = 2.0**-23
DEV = "cuda"  # the correctness helpers also run on "cpu" under TRITON_INTERPRET=1, for trying them out


def _load(name, rel):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------------------------------
# correctness
# ----------------------------------------------------------------------------------------------------


def _majorants(t, c, A, B):
    """float64 [n]: sum_k |c_k| |phi_k(t)| and sum_k |c_k| (k + 1) max_(j<=k) |phi_j'(t)| (c: [n, K])."""
    K = c.shape[1]
    ph, d1 = [torch.ones_like(t)], [torch.zeros_like(t)]
    for k in range(K - 1):
        pp, dp = (ph[k - 1], d1[k - 1]) if k else (0.0, 0.0)
        ph.append(A[k] * t * ph[k] - B[k] * pp)
        d1.append(A[k] * ph[k] + A[k] * t * d1[k] - B[k] * dp)
    s0 = sum(c[:, k].abs() * ph[k].abs() for k in range(K))
    m1, s1 = torch.zeros_like(t), torch.zeros_like(t)
    for k in range(K):
        m1 = torch.maximum(m1, d1[k].abs())
        s1 = s1 + c[:, k].abs() * (k + 1) * m1
    return s0, s1, ph


def _check_one(tk, ref, layout, basis, K, clamp, dtype, gen):
    """Max normalised errors (y, gx, gcoef) of one configuration; raises on shape / dtype surprises."""
    N, C, S = layout
    dev = DEV
    scale, shift = 0.25, -0.25  # t in [-1, 1] for x in [-3, 5]; x is drawn from [-5, 7]
    shape = (S,) if N is None else (N, C, S)
    x = (torch.rand(shape, generator=gen, device=dev, dtype=torch.float64) * 12.0 - 5.0).to(dtype)
    gy = (torch.rand(shape, generator=gen, device=dev, dtype=torch.float64) * 2 - 1).to(dtype)
    A64, B64 = ref.recurrence(basis, K)
    # coef_k scaled by 1 / max |phi_k| on t in [-1.5, 1.5], so every term is O(1) for every basis
    tt = torch.linspace(-1.5, 1.5, 301, dtype=torch.float64, device=dev)
    w = torch.stack([p.abs().max() for p in ref.basis_values(tt, basis, K)]).reciprocal()
    Cn = 1 if N is None else C
    coef = (torch.randn(Cn, K, generator=gen, device=dev, dtype=torch.float64) * w).float()
    A = torch.tensor(A64, dtype=torch.float32, device=dev)
    B = torch.tensor(B64, dtype=torch.float32, device=dev)
    x2d = x.reshape(1, -1) if N is None else x.reshape(N * C, S)
    gy2d = gy.reshape(x2d.shape)

    y = tk.forward(x2d, coef, A, B, scale, shift, clamp, -1.0, 1.0)
    gx, gc = tk.backward(x2d, gy2d, coef, A, B, scale, shift, clamp, -1.0, 1.0)
    assert y.dtype == dtype and gx.dtype == dtype and gc.dtype == torch.float32 and gc.shape == (Cn, K)

    x64 = x.double().requires_grad_()
    c64 = coef.double().requires_grad_()
    y_ref = ref.slaf_reference(x64, c64[0] if N is None else c64, basis, scale, shift, clamp, -1.0, 1.0)
    y_ref.backward(gy.double())
    gx_ref = torch.zeros_like(x64) if x64.grad is None else x64.grad

    t = x.double().reshape(-1) * scale + shift
    if clamp:
        t = t.clamp(-1.0, 1.0)
    ce = coef.double()[0].expand(t.numel(), K) if N is None else \
        coef.double()[None, :, None, :].expand(N, C, S, K).reshape(-1, K)
    s0, s1, ph = _majorants(t, ce, A64, B64)
    fi = torch.finfo(dtype)
    sub = fi.smallest_normal * fi.eps  # rounding of a result in the dtype's subnormal range: absolute
    tiny = 1e-30
    err = ((y.double().reshape(-1) - y_ref.detach().reshape(-1)).abs() - sub).clamp(min=0)
    e_y = (err / (s0 + tiny)).max().item()
    g = gy.double().reshape(-1).abs()
    err = ((gx.double().reshape(-1) - gx_ref.reshape(-1)).abs() - sub).clamp(min=0)
    e_gx = (err / (g * scale * s1 + tiny)).max().item()
    # gcoef: relative to sum |gy phi_k| over the channel
    chan = torch.zeros_like(t, dtype=torch.long) if N is None else \
        torch.arange(C, device=dev)[None, :, None].expand(N, C, S).reshape(-1)
    mag = torch.zeros(Cn, K, dtype=torch.float64, device=dev)
    for k in range(K):
        mag[:, k].index_add_(0, chan, g * ph[k].abs())
    e_gc = ((gc.double() - c64.grad.reshape(Cn, K)).abs() / (mag + tiny)).max().item()
    tol_y = 64 * K * EPS32 + fi.eps
    tol_gc = 64 * K * EPS32 + 32 * EPS32
    return (e_y, tol_y), (e_gx, tol_y), (e_gc, tol_gc)


LAYOUTS = {
    "shared 1M+77": (None, 1, (1 << 20) + 77),
    "per-row 4x8x3000": (4, 8, 3000),
    "per-column 512x24x1": (512, 24, 1),
    "per-column 96x40x9": (96, 40, 9),
}


def check(tk, ref, layouts=LAYOUTS):
    gen = torch.Generator(device=DEV).manual_seed(0)
    failed = 0
    worst = {}
    for dtype, K in ((torch.float32, 17), (torch.float16, 9), (torch.bfloat16, 9)):
        for lname, layout in layouts.items():
            for basis in BASES:
                for clamp in (False, True):
                    res = _check_one(tk, ref, layout, basis, K, clamp, dtype, gen)
                    for what, (err, tol) in zip(("y", "gx", "gcoef"), res, strict=True):
                        key = (str(dtype).replace("torch.", ""), what)
                        worst[key] = max(worst.get(key, 0.0), err / tol)
                        if not err <= tol:
                            failed += 1
                            print(f"FAIL {what}: {dtype} {lname} {basis} K={K} clamp={clamp}: "
                                  f"normalised error {err:.3g} > {tol:.3g}")
    print("worst normalised error / tolerance:",
          ", ".join(f"{d} {w}: {r:.3f}" for (d, w), r in sorted(worst.items())))

    # determinism and NaN
    x = torch.rand(64, 1 << 16 if DEV == "cuda" else 300, device=DEV) * 3 - 1.5
    gy = torch.randn_like(x)
    coef = torch.randn(8, 12, device=DEV)
    A64, B64 = ref.recurrence("legendre", 12)
    A = torch.tensor(A64, dtype=torch.float32, device=DEV)
    B = torch.tensor(B64, dtype=torch.float32, device=DEV)
    r1 = tk.backward(x, gy, coef, A, B, 1.0, 0.0, True, -1.0, 1.0)
    r2 = tk.backward(x, gy, coef, A, B, 1.0, 0.0, True, -1.0, 1.0)
    if not (torch.equal(r1[0], r2[0]) and torch.equal(r1[1], r2[1])):
        failed += 1
        print("FAIL determinism: two backward calls differ")
    x[3, 5] = float("nan")
    y = tk.forward(x, coef, A, B, 1.0, 0.0, True, -1.0, 1.0)
    gx, gc = tk.backward(x, gy, coef, A, B, 1.0, 0.0, True, -1.0, 1.0)
    ok = bool(torch.isnan(y[3, 5]) and torch.isnan(gx[3, 5]) and torch.isnan(gc[3, 1:]).all()
              and torch.isfinite(gc[3, 0]) and torch.isfinite(gc[torch.arange(8) != 3]).all()
              and torch.isfinite(y).sum() == y.numel() - 1)
    if not ok:
        failed += 1
        print("FAIL NaN propagation")
    print(f"checks: {'all passed' if not failed else f'{failed} FAILED'}")
    return failed


# ----------------------------------------------------------------------------------------------------
# bandwidth
# ----------------------------------------------------------------------------------------------------


def _bench(fn):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3  # seconds


def _operands(tk, ref, shape2d, C, K, basis="chebyshev"):
    x = torch.empty(shape2d, device="cuda").uniform_(-1.5, 1.5)
    gy = torch.randn_like(x)
    coef = torch.randn(C, K, device="cuda")
    A64, B64 = ref.recurrence(basis, K)
    A = torch.tensor(A64, dtype=torch.float32, device="cuda")
    B = torch.tensor(B64, dtype=torch.float32, device="cuda")
    return x, gy, coef, A, B


def _times(tk, x, gy, coef, A, B, both=True, fwd=True, bwd=True):
    """Median seconds of forward, backward and forward then backward (None where not asked); clamp on."""
    def f():
        return tk.forward(x, coef, A, B, 1.0, 0.0, True, -1.0, 1.0)

    def b():
        return tk.backward(x, gy, coef, A, B, 1.0, 0.0, True, -1.0, 1.0)

    return (_bench(f) if fwd else None, _bench(b) if bwd else None,
            _bench(lambda: (f(), b())) if both else None)


def bandwidth(tk, ref, logs, Ks=(5, 9, 17)):
    print("\nfloat32, shared coefficients (x viewed as [1, n]), clamp on, Chebyshev basis; "
          "GB/s = bytes moved / median time")
    print(f"{'n':>6} {'K':>3} {'copy GB/s':>10} {'fwd GB/s':>9} {'% copy':>7} {'bwd GB/s':>9} {'% copy':>7} "
          f"{'fwd+bwd GB/s':>13} {'% copy':>7} {'fwd ms':>8} {'bwd ms':>8}")
    for lg in logs:
        n = 1 << lg
        x0 = torch.empty(n, device="cuda")
        copy = 8 * n / _bench(lambda x0=x0: x0.clone())
        del x0
        for K in Ks:
            x, gy, coef, A, B = _operands(tk, ref, (1, n), 1, K)
            fwd, bwd, both = _times(tk, x, gy, coef, A, B)
            f, b, fb = 8 * n / fwd, 12 * n / bwd, 20 * n / both
            print(f"2^{lg:<4} {K:>3} {copy / 1e9:>10.0f} {f / 1e9:>9.0f} {100 * f / copy:>6.0f}% "
                  f"{b / 1e9:>9.0f} {100 * b / copy:>6.0f}% {fb / 1e9:>13.0f} {100 * fb / copy:>6.0f}% "
                  f"{fwd * 1e3:>8.3f} {bwd * 1e3:>8.3f}", flush=True)
            del x, gy
        torch.cuda.empty_cache()

    print("\nfloat32, per-channel coefficients [C, 9] (x of shape [N, C, S])")
    for N, C, S in ((128, 64, 3136), (1 << 18, 64, 1), (4096, 512, 9)):
        n = N * C * S
        x, gy, coef, A, B = _operands(tk, ref, (N * C, S), C, 9)
        plan = tk._plan(N * C, S, C, tk.CUDA_BWD_TILE, True)
        fwd, bwd, both = _times(tk, x, gy, coef, A, B)
        print(f"  [{N}, {C}, {S}] ({'per-row' if plan['per_row'] else 'per-column'} tiles "
              f"{plan['BR']}x{plan['BC']}): fwd {8 * n / fwd / 1e9:.0f} GB/s, "
              f"bwd {12 * n / bwd / 1e9:.0f} GB/s, fwd+bwd {20 * n / both / 1e9:.0f} GB/s", flush=True)
        del x, gy
    torch.cuda.empty_cache()


def sweep(tk, ref, lg=27):
    """GB/s of other tile sizes and warp counts (the module's constants), float32, Chebyshev, clamp on."""
    n = 1 << lg
    names = ("CUDA_FWD_TILE", "CUDA_FWD_WARPS", "CUDA_BWD_TILE", "CUDA_BWD_WARPS", "CUDA_COLUMN_BC",
             "_MAX_BR_COLUMNWISE")
    saved = {k: getattr(tk, k) for k in names}
    print(f"\nsweep, shared coefficients, n = 2^{lg}: GB/s by (tile elements, warps)")
    for K in (9, 17):
        x, gy, coef, A, B = _operands(tk, ref, (1, n), 1, K)
        for tile, warps in ((1024, 4), (2048, 4), (2048, 8), (4096, 4), (4096, 8), (8192, 4), (8192, 8)):
            tk.CUDA_FWD_TILE, tk.CUDA_FWD_WARPS = tile, warps
            tk.CUDA_BWD_TILE, tk.CUDA_BWD_WARPS = tile, warps
            fwd, bwd, _ = _times(tk, x, gy, coef, A, B, both=False)
            print(f"  K={K:>2} tile {tile:>5} warps {warps}: fwd {8 * n / fwd / 1e9:>5.0f} GB/s   "
                  f"bwd {12 * n / bwd / 1e9:>5.0f} GB/s", flush=True)
        del x, gy
        torch.cuda.empty_cache()
    for k, v in saved.items():
        setattr(tk, k, v)
    print("sweep: per-column backward GB/s, K = 9, by (columns, max samples, tile, warps)")
    for N, C, S in ((1 << 18, 64, 1), (4096, 512, 9)):
        n = N * C * S
        x, gy, coef, A, B = _operands(tk, ref, (N * C, S), C, 9)
        for bc, mbr, tile, warps in ((64, 64, 2048, 8), (128, 32, 4096, 4), (128, 32, 4096, 8),
                                     (128, 64, 8192, 8), (256, 16, 4096, 4)):
            tk.CUDA_COLUMN_BC, tk._MAX_BR_COLUMNWISE = bc, mbr
            tk.CUDA_BWD_TILE, tk.CUDA_BWD_WARPS = tile, warps
            bwd = _times(tk, x, gy, coef, A, B, both=False, fwd=False)[1]
            print(f"  [{N}, {C}, {S}] columns {bc:>3} samples <= {mbr:>2} tile {tile:>5} warps {warps}: "
                  f"bwd {12 * n / bwd / 1e9:>5.0f} GB/s", flush=True)
        del x, gy
        torch.cuda.empty_cache()
    for k, v in saved.items():
        setattr(tk, k, v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="store_true", help="also time other tile sizes and warp counts")
    ap.add_argument("--quick", action="store_true", help="checks, then bandwidth at 2^26 only")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness checks")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("triton_selfcheck: no CUDA device (torch.cuda.is_available() is False). This script checks "
              "and times the Triton kernels on a GPU; the CPU tests are tests/test_kernel_triton.py. "
              "Nothing run.")
        return 2
    if os.environ.pop("TRITON_INTERPRET", None) == "1":
        print("triton_selfcheck: ignoring TRITON_INTERPRET=1; the kernels are compiled for the GPU")
    try:
        import triton
    except ImportError:
        print("triton_selfcheck: triton is not installed; nothing run.")
        return 2
    tk = _load("_slaf_triton_kernels", "slaf_approx/kernels/triton_kernels.py")
    ref = _load("_slaf_reference", "slaf_approx/kernels/reference.py")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}")
    failed = 0 if args.no_check else check(tk, ref)
    bandwidth(tk, ref, (26,) if args.quick else range(24, 29))
    if args.sweep:
        sweep(tk, ref)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
