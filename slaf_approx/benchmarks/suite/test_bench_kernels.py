"""Kernel benchmarks (pytest-benchmark): what an SLAF costs against its peers and the activations it
replaces.

* test_slaf: the SLAF op for each backend × degree × size × dtype, forward and forward+backward (Chebyshev
  basis on [-3, 3], shared coefficients);
* test_peer: what a user would write instead (eager or compiled Horner, the compiled recurrence, PAU of
  the polynomial's parameter count), each also raced call for call against the SLAF backend "auto" picks
  (rival_samples: the verdict "SLAF against the fastest peer"), and test_pau_5_4: PAU's default type (5, 4);
* the baselines of the same run: test_copy (x.clone(), the roofline, and y.copy_(x) into a warm buffer) and
  test_activation (F.relu, F.gelu, F.silu, torch.tanh);
* test_layer: a real layer's shapes, (128, 512, 32, 32), per-channel SLAF beside nn.GELU.

The matrix is the session's settings (suite/conftest.py's options; slaf_approx.benchmarks.settings), read
by each test's parametrize declarations. Every benchmark records op, backend, mode, degree, size, dtype,
device, bytes, peak_bytes, first_call_s and its per-round samples in extra_info; budgets.toml selects
benchmarks by those fields.
"""

import functools
import math

import pytest
import torch

from slaf_approx.benchmarks import settings as st
from slaf_approx.benchmarks import workloads as wl
from slaf_approx.kernels import resolve_backend

S = st.active()
MODES = pytest.mark.parametrize("mode", st.MODES, ids=st.MODE_IDS.get)
DTYPES = pytest.mark.parametrize("dtype", S.dtypes)
SIZES = pytest.mark.parametrize("size", S.sizes, ids=st.size_label)
DEGREES = pytest.mark.parametrize("degree", S.degrees, ids=lambda d: f"deg{d}")
DEVICE = pytest.mark.parametrize("device", [S.device])
BACKENDS = pytest.mark.parametrize("backend", sorted({b for d in S.dtypes for b in st.slaf_backends(S, d)}))
PEERS = pytest.mark.parametrize(
    "peer",
    [p for p in S.peers if not p.startswith("pau:")]
    + [f"{p}:matched" for p in S.peers if p.startswith("pau:")],
)


@functools.lru_cache(maxsize=2)
def _inputs(size: int, dtype: str, device: str):
    return wl.make_input(size, dtype, device)


def _check(out, x, mode):
    """The benchmarked call produced what it should: y (forward) or grad x first (forward+backward)."""
    y = out if mode == "forward" else out[0]
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y.reshape(-1)[:4096]).all()


# the roofline and the baselines first, so that a run cut short by --bench-deadline still has them
@pytest.mark.parametrize("op", st.COPIES)
@SIZES
@DTYPES
@DEVICE
def test_copy(timed, device, dtype, size, op):
    x, gy = _inputs(size, dtype, device)
    _check(
        timed(wl.kernel_fn(op, "forward", x, gy), op=op, mode="forward", size=size, dtype=dtype), x, "forward"
    )


@MODES
@pytest.mark.parametrize("op", st.ACTIVATIONS)
@SIZES
@DTYPES
@DEVICE
def test_activation(timed, device, dtype, size, op, mode):
    x, gy = _inputs(size, dtype, device)
    _check(timed(wl.kernel_fn(op, mode, x, gy), op=op, mode=mode, size=size, dtype=dtype), x, mode)


@MODES
@DEGREES
@BACKENDS
@SIZES
@DTYPES
@DEVICE
def test_slaf(timed, device, dtype, size, backend, degree, mode):
    if backend not in st.slaf_backends(S, dtype):
        pytest.skip(f"backend {backend} cannot run {dtype} on {device} here")
    x, gy = _inputs(size, dtype, device)
    fn = wl.kernel_fn("slaf", mode, x, gy, backend=backend, degree=degree)
    _check(timed(fn, op="slaf", backend=backend, mode=mode, degree=degree, size=size, dtype=dtype), x, mode)


@MODES
@DEGREES
@PEERS
@SIZES
@DTYPES
@DEVICE
def test_peer(timed, device, dtype, size, peer, degree, mode):
    op, backend, *variant = peer.split(":")
    info = {"variant": variant[0]} if variant else {}
    if variant:
        m, k = wl.pau_type(variant[0], degree)
        info["pau_type"] = f"{m}/{k}"
    x, gy = _inputs(size, dtype, device)
    fn = wl.kernel_fn(op, mode, x, gy, backend=backend, degree=degree, variant=info.get("variant"))
    auto = resolve_backend("auto", x)  # the SLAF a user gets: raced against this peer, call for call
    rival = (auto, wl.kernel_fn("slaf", mode, x, gy, backend=auto, degree=degree))
    out = timed(fn, rival, op=op, backend=backend, mode=mode, degree=degree, size=size, dtype=dtype, **info)
    _check(out, x, mode)


@MODES
@pytest.mark.parametrize("backend", [p.split(":")[1] for p in S.peers if p.startswith("pau:")])
@SIZES
@DTYPES
@DEVICE
def test_pau_5_4(timed, device, dtype, size, backend, mode):
    x, gy = _inputs(size, dtype, device)
    fn = wl.kernel_fn("pau", mode, x, gy, backend=backend, variant="5/4")
    _check(
        timed(
            fn, op="pau", backend=backend, mode=mode, size=size, dtype=dtype, variant="5/4", pau_type="5/4"
        ),
        x,
        mode,
    )


@MODES
@pytest.mark.parametrize("op", st.LAYER_OPS)
@DTYPES
@DEVICE
def test_layer(timed, bench_settings, device, dtype, op, mode):
    _inputs.cache_clear()  # the layer's tensors are the largest of the run
    shape = bench_settings.layer_shape
    fn, backend = wl.layer_fn(op, mode, shape, dtype, device)
    out = timed(
        fn,
        op=op,
        backend=backend,
        mode=mode,
        size=math.prod(shape),
        dtype=dtype,
        degree=st.LAYER_DEGREE if op == "slaf_layer" else None,
        shape=list(shape),
        channels=shape[1],
    )
    y = out if mode == "forward" else out[0]
    assert tuple(y.shape) == tuple(shape) and str(y.dtype) == f"torch.{dtype}"
