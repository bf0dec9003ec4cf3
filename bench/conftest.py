"""Options, machine info and the timing fixture of the benchmark suite.

    pytest bench/test_bench_kernels.py --benchmark-only                       # CPU, float32, 2^16 2^20 2^24
    pytest bench/test_bench_kernels.py --benchmark-only --bench-sizes 2^16 --bench-degrees 8
    pytest bench/test_bench_kernels.py --benchmark-only --bench-device cuda   # float32 + bfloat16, 2^20..2^28

Options (comma-separated lists; defaults per device in slaf_approx.benchmarks): --bench-device cpu|cuda,
--bench-dtype float32,bfloat16, --bench-sizes (65536 or 2^16), --bench-backends reference,fused,triton
(triton on CUDA only: on CPU it needs Triton's interpreter, far too slow to time), --bench-degrees,
--bench-rounds / --bench-warmup (CUDA's benchmark.pedantic rounds and warm-up rounds), --bench-deadline
(seconds from the session's start after which the remaining benchmarks are skipped, so a run fits a time
budget and still writes its JSON).

pytest knows these options only when bench/ (or a file in it) is named on its command line.

Under --benchmark-disable (the test suite) every benchmark runs once, untimed, with its peak-memory
measurement; sizes above --bench-disabled-max-size (default 2^20) are dropped (keeping the smallest if none
is left) and the layer's batch is cut from 128 to 2, so the once-through takes seconds, not minutes.
"""

import time

import pytest

from slaf_approx import benchmarks as kb


def pytest_addoption(parser):
    g = parser.getgroup("slaf-approx kernel benchmarks")
    g.addoption("--bench-device", default="cpu", help="cpu (default) or cuda")
    g.addoption("--bench-dtype", default=None,
                help="float32, bfloat16 (default: float32 on CPU, both on CUDA)")
    g.addoption("--bench-sizes", default=None, help="element counts, e.g. 2^16,2^20,2^24 (the CPU default)")
    g.addoption("--bench-backends", default=None,
                help="SLAF backends: reference, fused (CPU), triton (CUDA); default: those of the device")
    g.addoption("--bench-degrees", default=None, help="SLAF degrees (default 2,4,8,16)")
    g.addoption("--bench-rounds", default=None, help=f"CUDA: timed rounds (default {kb.CUDA_ROUNDS})")
    g.addoption("--bench-warmup", default=None, help=f"CUDA: warm-up rounds (default {kb.CUDA_WARMUP})")
    g.addoption("--bench-disabled-max-size", default=str(kb.DISABLED_MAX_SIZE),
                help="with --benchmark-disable, drop sizes above this (default 2^20)")
    g.addoption("--bench-deadline", type=float, default=None,
                help="seconds after the session's start: later benchmarks are skipped (bench/gpu_check.sh)")


SETTINGS = pytest.StashKey[kb.BenchSettings]()
STARTED = pytest.StashKey[float]()


def pytest_configure(config):
    config.stash[STARTED] = time.monotonic()
    try:
        config.stash[SETTINGS] = kb.settings_from_pytest(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def settings(config) -> kb.BenchSettings:
    if SETTINGS not in config.stash:  # bench/ collected without this conftest's pytest_configure
        config.stash[SETTINGS] = kb.settings_from_pytest(config)
    return config.stash[SETTINGS]


def pytest_benchmark_update_machine_info(config, machine_info):
    """Device name, CUDA, torch and triton versions and torch's thread count into the saved run."""
    machine_info.update(kb.library_info(settings(config).device))


@pytest.fixture(scope="session")
def bench_settings(request) -> kb.BenchSettings:
    return settings(request.config)


@pytest.fixture(scope="session")
def copy_gbps() -> dict:
    """GB/s of the copy (the roofline) per (device, dtype, size) in this run; test_copy runs first."""
    return {}


@pytest.fixture
def timed(benchmark, bench_settings, copy_gbps, request):
    """timed(fn, **info) -> fn's result. Times the no-argument `fn` with pytest-benchmark and records
    `info` (op, backend, mode, degree, size, dtype, ...) with device, bytes, gbps, copy_fraction (gbps over
    the copy's at the same device, dtype and size) and peak_bytes in benchmark.extra_info.

    One untimed call comes first: it measures the peak memory, and keeps first-call costs (lazy set-up,
    the first touch of fresh pages) out of the timing. Then CPU: pytest-benchmark's own calibration; CUDA:
    benchmark.pedantic with warm-up rounds, synchronising inside the timed function. With
    --benchmark-disable the one call is all there is."""
    s = bench_settings
    deadline = request.config.getoption("bench_deadline")
    if deadline is not None and time.monotonic() - request.config.stash[STARTED] > deadline:
        pytest.skip(f"--bench-deadline {deadline:g} s reached")

    def run(fn, **info):
        info.setdefault("device", s.device)
        info.setdefault("backend", "torch")
        info["bytes"] = kb.bytes_moved(info["size"], info["dtype"], info["mode"], info["op"])
        benchmark.extra_info.update(info)
        where = f"{info['device']} {info['dtype']}"
        benchmark.group = (f"layer {where} {info['mode']}" if info["op"] in kb.LAYER_OPS
                           else f"{where} {kb.size_label(info['size'])} {info['mode']}")
        if benchmark.disabled:
            out, benchmark.extra_info["peak_bytes"] = benchmark(kb.peak_memory, fn, s.device)
            return out
        out, benchmark.extra_info["peak_bytes"] = kb.peak_memory(fn, s.device)
        if s.device == "cuda":
            import torch

            def synced():
                fn()
                torch.cuda.synchronize()

            benchmark.pedantic(synced, rounds=s.rounds, warmup_rounds=s.warmup, iterations=1)
        else:
            benchmark(fn)
        gbps = info["bytes"] / benchmark.stats.stats.median / 1e9
        key = (info["device"], info["dtype"], info["size"])
        if info["op"] == "copy":
            copy_gbps[key] = gbps
        benchmark.extra_info["gbps"] = gbps
        if key in copy_gbps:
            benchmark.extra_info["copy_fraction"] = gbps / copy_gbps[key]
        return out

    return run
