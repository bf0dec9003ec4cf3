"""Kernel benchmarks (pytest-benchmark): what an SLAF costs against the activations it replaces.

* test_slaf: the SLAF op for each backend (reference, fused on CPU, triton on CUDA) × degree × size × dtype,
  forward and forward+backward (Chebyshev basis on [-3, 3], shared coefficients);
* the baselines of the same run: test_activation (F.relu, F.gelu, F.silu, torch.tanh), test_copy (x.clone(),
  the roofline, and y.copy_(x) into a warm buffer) and test_naive (sum a_k x**k in eager torch);
* test_layer: a real layer's shapes, (128, 512, 32, 32), per-channel SLAF beside nn.GELU.

The matrix comes from bench/conftest.py's options (CPU float32 2^16, 2^20, 2^24 by default; CUDA float32 and
bfloat16 up to 2^28). Every benchmark records op, backend, mode, degree, size, dtype, device, bytes, gbps and
peak_bytes in extra_info; bench/budgets.toml selects benchmarks by those fields and `slaf-approx bench`
reports and checks them (slaf_approx/benchmarks.py).
"""

import functools
import math

import pytest
import torch

from slaf_approx import benchmarks as kb
from slaf_approx.kernels import available_backends


@functools.lru_cache(maxsize=2)
def _inputs(size: int, dtype: str, device: str):
    return kb.make_input(size, dtype, device)


def _id(device, dtype, *parts) -> str:
    return "-".join([device, dtype, *map(str, parts)])


def pytest_generate_tests(metafunc):
    s = kb.settings_from_pytest(metafunc.config)
    name, dev = metafunc.function.__name__, s.device
    modes = kb.MODES
    values, ids = [], []
    if name == "test_slaf":
        for dtype in s.dtypes:
            have = available_backends(torch.empty(1, dtype=getattr(torch, dtype), device=dev))
            for size in s.sizes:
                for bk in s.backends:
                    marks = () if bk in have else pytest.mark.skip(
                        reason=f"backend {bk} cannot run {dtype} on {dev} here")
                    for deg in s.degrees:
                        for mode in modes:
                            values.append(pytest.param(dtype, size, bk, deg, mode, marks=marks))
                            ids.append(_id(dev, dtype, bk, f"deg{deg}", kb.size_label(size),
                                           kb.MODE_IDS[mode]))
        metafunc.parametrize("dtype,size,backend,degree,mode", values, ids=ids)
    elif name == "test_activation":
        for dtype in s.dtypes:
            for size in s.sizes:
                for op in kb.ACTIVATIONS:
                    for mode in modes:
                        values.append((op, dtype, size, mode))
                        ids.append(_id(dev, dtype, op, kb.size_label(size), kb.MODE_IDS[mode]))
        metafunc.parametrize("op,dtype,size,mode", values, ids=ids)
    elif name == "test_copy":  # the roofline first: the other benchmarks' copy_fraction divides by it
        values = [(op, dtype, size) for dtype in s.dtypes for size in s.sizes for op in kb.COPIES]
        ids = [_id(dev, dtype, *([] if op == "copy" else [op]), kb.size_label(size))
               for op, dtype, size in values]
        metafunc.parametrize("op,dtype,size", values, ids=ids)
    elif name == "test_naive":
        for dtype in s.dtypes:
            for size in s.sizes:
                for deg in s.degrees:
                    for mode in modes:
                        values.append((dtype, size, deg, mode))
                        ids.append(_id(dev, dtype, f"deg{deg}", kb.size_label(size), kb.MODE_IDS[mode]))
        metafunc.parametrize("dtype,size,degree,mode", values, ids=ids)
    elif name == "test_layer":
        values = [(op, dtype, mode) for dtype in s.dtypes for op in kb.LAYER_OPS for mode in modes]
        ids = [_id(dev, dtype, op, kb.MODE_IDS[mode]) for op, dtype, mode in values]
        metafunc.parametrize("op,dtype,mode", values, ids=ids)


def _check(out, x, mode):
    """The benchmarked call produced what it should: y (forward) or grad x first (forward+backward)."""
    y = out if mode == "forward" else out[0]
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y.reshape(-1)[:4096]).all()


# the roofline and the baselines first, so that a run cut short by --bench-deadline still has them
def test_copy(timed, bench_settings, op, dtype, size):
    x, gy = _inputs(size, dtype, bench_settings.device)
    _check(timed(kb.kernel_fn(op, "forward", x, gy), op=op, mode="forward", size=size, dtype=dtype), x,
           "forward")


def test_activation(timed, bench_settings, op, dtype, size, mode):
    x, gy = _inputs(size, dtype, bench_settings.device)
    _check(timed(kb.kernel_fn(op, mode, x, gy), op=op, mode=mode, size=size, dtype=dtype), x, mode)


def test_slaf(timed, bench_settings, dtype, size, backend, degree, mode):
    x, gy = _inputs(size, dtype, bench_settings.device)
    fn = kb.kernel_fn("slaf", mode, x, gy, backend=backend, degree=degree)
    _check(timed(fn, op="slaf", backend=backend, mode=mode, degree=degree, size=size, dtype=dtype), x, mode)


def test_naive(timed, bench_settings, dtype, size, degree, mode):
    x, gy = _inputs(size, dtype, bench_settings.device)
    fn = kb.kernel_fn("naive", mode, x, gy, degree=degree)
    _check(timed(fn, op="naive", mode=mode, degree=degree, size=size, dtype=dtype), x, mode)


def test_layer(timed, bench_settings, op, dtype, mode):
    _inputs.cache_clear()  # the layer's tensors are the largest of the run
    shape = bench_settings.layer_shape
    fn, backend = kb.layer_fn(op, mode, shape, dtype, bench_settings.device)
    out = timed(fn, op=op, backend=backend, mode=mode, size=math.prod(shape), dtype=dtype,
                degree=kb.LAYER_DEGREE if op == "slaf_layer" else None, shape=list(shape), channels=shape[1])
    y = out if mode == "forward" else out[0]
    assert tuple(y.shape) == tuple(shape) and str(y.dtype) == f"torch.{dtype}"
