"""Fused Triton kernels for the SLAF op: one pass over memory forward, one pass backward.

The op (reference.py is the plain-PyTorch definition these are tested against):

    t = scale * x + shift                    (clamped to [tlo, thi] when `clamp`)
    y = sum_k coef[c, k] * phi_k(t),         phi_0 = 1,  phi_(k+1) = A_k t phi_k - B_k phi_(k-1)

evaluated by Clenshaw's recurrence, b_k = coef_k + A_k t b_(k+1) - B_(k+1) b_(k+2), y = b_0, and its
derivative by differentiating that recurrence, d_k = A_k b_(k+1) + A_k t d_(k+1) - B_(k+1) d_(k+2),
p'(t) = d_0. One recurrence covers every basis (power: A = 1, B = 0, Horner).

Data the caller prepares: x viewed as a contiguous [rows, S] matrix; row r belongs to channel r % C of
the contiguous float32 coefficients [C, K] (shared coefficients: C = 1). A and B are float32 [K].

Bytes moved per element (the op is memory-bound for small K, so this is the budget to meet):
    forward : read x, write y                                   2 elements (8 B in float32)
    backward: read x and gy, write gx                           3 elements (12 B in float32)
              plus K float32 partial sums of gcoef per row (or column) of each tile: K / 4096 floats
              per element for long rows on a GPU, at most K / 32 in the per-column layout
The backward recomputes t, phi_k and p'(t) from x; nothing but x and coef is saved by the caller.
Arithmetic per element: about 3 K operations forward and 10 K backward (Clenshaw with its derivative,
then the phi_k recurrence and the K partial sums), so on an H100/H200-class GPU the forward runs near
copy bandwidth up to K ~ 10 and the backward becomes compute-bound from K ~ 5 on.

Tiles. A program owns one [BR, BC] tile of a [NR, NC] matrix view of x, in one of two layouts:
  * PER_ROW (the usual one): the [rows, S] view; channel = row % C. A tile lies in BR rows (BR = 1
    unless S is small), and the gcoef partials are summed along the row: [rows, cdiv(S, BC), K].
  * per column (small S with many rows, e.g. x of shape [N, C] or [N, C, 3, 3]): the [N, C * S] view;
    channel = column // S. Partials are summed down the BR rows (samples) of the tile:
    [cdiv(N, BR), C * S, K]. Without this, S = 1 would write K partial floats per element.
The launcher picks whichever layout writes fewer partials. Partials are reduced afterwards by torch.sum
over a fixed shape, then grouped by channel: no atomics, so gcoef is bitwise reproducible run to run.
The grid is 1-D (cdiv(NR, BR) * cdiv(NC, BC) programs), because CUDA caps grid axes 1 and 2 at 65535
and a flat 2^28-element x needs 65536 or more tiles.
"""

import math
import os

import torch

try:
    import triton
    import triton.language as tl

    _HAVE_TRITON = True
except ImportError:  # the module still imports; available() is False and the launchers refuse to run

    class _Missing:
        """Stand-in for triton / triton.language so that the kernel definitions below still parse."""

        constexpr = None

        @staticmethod
        def jit(fn):
            return fn

    triton = tl = _Missing()
    _HAVE_TRITON = False

MAX_K = 65  # coefficients per channel (degree 64): beyond this the unrolled kernels get too large
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Tile sizes (elements per program) and warps, measured on an H200 (bench/triton_selfcheck.py --sweep,
# float32, 2^27 elements, shared coefficients). Forward: 8 elements per thread (two 16-byte loads);
# 1024 to 4096 elements in 4 or 8 warps were within 2%. Backward: 32 elements per thread, so that each
# of the K tile-wide reductions (shuffles, shared memory, two barriers) is shared by more elements:
# 4096 elements in 4 warps beat 2048 in 4 warps by 6% at K = 9 and 61% at K = 17, and 2048 in 8
# warps by 24% and 55%; 8192 in 4 warps spills registers (and was 20% / 55% slower). Per-column
# layout: 128 columns (one warp's width) by up to 32 samples, 4 warps: 1.7x to 2.5x a [64, 64] tile
# in 8 warps, though it spills a little (the per-column coefficients live in registers).
# Under the interpreter tiles are small so that the tests cover several programs per row and the
# masked tails.
CUDA_FWD_TILE, CUDA_FWD_WARPS = 2048, 8
CUDA_BWD_TILE, CUDA_BWD_WARPS = 4096, 4
CUDA_COLUMN_BC = 128  # per-column layout: columns per tile
_MAX_BR_COLUMNWISE = 32  # per-column layout: samples summed per partial
INTERP_TILE = 256


# ----------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------


@triton.jit
def _t_of_x(x, scale, shift, tlo, thi, CLAMP: tl.constexpr):
    """(t before clamping, t). Comparisons, not min/max, so that a NaN x stays NaN."""
    t_raw = x * scale + shift
    t = t_raw
    if CLAMP:
        t = tl.where(t_raw < tlo, tlo, tl.where(t_raw > thi, thi, t_raw))
    return t_raw, t


@triton.jit
def _clenshaw(t, cptr, a_ptr, b_ptr, K: tl.constexpr):
    """p(t) = b_0: b_k = coef_k + A_k t b_(k+1) - B_(k+1) b_(k+2), from b_(K-1) = coef_(K-1) down.
    cptr points at the channel's K coefficients (a scalar pointer, or a tensor of them)."""
    b1 = tl.zeros_like(t) + tl.load(cptr + (K - 1))
    b2 = tl.zeros_like(t)
    for j in tl.static_range(1, K):
        k = K - 1 - j
        bk = tl.load(cptr + k) + (tl.load(a_ptr + k) * t) * b1 - tl.load(b_ptr + (k + 1)) * b2
        b2 = b1
        b1 = bk
    return b1


@triton.jit
def _clenshaw_slope(t, cptr, a_ptr, b_ptr, K: tl.constexpr):
    """p'(t) = d_0: the Clenshaw recurrence differentiated in t, run alongside it,
    d_k = A_k b_(k+1) + A_k t d_(k+1) - B_(k+1) d_(k+2), from d_(K-1) = 0 down."""
    b1 = tl.zeros_like(t) + tl.load(cptr + (K - 1))
    b2 = tl.zeros_like(t)
    d1 = tl.zeros_like(t)
    d2 = tl.zeros_like(t)
    for j in tl.static_range(1, K):
        k = K - 1 - j
        ak = tl.load(a_ptr + k)
        bk1 = tl.load(b_ptr + (k + 1))
        at = ak * t
        dk = ak * b1 + at * d1 - bk1 * d2
        bk = tl.load(cptr + k) + at * b1 - bk1 * b2
        d2 = d1
        d1 = dk
        b2 = b1
        b1 = bk
    return d1


@triton.jit
def _next_phi(k: tl.constexpr, t, phi, phi_prev, a_ptr, b_ptr):
    """(phi_k, phi_(k-1)) from (phi_(k-1), phi_(k-2)): phi_k = A_(k-1) t phi_(k-1) - B_(k-1) phi_(k-2);
    k = 0 gives (1, 0) whatever is passed, k = 1 uses B_0 = 0."""
    if k == 0:
        return tl.zeros_like(t) + 1.0, tl.zeros_like(t)
    elif k == 1:
        return tl.load(a_ptr) * t, phi
    else:
        return tl.load(a_ptr + (k - 1)) * t * phi - tl.load(b_ptr + (k - 1)) * phi_prev, phi


@triton.jit
def _lead(cptr, a_ptr, K: tl.constexpr):
    """(m, lead, bad) of the channel's series: m the highest degree with coef_m != 0 (-1 if none), lead =
    coef_m A_0 ... A_(m-1) (the leading coefficient in t), bad > 0 if a coefficient is not finite. Flags are
    numbers, not booleans: the interpreter's numpy cannot combine its boolean scalars and tensors."""
    zero = tl.load(cptr) * 0.0
    m = zero - 1.0
    lead = zero
    bad = zero
    p = zero + 1.0
    for k in tl.static_range(K):
        c = tl.load(cptr + k)
        if k > 0:
            p = p * tl.load(a_ptr + (k - 1))
        m = tl.where(c != 0, zero + k, m)
        lead = tl.where(c != 0, c * p, lead)
        bad = bad + tl.where(c - c == 0, 0.0, 1.0)
    return m, lead, bad


@triton.jit
def _overflow_y(y, t, cptr, a_ptr, K: tl.constexpr):
    """The overflow rule of reference.py: where y is NaN but t is not (inf - inf after an overflow), the
    limit lead * sign(t)^m * inf (m >= 1), coef_0 (m = 0) or 0."""
    m, lead, bad = _lead(cptr, a_ptr, K)
    neg = tl.where(lead < 0, 1.0, 0.0) + tl.where(t < 0, 1.0, 0.0) * (m % 2)  # odd: negative
    inf = tl.zeros_like(t) + float("inf")
    lim = tl.where(m >= 1, tl.where(neg % 2 == 1, -inf, inf),
                   tl.where(m == 0, tl.load(cptr) + tl.zeros_like(t), tl.zeros_like(t)))
    fix = tl.where(y != y, 1.0, 0.0) * tl.where(t == t, 1.0, 0.0) * tl.where(bad == 0, 1.0, 0.0)
    return tl.where(fix > 0, lim, y)


@triton.jit
def _overflow_gx(gx, gy, t, cptr, a_ptr, scale, K: tl.constexpr):
    """The overflow rule of reference.py for gx: where gx is NaN but t is not and gy is finite, 0 (gy = 0
    or m = 0), scale gy coef_1 A_0 (m = 1), or sign(scale gy lead) sign(t)^(m-1) inf (m >= 2)."""
    m, lead, bad = _lead(cptr, a_ptr, K)
    neg = (tl.where(lead < 0, 1.0, 0.0) + tl.where(gy < 0, 1.0, 0.0) + tl.where(scale < 0, 1.0, 0.0)
           + tl.where(t < 0, 1.0, 0.0) * ((m + 1) % 2))  # sign(t)^(m-1): odd m-1 is even m + 1
    inf = tl.zeros_like(t) + float("inf")
    if K > 1:
        lin = gy * scale * (tl.load(cptr + 1) * tl.load(a_ptr))
    else:
        lin = tl.zeros_like(t)
    lim = tl.where(m >= 2, tl.where(neg % 2 == 1, -inf, inf), tl.where(m == 1, lin, tl.zeros_like(t)))
    lim = tl.where(gy == 0, tl.zeros_like(t), lim)
    fix = (tl.where(gx != gx, 1.0, 0.0) * tl.where(t == t, 1.0, 0.0) * tl.where(gy - gy == 0, 1.0, 0.0)
           * tl.where(bad == 0, 1.0, 0.0))
    return tl.where(fix > 0, lim, gx)


@triton.jit
def _gx(gy, t_raw, t, cptr, a_ptr, b_ptr, scale, tlo, thi, K: tl.constexpr, CLAMP: tl.constexpr):
    """gx = gy * scale * p'(t), zero where clamping cut t off (strictly outside [tlo, thi]; a NaN t
    keeps its NaN)."""
    gx = gy * scale * _clenshaw_slope(t, cptr, a_ptr, b_ptr, K)
    gx = _overflow_gx(gx, gy, t, cptr, a_ptr, scale, K)
    if CLAMP:
        gx = tl.where((t_raw < tlo) | (t_raw > thi), 0.0, gx)
    return gx


@triton.jit
def _tile(NR, NC, C, S, BR: tl.constexpr, BC: tl.constexpr, PER_ROW: tl.constexpr, EVEN: tl.constexpr):
    """This program's [BR, BC] tile: (tile row, tile column, base offset, in-tile offsets, mask, channel).

    base is int64 so that x may hold more than 2^31 elements; the in-tile offsets are int32. With EVEN
    (the tiles divide the matrix) the mask is all true and the kernels leave it out. The channel index
    is a scalar (PER_ROW, BR = 1), a [BR, 1] column or a [1, BC] row.
    """
    pid = tl.program_id(0)
    nblk_c = tl.cdiv(NC, BC)
    pr = pid // nblk_c
    pc = pid - pr * nblk_c
    i = tl.arange(0, BR)[:, None]
    j = tl.arange(0, BC)[None, :]
    row0 = pr * BR
    col0 = pc.to(tl.int64) * BC
    base = row0.to(tl.int64) * NC + col0
    if BR == 1:
        offs = j
    else:
        offs = i * NC + j
    mask = (i < NR - row0) & (j < NC - col0)
    if PER_ROW:
        if BR == 1:
            chan = row0 % C
        else:
            chan = (row0 + i) % C
    else:
        chan = (pc * BC + j) // S
        if not EVEN:
            chan = tl.minimum(chan, C - 1)  # masked tail columns: keep the coefficient loads in bounds
    return pr, pc, base, offs, mask, chan


@triton.jit
def _slaf_fwd_kernel(x_ptr, y_ptr, coef_ptr, a_ptr, b_ptr, NR, NC, C, S, scale, shift, tlo, thi,
                     K: tl.constexpr, CLAMP: tl.constexpr, PER_ROW: tl.constexpr, EVEN: tl.constexpr,
                     BR: tl.constexpr, BC: tl.constexpr):
    """y = p(t) on one [BR, BC] tile."""
    pr, pc, base, offs, mask, chan = _tile(NR, NC, C, S, BR, BC, PER_ROW, EVEN)
    if EVEN:
        x = tl.load(x_ptr + base + offs, eviction_policy="evict_first")
    else:
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0, eviction_policy="evict_first")
    t_raw, t = _t_of_x(x.to(tl.float32), scale, shift, tlo, thi, CLAMP)
    y = _clenshaw(t, coef_ptr + chan * K, a_ptr, b_ptr, K)
    y = _overflow_y(y, t, coef_ptr + chan * K, a_ptr, K).to(y_ptr.dtype.element_ty)
    if EVEN:
        tl.store(y_ptr + base + offs, y)
    else:
        tl.store(y_ptr + base + offs, y, mask=mask)


@triton.jit
def _slaf_bwd_kernel(x_ptr, gy_ptr, gx_ptr, part_ptr, coef_ptr, a_ptr, b_ptr, NR, NC, C, S,
                     scale, shift, tlo, thi,
                     K: tl.constexpr, CLAMP: tl.constexpr, NEED_GX: tl.constexpr, PER_ROW: tl.constexpr,
                     EVEN: tl.constexpr, BR: tl.constexpr, BC: tl.constexpr):
    """gx = gy * scale * p'(t) on one [BR, BC] tile, and the tile's partial sums of gy * phi_k(t) for
    every k, along its rows (PER_ROW) or down its columns. Partials, k fastest: PER_ROW
    [NR, cdiv(NC, BC), K], else [cdiv(NR, BR), NC, K]. gx first (Clenshaw and its derivative), then
    the phi_k recurrence upwards, so that only one of the two sets of recurrence values is live."""
    pr, pc, base, offs, mask, chan = _tile(NR, NC, C, S, BR, BC, PER_ROW, EVEN)
    if EVEN:
        x = tl.load(x_ptr + base + offs, eviction_policy="evict_first")
        gy = tl.load(gy_ptr + base + offs, eviction_policy="evict_first").to(tl.float32)
    else:
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0, eviction_policy="evict_first")
        gy = tl.load(gy_ptr + base + offs, mask=mask, other=0.0, eviction_policy="evict_first")
        gy = gy.to(tl.float32)
    t_raw, t = _t_of_x(x.to(tl.float32), scale, shift, tlo, thi, CLAMP)

    if NEED_GX:
        gx = _gx(gy, t_raw, t, coef_ptr + chan * K, a_ptr, b_ptr, scale, tlo, thi, K, CLAMP)
        gx = gx.to(gx_ptr.dtype.element_ty)
        if EVEN:
            tl.store(gx_ptr + base + offs, gx)
        else:
            tl.store(gx_ptr + base + offs, gx, mask=mask)

    if PER_ROW:
        r = pr * BR + tl.arange(0, BR)
        pidx = (r.to(tl.int64) * tl.cdiv(NC, BC) + pc) * K
        pmask = r < NR
    else:
        cc = pc * BC + tl.arange(0, BC)
        pidx = (pr.to(tl.int64) * NC + cc) * K
        pmask = cc < NC
    phi = tl.zeros_like(t)
    phi_prev = tl.zeros_like(t)
    for k in tl.static_range(K):
        phi, phi_prev = _next_phi(k, t, phi, phi_prev, a_ptr, b_ptr)
        contrib = gy * phi
        if not EVEN:  # masked lanes hold gy = 0, but phi_k there may overflow: 0 * inf would be NaN
            contrib = tl.where(mask, contrib, 0.0)
        if PER_ROW:
            s = tl.sum(contrib, axis=1)
        else:
            s = tl.sum(contrib, axis=0)
        if EVEN:
            tl.store(part_ptr + pidx + k, s)
        else:
            tl.store(part_ptr + pidx + k, s, mask=pmask)


# ----------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------


def available() -> bool:
    """True when the kernels can run here: triton is importable and there is a CUDA device, or the
    Triton interpreter is on (TRITON_INTERPRET=1, set before triton was imported; CPU tensors)."""
    return _HAVE_TRITON and (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1")


def unavailable_reason(device_type: str) -> str | None:
    """None when the kernels run on tensors of `device_type` here, else why not (the backend registry's
    availability hook)."""
    if device_type != "cuda" and not (device_type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"):
        return (f"it needs a CUDA tensor (or TRITON_INTERPRET=1 to run the interpreter on CPU), "
                f"got device type {device_type!r}")
    if not _HAVE_TRITON:
        return "triton is not installed"
    if device_type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device is available"
    return None


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _plan(rows: int, S: int, C: int, tile: int, cuda: bool) -> dict:
    """Layout and tile shape: the layout (per row or per column) that writes fewer gcoef partials."""
    bc = min(tile, _pow2(S))
    br = max(1, min(tile // bc, _pow2(rows)))
    plan = dict(per_row=True, NR=rows, NC=S, BR=br, BC=bc, nparts=rows * math.ceil(S / bc))
    N, M = rows // C, C * S
    if N > 1 and M < 2**31:
        bc = min(_pow2(M), CUDA_COLUMN_BC if cuda else 16)
        br = max(1, min(_pow2(N), _MAX_BR_COLUMNWISE, tile // bc, _pow2(2**31 // max(M, 1)) // 2))
        bc = max(1, min(_pow2(M), tile // br))
        nparts = math.ceil(N / br) * M
        if nparts < plan["nparts"]:
            plan = dict(per_row=False, NR=N, NC=M, BR=br, BC=bc, nparts=nparts)
    plan["even"] = plan["NR"] % plan["BR"] == 0 and plan["NC"] % plan["BC"] == 0
    plan["grid"] = (math.ceil(plan["NR"] / plan["BR"]) * math.ceil(plan["NC"] / plan["BC"]),)
    return plan


def _launch_options(plan: dict, cuda: bool, cuda_warps: int) -> dict:
    """num_warps: cuda_warps, fewer for small tiles (at least 128 elements per warp: 4 per thread, one
    16-byte load). Fused multiply-adds on: faster and more accurate, and Triton 3.10 turns them off by
    default. The interpreter ignores both."""
    if not cuda:
        return {}
    return dict(num_warps=max(1, min(cuda_warps, plan["BR"] * plan["BC"] // 128)), enable_fp_fusion=True)


def _check_float(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a Python float, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _validate(x2d, coef, A, B, scale, shift, clamp, tlo, thi, gy2d=None):
    if not _HAVE_TRITON:
        raise RuntimeError("triton is not installed: the fused SLAF kernels are unavailable")
    named = [("x2d", x2d), ("coef", coef), ("A", A), ("B", B)]
    if gy2d is not None:
        named.append(("gy2d", gy2d))
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    dev = x2d.device
    if dev.type != "cuda" and not (dev.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"):
        raise ValueError(f"x2d is on {dev}; allowed: a CUDA device (or CPU under TRITON_INTERPRET=1)")
    for name, t in named[1:]:
        if t.device != dev:
            raise ValueError(f"{name} is on {t.device} but x2d is on {dev}; all tensors must share a device")
    if x2d.dim() != 2:
        raise ValueError(f"x2d must be 2-D [rows, S], got shape {tuple(x2d.shape)}")
    if x2d.dtype not in _DTYPES:
        raise TypeError(f"x2d has dtype {x2d.dtype}; allowed: float32, float16, bfloat16")
    if coef.dim() != 2:
        raise ValueError(f"coef must be 2-D [C, K], got shape {tuple(coef.shape)}")
    C, K = coef.shape
    if not 1 <= K <= MAX_K:
        raise ValueError(f"coef has K = {K} coefficients per channel; allowed: 1 to {MAX_K}")
    if C < 1 or x2d.shape[0] % C:
        raise ValueError(f"x2d has {x2d.shape[0]} rows, not a multiple of the {C} channels of coef")
    if x2d.shape[0] >= 2**31:
        raise ValueError(f"x2d has {x2d.shape[0]} rows; at most 2^31 - 1 are supported")
    for name, t in (("coef", coef), ("A", A), ("B", B)):
        if t.dtype != torch.float32:
            raise TypeError(f"{name} has dtype {t.dtype}; allowed: float32")
    for name, t in (("A", A), ("B", B)):
        if tuple(t.shape) != (K,):
            raise ValueError(f"{name} must have shape ({K},) to match coef [C, K], got {tuple(t.shape)}")
    if gy2d is not None:
        if gy2d.shape != x2d.shape or gy2d.dtype != x2d.dtype:
            raise ValueError(f"gy2d is {gy2d.dtype} {tuple(gy2d.shape)}; it must match x2d, "
                             f"{x2d.dtype} {tuple(x2d.shape)}")
    for name, t in named:
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (got strides {t.stride()}); call .contiguous()")
    scale, shift = _check_float("scale", scale), _check_float("shift", shift)
    if not isinstance(clamp, bool):
        raise TypeError(f"clamp must be a bool, got {type(clamp).__name__}")
    tlo, thi = _check_float("tlo", tlo), _check_float("thi", thi)
    if clamp and not tlo <= thi:
        raise ValueError(f"clamp needs tlo <= thi, got tlo={tlo}, thi={thi}")
    return C, K, scale, shift, tlo, thi


def forward(x2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float,
            shift: float, clamp: bool, tlo: float, thi: float) -> torch.Tensor:
    """y2d = sum_k coef[r % C, k] phi_k(t) for x2d [rows, S] (float32/16, bfloat16): y has x2d's dtype."""
    C, K, scale, shift, tlo, thi = _validate(x2d, coef, A, B, scale, shift, clamp, tlo, thi)
    y = torch.empty_like(x2d)
    rows, S = x2d.shape
    if y.numel() == 0:
        return y
    cuda = x2d.is_cuda
    plan = _plan(rows, S, C, CUDA_FWD_TILE if cuda else INTERP_TILE, cuda)
    _slaf_fwd_kernel[plan["grid"]](
        x2d, y, coef, A, B, plan["NR"], plan["NC"], C, S, scale, shift, tlo, thi,
        K=K, CLAMP=clamp, PER_ROW=plan["per_row"], EVEN=plan["even"], BR=plan["BR"], BC=plan["BC"],
        **_launch_options(plan, cuda, CUDA_FWD_WARPS))
    return y


def backward(x2d: torch.Tensor, gy2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             scale: float, shift: float, clamp: bool, tlo: float, thi: float, need_gx: bool = True,
             need_gcoef: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(gx2d or None, gcoef float64 [C, K] or None) for the upstream gradient gy2d (same shape and dtype as
    x2d). The kernel writes float32 partial sums of gcoef; they are added in float64, the convention of every
    backend. Without need_gcoef the partials are still written (the kernel has one backward variant for
    them) but not reduced."""
    C, K, scale, shift, tlo, thi = _validate(x2d, coef, A, B, scale, shift, clamp, tlo, thi, gy2d)
    rows, S = x2d.shape
    gx = torch.empty_like(x2d) if need_gx else None
    if x2d.numel() == 0 or not (need_gx or need_gcoef):
        return gx, torch.zeros(C, K, dtype=torch.float64, device=x2d.device) if need_gcoef else None
    cuda = x2d.is_cuda
    plan = _plan(rows, S, C, CUDA_BWD_TILE if cuda else INTERP_TILE, cuda)
    NR, NC, BR, BC = plan["NR"], plan["NC"], plan["BR"], plan["BC"]
    if plan["per_row"]:
        part = torch.empty(NR, math.ceil(NC / BC), K, dtype=torch.float32, device=x2d.device)
    else:
        part = torch.empty(math.ceil(NR / BR), NC, K, dtype=torch.float32, device=x2d.device)
    _slaf_bwd_kernel[plan["grid"]](
        x2d, gy2d, gx if need_gx else x2d, part, coef, A, B, NR, NC, C, S, scale, shift, tlo, thi,
        K=K, CLAMP=clamp, NEED_GX=need_gx, PER_ROW=plan["per_row"], EVEN=plan["even"], BR=BR, BC=BC,
        **_launch_options(plan, cuda, CUDA_BWD_WARPS))
    if not need_gcoef:
        return gx, None
    # fixed-shape reductions in float64, then group by channel
    part = part.double()
    if plan["per_row"]:
        gcoef = part.sum(dim=1).view(rows // C, C, K).sum(dim=0)
    else:
        gcoef = part.sum(dim=0).view(C, S, K).sum(dim=1)
    return gx, gcoef
