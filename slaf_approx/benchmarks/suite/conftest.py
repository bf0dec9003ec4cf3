"""Options, machine info and the timing fixture of the benchmark suite.

    slaf-approx bench                                          # what this suite is run by
    pytest --pyargs slaf_approx.benchmarks.suite --benchmark-only --bench-sizes 2^16 --bench-degrees 8

Options (comma-separated lists; defaults per device in slaf_approx.benchmarks.settings): --bench-device
cpu|cuda, --bench-dtype float32,bfloat16, --bench-sizes (65536 or 2^16), --bench-backends (SLAF backends;
default: every backend available on the device, 'triton' on CUDA only), --bench-peers (horner:eager,
horner:compile, recurrence:compile, pau:eager, pau:compile, or none), --bench-degrees, --bench-rounds /
--bench-warmup (fixed rounds instead of filling --benchmark-max-time; CUDA warm-up rounds),
--bench-deadline (seconds from the session's start after which the remaining benchmarks are skipped, so a
run fits a time budget and still writes its JSON).

Under --benchmark-disable (the test suite) every benchmark runs once, untimed, with its peak-memory
measurement; sizes above --bench-disabled-max-size (default 2^20) are dropped and the layer's batch is cut.
"""

import time

import pytest

from slaf_approx.benchmarks import settings as st
from slaf_approx.benchmarks import workloads as wl


def pytest_addoption(parser):
    g = parser.getgroup("slaf-approx kernel benchmarks")
    g.addoption("--bench-device", default="cpu", help="cpu (default) or cuda")
    g.addoption(
        "--bench-dtype", default=None, help="float32, bfloat16 (default: float32 on CPU, both on CUDA)"
    )
    g.addoption(
        "--bench-sizes", default=None, help="element counts, e.g. 2^10,2^16,2^20,2^24 (the CPU default)"
    )
    g.addoption(
        "--bench-backends", default=None, help="SLAF backends (default: those available on the device)"
    )
    g.addoption("--bench-peers", default=None, help=f"peers (default: {','.join(st.PEERS)}), or none")
    g.addoption("--bench-degrees", default=None, help="SLAF degrees (default 2,4,8,16)")
    g.addoption(
        "--bench-rounds",
        default=None,
        help="fixed timed rounds per benchmark (default: fill --benchmark-max-time)",
    )
    g.addoption("--bench-warmup", default=None, help=f"CUDA: warm-up rounds (default {st.CUDA_WARMUP})")
    g.addoption(
        "--bench-disabled-max-size",
        default=str(st.DISABLED_MAX_SIZE),
        help="with --benchmark-disable, drop sizes above this (default 2^20)",
    )
    g.addoption(
        "--bench-deadline",
        type=float,
        default=None,
        help="seconds after the session's start: later benchmarks are skipped (bench/gpu_check.sh)",
    )


STARTED = pytest.StashKey[float]()


def pytest_configure(config):
    config.stash[STARTED] = time.monotonic()
    try:
        st.activate(st.settings_from_pytest(config))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Device name, CUDA, torch and triton versions and torch's thread count into the saved run."""
    machine_info.update(st.library_info(st.active().device))


@pytest.fixture(scope="session")
def bench_settings() -> st.BenchSettings:
    return st.active()


def _clock(device: str):
    if device != "cuda":
        return time.perf_counter
    import torch

    def synced():
        torch.cuda.synchronize()
        return time.perf_counter()

    return synced


def paired_rounds(benchmark, config, fn, anchor, device: str = "cpu") -> None:
    """Time `fn` with benchmark.pedantic in rounds, each round timing `anchor` just before it (interleaved),
    and record the per-round ratios fn / anchor as extra_info["samples"]. Rounds fill
    --benchmark-max-time (at least --benchmark-min-rounds, at most MAX_ROUNDS) unless --bench-rounds is
    given; CPU adds one warm-up round, CUDA --bench-warmup (and synchronises inside each timed call)."""
    s = st.active()
    clock = _clock(device)
    anchors = []

    def timed_anchor():
        t = clock()
        anchor()
        anchors.append(clock() - t)

    def target():
        fn()
        if device == "cuda":
            import torch

            torch.cuda.synchronize()

    t0 = clock()
    timed_anchor()
    target()
    one_round = max(clock() - t0, 1e-9)
    rounds = s.rounds or min(
        st.MAX_ROUNDS,
        max(
            int(config.getoption("benchmark_min_rounds")),
            int(float(config.getoption("benchmark_max_time")) / one_round),
        ),
    )
    warmup = s.warmup if device == "cuda" else 1
    anchors.clear()
    benchmark.pedantic(target, setup=timed_anchor, rounds=rounds, warmup_rounds=warmup, iterations=1)
    data = benchmark.stats.stats.data
    benchmark.extra_info["samples"] = [
        float(f"{d / a:.6g}") for d, a in zip(data, anchors[warmup:], strict=True)
    ]
    benchmark.extra_info["sample_kind"] = "anchored"


def raced(fn, rival, clock, budget_s: float, max_pairs: int = st.MAX_ROUNDS) -> list[float]:
    """Per-pair ratios fn / rival: the two called back to back, in alternating order (fn first in even
    pairs, rival first in odd ones, so that neither always runs just after the other's frees), filling
    budget_s seconds (at least RACE_MIN_PAIRS pairs, an even number, at most max_pairs), after one untimed
    call of each. Two subjects timed in the same rounds see the same state of the machine, which a ratio of
    their ratios to an anchor does not promise: at 2^24 the anchor's own time moved by 20% with the subject
    it was paired with (2026-11-30)."""
    fn()
    rival()
    t0 = clock()
    fn()
    rival()
    pairs = min(max_pairs, max(RACE_MIN_PAIRS, int(budget_s / max(clock() - t0, 1e-9))))
    pairs += pairs % 2
    out = []
    for i in range(pairs):
        times = {}
        for name, f in (("fn", fn), ("rival", rival)) if i % 2 == 0 else (("rival", rival), ("fn", fn)):
            t = clock()
            f()
            times[name] = clock() - t
        out.append(float(f"{times['fn'] / max(times['rival'], 1e-12):.6g}"))
    return out


#: the fewest pairs of a race, and the share of --benchmark-max-time it fills beside the anchored rounds
RACE_MIN_PAIRS, RACE_SHARE = 6, 0.5


@pytest.fixture
def paired(benchmark, request):
    """paired(fn, anchor, **info): fn timed in rounds interleaved with anchor (see paired_rounds)."""

    def run(fn, anchor, **info):
        benchmark.extra_info.update(info)
        if benchmark.disabled:
            anchor()
            return benchmark(fn)
        out = fn()
        paired_rounds(benchmark, request.config, fn, anchor)
        return out

    return run


#: the anchor of the kernel benchmarks: a copy into a buffer written before, which times the machine's
#: memory bandwidth alone. x.clone(), the anchor until 2026-11-30, also timed the allocator: at 2^20 glibc
#: serves 4 MiB from the heap or from a fresh mmap as its dynamic threshold moves, so the clone's time was
#: bimodal (ratios 0.6 and 1.0 between rounds of one run), and a ratio of two benchmarks' paired ratios
#: could swing by half (fused/compiled 0.72 in one run, 1.25 in the next, with the medians saying 0.69)
ANCHOR = "copy into a warm buffer"


@pytest.fixture
def timed(benchmark, bench_settings, request):
    """timed(fn, rival=None, **info) -> fn's result. Times the no-argument `fn` with pytest-benchmark in
    rounds, each round first timing the anchor (ANCHOR: a copy of the same size, dtype and device), and
    records `info` (op, backend, mode, degree, size, dtype, ...) with device, bytes, first_call_s (the first
    call: for a compiled peer, the compilation), peak_bytes (the second call) and samples (each round's time
    over its anchor's) in benchmark.extra_info. `rival`, (SLAF backend, its callable on the same workload):
    then also rival_backend and rival_samples, fn's time over the rival's in pairs of calls (raced). With
    --benchmark-disable the first call is all there is (and one call of the rival)."""
    s = bench_settings
    cfg = request.config
    deadline = cfg.getoption("bench_deadline")
    if deadline is not None and time.monotonic() - cfg.stash[STARTED] > deadline:
        pytest.skip(f"--bench-deadline {deadline:g} s reached")

    def run(fn, rival=None, **info):
        import torch

        info.setdefault("device", s.device)
        info.setdefault("backend", "torch")
        info["bytes"] = wl.bytes_moved(info["size"], info["dtype"], info["mode"], info["op"])
        benchmark.extra_info.update(info)
        where = f"{info['device']} {info['dtype']}"
        benchmark.group = (
            f"layer {where} {info['mode']}"
            if info["op"] in st.LAYER_OPS
            else f"{where} {st.size_label(info['size'])} {info['mode']}"
        )
        if benchmark.disabled:
            out, benchmark.extra_info["peak_bytes"] = benchmark(wl.peak_memory, fn, s.device)
            if rival is not None:
                rival[1]()
            return out
        clock = _clock(s.device)
        t0 = clock()
        fn()
        benchmark.extra_info["first_call_s"] = clock() - t0
        out, benchmark.extra_info["peak_bytes"] = wl.peak_memory(fn, s.device)
        xa = torch.ones(info["size"], dtype=getattr(torch, info["dtype"]), device=s.device)
        ya = torch.empty_like(xa).copy_(xa)  # written once here: its pages are resident when timed
        benchmark.extra_info["anchor"] = ANCHOR
        paired_rounds(benchmark, request.config, fn, lambda: ya.copy_(xa), s.device)
        benchmark.extra_info["gbps"] = info["bytes"] / benchmark.stats.stats.median / 1e9
        if rival is not None:
            budget = RACE_SHARE * float(cfg.getoption("benchmark_max_time"))
            benchmark.extra_info["rival_backend"] = rival[0]
            benchmark.extra_info["rival_samples"] = raced(fn, rival[1], clock, budget)
        return out

    return run
