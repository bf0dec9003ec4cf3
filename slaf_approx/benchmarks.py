"""Kernel benchmarks: what an SLAF costs against the activations it replaces, and the regression check.

pytest-benchmark does all the timing, storage and comparison (bench/test_bench_kernels.py, run by
``slaf-approx bench``); this module holds what it does not:

* the benchmarked callables (:func:`kernel_fn`, :func:`layer_fn`), the bytes each one must move
  (:func:`bytes_moved`) and its peak memory over one call (:func:`peak_memory`);
* the settings of a run (:func:`bench_settings`: device, dtypes, sizes, backends, degrees), shared by the
  pytest options of bench/conftest.py and the command line;
* pure functions of a pytest-benchmark JSON: :func:`records` (one flat dict per benchmark), the budgets of
  bench/budgets.toml (:func:`load_budgets`, :func:`check_budgets`) and the comparison with a saved run
  (:func:`compare_runs`, which applies pytest-benchmark's own ``--benchmark-compare-fail`` check);
* the report: :func:`kernel_report` (Markdown and matplotlib Figures), :func:`write_kernel_report` (atomic
  writes), :func:`fit_markdown` (reports/bench/fit.md), and :func:`quick_kernel_table`, the short section
  of ``slaf-approx run`` (timed by ``torch.utils.benchmark``).

Bytes moved are the compulsory traffic of an ideal kernel, n elements of s bytes: forward reads x and
writes y (2ns); forward + backward also reads x and grad y and writes grad x (5ns); the copy x.clone()
moves 2ns. Coefficients are negligible. GB/s = bytes / median time; "x copy" divides that by the GB/s of
the copy at the same size, dtype and device in the same run, so it is the fraction of the roofline.

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import math
import os
import platform
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ._io import atomic_write, save_figure

ACTIVATIONS = ("relu", "gelu", "silu", "tanh")
LAYER_OPS = ("gelu_layer", "slaf_layer")
#: the roofline, x.clone(), allocates its output as every op here does; copy_into writes a warm buffer
COPIES = ("copy", "copy_into")
KERNEL_OPS = ("slaf", "naive", *COPIES, *ACTIVATIONS, *LAYER_OPS)
MODES = ("forward", "forward+backward")
MODE_IDS = {"forward": "fwd", "forward+backward": "fwdbwd"}
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16")
BENCH_BACKENDS = ("reference", "fused", "triton")
DEFAULT_BACKENDS = {"cpu": ("reference", "fused"), "cuda": ("reference", "triton")}
DEFAULT_DTYPES = {"cpu": ("float32",), "cuda": ("float32", "bfloat16")}
DEFAULT_SIZES = {"cpu": (2**16, 2**20, 2**24), "cuda": (2**20, 2**22, 2**24, 2**26, 2**28)}
DEFAULT_DEGREES = (2, 4, 8, 16)
#: the sizes and degree of the budgets: what --quick runs
BUDGET_SIZE = {"cpu": 2**24, "cuda": 2**28}
BUDGET_DEGREE = 8
#: GPU timing: benchmark.pedantic rounds and warm-up rounds (CPU timing is pytest-benchmark's calibration)
CUDA_ROUNDS, CUDA_WARMUP = 30, 5
MAX_SIZE = 2**31
#: with --benchmark-disable (the test suite) sizes above this are dropped and the layer's batch is cut
DISABLED_MAX_SIZE = 2**20
DISABLED_LAYER_BATCH = 2
#: the real layer: (batch, channels, height, width), per-channel SLAF of this degree beside nn.GELU
LAYER_SHAPE = (128, 512, 32, 32)
LAYER_DEGREE = 8
#: SLAF inputs are uniform on this interval, mapped to t in [-1, 1] (Chebyshev basis)
INTERVAL = (-3.0, 3.0)
BASIS = "chebyshev"

BUDGET_VERSION = 2
SELECTOR_KEYS = ("test", "op", "backend", "mode", "degree", "size", "dtype", "device")
QUANTITIES = {"median": "median time", "gbps": "GB/s", "peak_bytes": "peak memory"}
BUDGET_KEYS = ("description", "of", "numerator", "denominator", "select", "reduce", "max", "min", "goal",
               "required")
FAILED = ("FAIL", "missing", "ambiguous")
DPI = 100


# ----------------------------------------------------------------------------------------------------
# Settings of a run (pytest options and the command line)
# ----------------------------------------------------------------------------------------------------
def size_label(n) -> str:
    n = int(n)
    return f"2^{n.bit_length() - 1}" if n > 0 and n & (n - 1) == 0 else str(n)


def parse_size(text) -> int:
    """'65536', '2^16' or '2**16' -> 65536; ValueError for anything else or a size outside [1, 2^31]."""
    s = str(text).strip().replace("**", "^")
    try:
        if "^" in s:
            base, exp = s.split("^", 1)
            value = int(base) ** int(exp)
        else:
            value = int(s)
    except ValueError:
        raise ValueError(f"sizes are positive integers such as 65536 or 2^16, got {text!r}") from None
    if not 1 <= value <= MAX_SIZE:
        raise ValueError(f"sizes must be in [1, 2^31], got {text!r}")
    return value


def _split(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v for item in values for v in str(item).replace(",", " ").split()]


def _choices(values, allowed, what) -> tuple[str, ...]:
    out = []
    for v in _split(values):
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; allowed: {', '.join(allowed)}")
        if v not in out:
            out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class BenchSettings:
    """What one benchmark run covers. `disabled`: pytest-benchmark's --benchmark-disable (each benchmark
    runs once, untimed), where sizes above DISABLED_MAX_SIZE are dropped and the layer batch is cut."""

    device: str = "cpu"
    dtypes: tuple[str, ...] = ("float32",)
    sizes: tuple[int, ...] = DEFAULT_SIZES["cpu"]
    backends: tuple[str, ...] = DEFAULT_BACKENDS["cpu"]
    degrees: tuple[int, ...] = DEFAULT_DEGREES
    rounds: int = CUDA_ROUNDS
    warmup: int = CUDA_WARMUP
    disabled: bool = False
    layer_shape: tuple[int, ...] = LAYER_SHAPE


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def bench_settings(device: str = "cpu", dtypes=None, sizes=None, backends=None, degrees=None, *,
                   rounds=None, warmup=None, disabled: bool = False, quick: bool = False,
                   disabled_max_size: int = DISABLED_MAX_SIZE) -> BenchSettings:
    """Validated settings; None takes the device's default. ValueError (one line) for bad input: an unknown
    device, dtype or backend, a backend that cannot run on the device, CUDA asked for but absent, a bad size
    or degree. `quick`: the budgets' size and degree only."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if device == "cuda" and not cuda_available():
        import torch

        raise ValueError(f"device 'cuda' asked for, but CUDA is not available (torch {torch.__version__})")
    dts = _choices(dtypes, DTYPES, "dtype") or DEFAULT_DTYPES[device]
    bks = _choices(backends, BENCH_BACKENDS, "backend")
    if not bks:
        bks = ("fused",) if quick and device == "cpu" else ("triton",) if quick else DEFAULT_BACKENDS[device]
    if device == "cpu" and "triton" in bks:
        raise ValueError("backend 'triton' is benchmarked on CUDA only (on CPU it runs in Triton's "
                         "interpreter, far too slow to time); use --device cuda")
    if device == "cuda" and "fused" in bks:
        raise ValueError("backend 'fused' is the CPU kernel; on CUDA benchmark 'triton' or 'reference'")
    szs = tuple(dict.fromkeys(parse_size(s) for s in _split(sizes)))
    if not szs:
        szs = (BUDGET_SIZE[device],) if quick else DEFAULT_SIZES[device]
    degs = []
    for d in _split(degrees):
        try:
            value = int(d)
        except ValueError:
            value = -1
        if not 1 <= value <= 64:
            raise ValueError(f"degrees are integers in [1, 64], got {d!r}")
        degs.append(value)
    degs = tuple(dict.fromkeys(degs)) or ((BUDGET_DEGREE,) if quick else DEFAULT_DEGREES)
    layer = LAYER_SHAPE
    if disabled:
        kept = tuple(s for s in szs if s <= disabled_max_size)
        szs = kept or (min(min(szs), disabled_max_size),)
        layer = (DISABLED_LAYER_BATCH, *LAYER_SHAPE[1:])
    r = CUDA_ROUNDS if rounds is None else int(rounds)
    w = CUDA_WARMUP if warmup is None else int(warmup)
    if r < 1 or w < 0:
        raise ValueError(f"rounds must be >= 1 and warm-up rounds >= 0, got {r} and {w}")
    return BenchSettings(device, dts, tuple(sorted(szs)), bks, tuple(sorted(degs)), r, w, bool(disabled),
                         layer)


def settings_from_pytest(config) -> BenchSettings:
    """The settings given by bench/conftest.py's options on a pytest config."""
    opt = config.getoption
    return bench_settings(opt("bench_device"), opt("bench_dtype"), opt("bench_sizes"), opt("bench_backends"),
                          opt("bench_degrees"), rounds=opt("bench_rounds"), warmup=opt("bench_warmup"),
                          disabled=bool(opt("benchmark_disable", False)),
                          disabled_max_size=parse_size(opt("bench_disabled_max_size")))


def library_info(device: str) -> dict:
    """Versions and device for pytest-benchmark's machine info."""
    import importlib.metadata

    import torch

    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = "not installed"
    info = {"torch": torch.__version__, "triton": triton, "cuda": torch.version.cuda or "none",
            "torch_threads": torch.get_num_threads(), "bench_device": device}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    return info


# ----------------------------------------------------------------------------------------------------
# What is benchmarked
# ----------------------------------------------------------------------------------------------------
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def bytes_moved(size: int, dtype: str, mode: str, op: str = "slaf") -> int:
    """Compulsory traffic: 2 n s for a forward pass or a copy, 5 n s for forward + backward."""
    return (2 if op in COPIES or mode == "forward" else 5) * int(size) * _ITEMSIZE[dtype]


def make_input(size: int, dtype: str, device: str, seed: int = 0):
    """(x uniform on INTERVAL, grad y standard normal), seeded, made on the device."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    lo, hi = INTERVAL
    x = torch.rand(size, generator=g, device=device, dtype=torch.float32).mul_(hi - lo).add_(lo)
    gy = torch.randn(size, generator=g, device=device, dtype=torch.float32)
    dt = getattr(torch, dtype)
    return x.to(dt), gy.to(dt)


def _coefficients(K: int, like, scale: float = 1.0):
    import torch

    g = torch.Generator().manual_seed(K)
    c = torch.randn(K, generator=g, dtype=torch.float64) / K
    c *= scale ** -torch.arange(K, dtype=torch.float64)
    return c.to(dtype=like.dtype, device=like.device)


def naive_polynomial(x, a):
    """The eager polynomial a user writes first: sum_k a_k x**k, one temporary tensor per term."""
    return sum(a[k] * x**k for k in range(a.shape[0]))


def _wrap(f, params, mode: str, x, gy):
    import torch

    if mode == "forward":
        def forward():
            with torch.no_grad():
                return f(x, *params)
        return forward
    xg = x.detach().requires_grad_(True)
    ps = [p.detach().requires_grad_(True) for p in params]

    def forward_backward():
        y = f(xg, *ps)
        return torch.autograd.grad(y, [xg, *ps], gy)
    return forward_backward


def kernel_fn(op: str, mode: str, x, gy, *, backend: str | None = None, degree: int | None = None):
    """A no-argument callable running `op` in `mode` on x (forward: under no_grad; forward+backward: y and
    torch.autograd.grad of y against x and the coefficients, with grad y = gy; nothing accumulates)."""
    import torch
    import torch.nn.functional as F

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    if op in COPIES:
        if mode != "forward":
            raise ValueError("the copy has a forward mode only")
        if op == "copy":
            return lambda: x.clone()
        y = torch.empty_like(x).copy_(x)  # written once here, so its pages are resident when timed
        return lambda: y.copy_(x)
    if op in ACTIVATIONS:
        f = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}[op]
        return _wrap(lambda v: f(v), [], mode, x, gy)
    if op == "slaf":
        from .kernels import slaf

        lo, hi = INTERVAL
        scale, shift = 2.0 / (hi - lo), -(lo + hi) / (hi - lo)
        coef = _coefficients(degree + 1, x)
        return _wrap(lambda v, c: slaf(v, c, BASIS, scale, shift, False, -1.0, 1.0, backend), [coef], mode,
                     x, gy)
    if op == "naive":
        a = _coefficients(degree + 1, x, scale=max(abs(INTERVAL[0]), abs(INTERVAL[1])))
        return _wrap(naive_polynomial, [a], mode, x, gy)
    raise ValueError(f"unknown op {op!r}; allowed: {', '.join(KERNEL_OPS)}")


def layer_fn(op: str, mode: str, shape: Sequence[int], dtype: str, device: str):
    """(callable, backend) for the real layer: per-channel SLAF(LAYER_DEGREE, init='gelu') or nn.GELU on
    an input of `shape` (batch, channels, height, width)."""
    import torch
    from torch import nn

    from .kernels import resolve_backend
    from .nn import SLAF

    n = math.prod(shape)
    x, gy = make_input(n, dtype, device)
    x, gy = x.view(*shape), gy.view(*shape)
    if op == "gelu_layer":
        module, backend = nn.GELU(), "torch"
    elif op == "slaf_layer":
        module = SLAF(LAYER_DEGREE, channels=shape[1], init="gelu", dtype=getattr(torch, dtype),
                      device=device)
        backend = resolve_backend("auto", x)
    else:
        raise ValueError(f"unknown layer op {op!r}; allowed: {', '.join(LAYER_OPS)}")
    params = list(module.parameters())
    if mode == "forward":
        def forward():
            with torch.no_grad():
                return module(x)
        return forward, backend
    xg = x.detach().requires_grad_(True)

    def forward_backward():
        return torch.autograd.grad(module(xg), [xg, *params], gy)
    return forward_backward, backend


def _allocator_peak(events) -> int:
    """The peak of the running sum of torch's allocation (+bytes) and free (-bytes) events, in time order."""
    total = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        total += e.nbytes()
        peak = max(peak, total)
    return peak


def peak_memory(fn, device: str):
    """(fn(), bytes of memory the call took at its peak beyond what was held before it).

    CUDA: the caching allocator's max_memory_allocated after reset_peak_memory_stats. CPU: torch's
    allocator, followed through the profiler's memory events (every allocation and free of the call, in
    order): the peak of their running sum. Both count every tensor the call makes, outputs included, to the
    byte; neither sees memory taken outside torch's allocator (the fused CPU kernel's scratch for the
    coefficient gradient, a few chunks of C·K doubles)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        return out, int(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "99")  # the profiler's start/stop lines on stderr, per call
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    return out, _allocator_peak(events)


# ----------------------------------------------------------------------------------------------------
# A pytest-benchmark JSON as records
# ----------------------------------------------------------------------------------------------------
def load_run(path) -> dict:
    """A pytest-benchmark JSON file; ValueError naming the file if it is not one."""
    import json

    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
    for i, b in enumerate(run["benchmarks"]):
        if not isinstance(b, dict) or "name" not in b or not isinstance(b.get("stats"), dict):
            raise ValueError(f"{path}: benchmarks[{i}] has no name or stats")
    return run


def without_raw_timings(run: Mapping) -> dict:
    """The run without each benchmark's raw timings (stats["data"], a float per round: megabytes for a
    full run); the summary statistics stay, and they are all that the report and the comparison read."""
    out = dict(run)
    out["benchmarks"] = [{**b, "stats": {k: v for k, v in b["stats"].items() if k != "data"}}
                         for b in run["benchmarks"]]
    return out


def records(run: Mapping) -> list[dict]:
    """One flat dict per benchmark: name, test (the function's name), fullname, group, median (s), rounds,
    the extra_info fields (op, backend, mode, degree, size, dtype, device, bytes, peak_bytes, ...), gbps
    (bytes / median) and copy_fraction (gbps over the copy's at the same size, dtype and device)."""
    out = []
    for b in run.get("benchmarks", []):
        st = b.get("stats") or {}
        r = {"name": b["name"], "test": b["name"].split("[")[0], "fullname": b.get("fullname", b["name"]),
             "group": b.get("group"), "median": st.get("median"), "rounds": st.get("rounds"),
             "iqr": st.get("iqr")}
        r.update({k: v for k, v in (b.get("extra_info") or {}).items() if k not in r})
        if r.get("bytes") and r["median"]:
            r["gbps"] = r["bytes"] / r["median"] / 1e9
        out.append(r)
    copies = {(r.get("device"), r.get("dtype"), r.get("size")): r["gbps"] for r in out
              if r.get("op") == "copy" and r.get("gbps")}
    for r in out:
        c = copies.get((r.get("device"), r.get("dtype"), r.get("size")))
        if r.get("op") and r.get("gbps") and c:
            r["copy_fraction"] = r["gbps"] / c
    return out


def _matches(r: Mapping, selector: Mapping) -> bool:
    return all(r.get(k) == v for k, v in selector.items())


def select(recs: Iterable[Mapping], selector: Mapping | None = None, **fields) -> list[Mapping]:
    sel = {**(selector or {}), **fields}
    return [r for r in recs if _matches(r, sel)]


def _one(recs, **fields):
    hits = select(recs, **fields)
    return hits[0] if len(hits) == 1 else None


# ----------------------------------------------------------------------------------------------------
# Budgets (bench/budgets.toml)
# ----------------------------------------------------------------------------------------------------
class BudgetError(ValueError):
    """A missing or malformed budgets file: the message names the file and the key."""

    def __init__(self, path, key: str | None, problem: str):
        self.path, self.key = Path(path), key
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


@dataclass(frozen=True)
class Budget:
    """One budget. A ratio (numerator / denominator, each selecting exactly one benchmark) or an absolute
    value (select, the worst of the benchmarks it matches) of the quantity `of`, held to [min, max]."""

    name: str
    of: str = "median"
    numerator: dict | None = None
    denominator: dict | None = None
    select: dict | None = None
    reduce: str = "max"
    max: float | None = None
    min: float | None = None
    goal: float | None = None
    required: str | None = None
    description: str = ""

    @property
    def is_ratio(self) -> bool:
        return self.select is None

    def limit(self) -> str:
        unit = "" if self.is_ratio else {"median": " s", "gbps": " GB/s", "peak_bytes": " B"}[self.of]
        parts = []
        if self.min is not None:
            parts.append(f"≥ {self.min:g}{unit}")
        if self.max is not None:
            parts.append(f"≤ {self.max:g}{unit}")
        if self.goal is not None:
            parts.append(f"(goal {self.goal:g}{unit})")
        return " ".join(parts)


@dataclass(frozen=True)
class BudgetResult:
    budget: Budget
    value: float | None
    status: str  # ok, FAIL, not measured, missing, ambiguous
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED


def _selector(path, key: str, value) -> dict:
    if not isinstance(value, dict) or not value:
        raise BudgetError(path, key, "must be a non-empty table such as { op = \"slaf\", size = 16777216 }")
    for k, v in value.items():
        if k not in SELECTOR_KEYS:
            raise BudgetError(path, f"{key}.{k}", f"unknown field; allowed: {', '.join(SELECTOR_KEYS)}")
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise BudgetError(path, f"{key}.{k}", f"must be a string or an integer, got {v!r}")
    return dict(value)


def _number(path, key: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BudgetError(path, key, f"must be a finite number, got {value!r}")
    return float(value)


def parse_budgets(data: Mapping, path="bench/budgets.toml") -> list[Budget]:
    """Budgets from the parsed TOML; BudgetError naming the file and key for anything malformed."""
    if "version" not in data:
        raise BudgetError(path, "version", f"missing (this suite reads version {BUDGET_VERSION})")
    if data["version"] != BUDGET_VERSION:
        raise BudgetError(path, "version",
                          f"is {data['version']!r}; this suite reads version {BUDGET_VERSION}")
    for k in data:
        if k not in ("version", "budget"):
            raise BudgetError(path, k, "unknown key; allowed: version, budget")
    table = data.get("budget")
    if not isinstance(table, dict) or not table:
        raise BudgetError(path, "budget", "missing: no [budget.NAME] tables")
    out = []
    for name, b in table.items():
        key = f"budget.{name}"
        if not isinstance(b, dict):
            raise BudgetError(path, key, "must be a table")
        for k in b:
            if k not in BUDGET_KEYS:
                raise BudgetError(path, f"{key}.{k}", f"unknown key; allowed: {', '.join(BUDGET_KEYS)}")
        of = b.get("of", "median")
        if of not in QUANTITIES:
            raise BudgetError(path, f"{key}.of", f"unknown quantity {of!r}; allowed: {', '.join(QUANTITIES)}")
        has_ratio = "numerator" in b or "denominator" in b
        if has_ratio and "select" in b:
            raise BudgetError(path, key, "has both select and numerator/denominator: give one")
        if has_ratio:
            for side in ("numerator", "denominator"):
                if side not in b:
                    raise BudgetError(path, f"{key}.{side}", "missing")
            num, den, sel = (_selector(path, f"{key}.numerator", b["numerator"]),
                             _selector(path, f"{key}.denominator", b["denominator"]), None)
        elif "select" in b:
            num = den = None
            sel = _selector(path, f"{key}.select", b["select"])
        else:
            raise BudgetError(path, f"{key}.select", "missing (or numerator and denominator for a ratio)")
        lo, hi = _number(path, f"{key}.min", b.get("min")), _number(path, f"{key}.max", b.get("max"))
        if lo is None and hi is None:
            raise BudgetError(path, f"{key}.max", "missing: a budget needs max or min")
        reduce = b.get("reduce", "max")
        if reduce not in ("max", "min"):
            raise BudgetError(path, f"{key}.reduce", f"must be 'max' or 'min', got {reduce!r}")
        required = b.get("required")
        if required is not None and required not in DEVICES:
            raise BudgetError(path, f"{key}.required",
                              f"must be one of {', '.join(DEVICES)}, got {required!r}")
        desc = b.get("description", "")
        if not isinstance(desc, str):
            raise BudgetError(path, f"{key}.description", "must be a string")
        goal = _number(path, f"{key}.goal", b.get("goal"))
        out.append(Budget(name, of, num, den, sel, reduce, hi, lo, goal, required, desc))
    return out


def load_budgets(path) -> list[Budget]:
    """The budgets of a TOML file; BudgetError naming the file (and key) when missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BudgetError(path, None, f"cannot read the budgets file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BudgetError(path, None, f"not valid TOML: {exc}") from None
    return parse_budgets(data, path)


def _quantity(r: Mapping, of: str):
    v = r.get(of)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def check_budgets(recs: Sequence[Mapping], budgets: Sequence[Budget]) -> list[BudgetResult]:
    """Each budget against the records of one run. A budget whose benchmarks are absent is 'not measured',
    or 'missing' (a failure) when it is `required` on a device the run benchmarked kernels on."""
    run_devices = {r.get("device") for r in recs if r.get("op") in KERNEL_OPS}
    out = []
    for b in budgets:
        def absent(detail, b=b):
            if b.required and b.required in run_devices:
                return BudgetResult(b, None, "missing", f"{detail}; required in a {b.required} run")
            return BudgetResult(b, None, "not measured", detail)

        if b.is_ratio:
            sides = []
            for side, sel in (("numerator", b.numerator), ("denominator", b.denominator)):
                hits = select(recs, sel)
                if len(hits) > 1:
                    sides.append(BudgetResult(b, None, "ambiguous",
                                              f"{len(hits)} benchmarks match the {side}"))
                elif not hits:
                    sides.append(absent(f"no benchmark matches the {side}"))
                elif _quantity(hits[0], b.of) is None:
                    sides.append(absent(f"the {side} has no {QUANTITIES[b.of]}"))
                else:
                    sides.append(_quantity(hits[0], b.of))
            bad = [s for s in sides if isinstance(s, BudgetResult)]
            if bad:
                out.append(min(bad, key=lambda s: ("ambiguous", "missing", "not measured").index(s.status)))
                continue
            if sides[1] == 0:
                out.append(BudgetResult(b, None, "not measured",
                                        f"the denominator's {QUANTITIES[b.of]} is 0"))
                continue
            value = sides[0] / sides[1]
        else:
            hits = select(recs, b.select)
            vals = [_quantity(r, b.of) for r in hits]
            if not hits or any(v is None for v in vals):
                out.append(absent("no benchmark matches" if not hits else f"no {QUANTITIES[b.of]} recorded"))
                continue
            value = max(vals) if b.reduce == "max" else min(vals)
        ok = (b.max is None or value <= b.max) and (b.min is None or value >= b.min)
        out.append(BudgetResult(b, value, "ok" if ok else "FAIL"))
    return out


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}"


def _what(b: Budget) -> str:
    if b.description:
        return b.description
    if b.is_ratio:
        return (f"{QUANTITIES[b.of]}: {_selector_text(b.numerator)} / {_selector_text(b.denominator)}")
    return f"{QUANTITIES[b.of]} ({b.reduce}): {_selector_text(b.select)}"


def _selector_text(sel: Mapping) -> str:
    return " ".join(size_label(v) if k == "size" else str(v) for k, v in sel.items())


def budget_table(results: Sequence[BudgetResult]) -> str:
    """Markdown: budget, what it holds, measured value, limit, status."""
    lines = ["| budget | what | measured | limit | status |", "|---|---|---:|---|---|"]
    for r in results:
        b = r.budget
        if r.value is None:
            measured = "–"
        elif b.is_ratio:
            measured = f"{r.value:#.3g}×"
        elif b.of == "peak_bytes":
            measured = f"{r.value / 2**20:.4g} MiB"
        else:
            measured = f"{r.value:.3g}" + (" s" if b.of == "median" else " GB/s")
        status = r.status if not r.failed else f"**{r.status}**"
        if r.detail:
            status += f" ({r.detail})"
        lines.append(f"| {b.name} | {_what(b)} | {measured} | {b.limit()} | {status} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# Comparison with the last saved run (pytest-benchmark's storage and regression check)
# ----------------------------------------------------------------------------------------------------
def storage_path(root, device: str) -> Path:
    """Where `slaf-approx bench` keeps its saved runs: one folder per host and device, so that a run is
    only ever compared with an earlier run of the same machine (pytest-benchmark adds its platform id)."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform.node() or "host")
    return Path(root) / ".benchmarks" / f"{host}-{device}"


def latest_saved(storage) -> Path | None:
    """The newest run pytest-benchmark saved under `storage` for this platform (what --benchmark-compare
    loads), or None."""
    from pytest_benchmark.utils import get_machine_id

    files = sorted((Path(storage) / get_machine_id()).glob("[0-9][0-9][0-9][0-9]_*.json"))
    return files[-1] if files else None


def parse_compare_fail(spec: str):
    """pytest-benchmark's --benchmark-compare-fail parser ('median:10%', 'min:0.001'); ValueError if bad."""
    import argparse

    from pytest_benchmark.utils import parse_compare_fail as parse

    try:
        return parse(spec)
    except argparse.ArgumentTypeError:
        raise ValueError(f"--compare-fail takes FIELD:PERCENT% or FIELD:SECONDS with FIELD one of min, max, "
                         f"mean, median, stddev, iqr (e.g. median:10%), got {spec!r}") from None


@dataclass(frozen=True)
class CompareRow:
    name: str
    before: float
    after: float
    change: float  # percent for a percentage check, seconds for a difference check
    failed: bool


def compare_runs(current: Mapping, previous: Mapping, spec: str = "median:10%") -> list[CompareRow]:
    """Every benchmark of `current` also in `previous` (same fullname), checked as pytest-benchmark's
    --benchmark-compare-fail=`spec` checks it."""
    check = parse_compare_fail(spec)
    before = {b.get("fullname", b["name"]): b for b in previous.get("benchmarks", [])}
    rows = []
    for b in current.get("benchmarks", []):
        p = before.get(b.get("fullname", b["name"]))
        if p is None:
            continue
        cur, old = b["stats"], p["stats"]
        rows.append(CompareRow(b["name"], old[check.field], cur[check.field], check.compute(cur, old),
                               bool(check.fails(cur, old))))
    return rows


def compare_table(rows: Sequence[CompareRow], spec: str, source: str = "") -> str:
    """Markdown: the benchmarks slower than the limit (all compared ones if `rows` is short)."""
    check = parse_compare_fail(spec)
    pct = type(check).__name__.startswith("Percentage")
    bad = [r for r in rows if r.failed]
    head = (f"{len(rows)} benchmarks compared with the last saved run{f' ({source})' if source else ''} on "
            f"{check.field}, limit +{check.threshold}{'%' if pct else ' s'}: {len(bad)} slower than that.")
    show = bad if bad or len(rows) > 12 else rows
    if not show:
        return head + "\n"
    lines = [head, "", f"| benchmark | before ({check.field}) | now | change | ok |",
             "|---|---:|---:|---:|---|"]
    for r in sorted(show, key=lambda r: -r.change):
        change = f"{r.change:+.1f}%" if pct else f"{r.change:+.3g} s"
        lines.append(f"| {r.name} | {r.before * 1e3:.4g} ms | {r.after * 1e3:.4g} ms | {change} | "
                     f"{'**NO**' if r.failed else 'yes'} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# The report: Markdown and figures, pure functions of the records
# ----------------------------------------------------------------------------------------------------
def _gbps(v) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _frac(v: float) -> str:
    return f"{v:.2f}×" if v >= 0.095 else f"{v:.2g}×"


def _ms(r) -> str:
    return f"{r['median'] * 1e3:.3g} ms" if r and r.get("median") else "–"


def _row_label(r: Mapping) -> tuple[str, str, str]:
    deg = str(r["degree"]) if r.get("degree") is not None else ""
    return r["op"], r.get("backend", ""), deg


def _op_order(r: Mapping):
    order = {"copy": 0, "copy_into": 0.5, "relu": 1, "gelu": 2, "silu": 3, "tanh": 4, "slaf": 5, "naive": 6}
    bk = {"torch": 0, "reference": 1, "fused": 2, "triton": 3}
    return (order.get(r["op"], 9), bk.get(r.get("backend"), 9), r.get("degree") or 0)


def kernel_sections(recs: Sequence[Mapping]) -> list[tuple[str, str]]:
    """The (device, dtype) pairs with kernel benchmarks, CPU first."""
    pairs = {(r["device"], r["dtype"]) for r in recs if r.get("op") in KERNEL_OPS and r.get("device")}
    return sorted(pairs, key=lambda p: (DEVICES.index(p[0]) if p[0] in DEVICES else 9,
                                        DTYPES.index(p[1]) if p[1] in DTYPES else 9, p))


def throughput_table(recs, device: str, dtype: str, mode: str) -> str:
    """Markdown: per (op, backend, degree) and size, median time · GB/s · fraction of the copy's GB/s."""
    rs = [r for r in select(recs, device=device, dtype=dtype, mode=mode) if r.get("op") in KERNEL_OPS
          and r["op"] not in LAYER_OPS and (mode == "forward" or r["op"] not in COPIES)]
    if mode != "forward":  # the copy is the roofline of both modes
        rs += [r for op in COPIES for r in select(recs, device=device, dtype=dtype, op=op)]
    sizes = sorted({r["size"] for r in rs})
    if not rs:
        return ""
    keys = sorted({_row_label(r): r for r in rs}.values(), key=_op_order)
    head = "| op | backend | degree | " + " | ".join(size_label(s) for s in sizes) + " |"
    lines = [head, "|---|---|---:|" + "---:|" * len(sizes)]
    for k in keys:
        cells = []
        for s in sizes:
            r = _one(rs, op=k["op"], backend=k.get("backend"), degree=k.get("degree"), size=s)
            if r is None or not r.get("median"):
                cells.append("–")
                continue
            frac = f" · {_frac(r['copy_fraction'])}" if r.get("copy_fraction") else ""
            cells.append(f"{_ms(r)} · {_gbps(r.get('gbps'))} GB/s{frac}")
        op, bk, deg = _row_label(k)
        label = {"copy": "copy (roofline)", "copy_into": "copy into a warm buffer"}.get(op, op)
        lines.append(f"| {label} | {bk} | {deg} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def speedups(recs, device: str, dtype: str) -> list[dict]:
    """Per SLAF (backend, degree, mode, size): naive median / SLAF median in the same run."""
    out = []
    for r in select(recs, device=device, dtype=dtype, op="slaf"):
        n = _one(recs, device=device, dtype=dtype, op="naive", degree=r.get("degree"), mode=r["mode"],
                 size=r["size"])
        if n and n.get("median") and r.get("median"):
            out.append({"backend": r["backend"], "degree": r["degree"], "mode": r["mode"], "size": r["size"],
                        "speedup": n["median"] / r["median"]})
    return out


def speedup_table(recs, device: str, dtype: str) -> str:
    sp = speedups(recs, device, dtype)
    if not sp:
        return ""
    sizes = sorted({s["size"] for s in sp})
    keys = sorted({(s["backend"], s["mode"], s["degree"]) for s in sp},
                  key=lambda k: (BENCH_BACKENDS.index(k[0]) if k[0] in BENCH_BACKENDS else 9,
                                 MODES.index(k[1]), k[2]))
    lines = ["| backend | mode | degree | " + " | ".join(size_label(s) for s in sizes) + " |",
             "|---|---|---:|" + "---:|" * len(sizes)]
    for bk, mode, deg in keys:
        cells = []
        for s in sizes:
            v = [x["speedup"] for x in sp
                 if (x["backend"], x["mode"], x["degree"], x["size"]) == (bk, mode, deg, s)]
            cells.append(f"{v[0]:.3g}×" if v else "–")
        lines.append(f"| {bk} | {mode} | {deg} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def memory_table(recs, device: str, dtype: str) -> str:
    """Markdown: peak memory (MiB) of one call and its ratio to GELU's in the same mode and size."""
    rs = [r for r in select(recs, device=device, dtype=dtype) if r.get("op") in KERNEL_OPS
          and r["op"] not in LAYER_OPS and r.get("peak_bytes") is not None]
    if not rs:
        return ""
    sizes = sorted({r["size"] for r in rs})
    keys = sorted({(*_row_label(r), r["mode"]): r for r in rs}.values(),
                  key=lambda r: (MODES.index(r["mode"]), _op_order(r)))
    lines = ["| op | backend | degree | mode | " + " | ".join(f"{size_label(s)} (MiB)" for s in sizes) + " |",
             "|---|---|---:|---|" + "---:|" * len(sizes)]
    for k in keys:
        cells = []
        for s in sizes:
            r = _one(rs, op=k["op"], backend=k.get("backend"), degree=k.get("degree"), mode=k["mode"], size=s)
            g = _one(rs, op="gelu", mode=k["mode"], size=s)
            if r is None:
                cells.append("–")
                continue
            ratio = f" ({_frac(r['peak_bytes'] / g['peak_bytes'])} GELU)" if g and g["peak_bytes"] else ""
            cells.append(f"{r['peak_bytes'] / 2**20:.4g}{ratio}")
        op, bk, deg = _row_label(k)
        lines.append(f"| {op} | {bk} | {deg} | {k['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def layer_table(recs, device: str, dtype: str) -> str:
    rs = [r for r in select(recs, device=device, dtype=dtype) if r.get("op") in LAYER_OPS]
    if not rs:
        return ""
    lines = ["| layer | backend | mode | shape | median | GB/s | peak MiB | time / GELU layer |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for r in sorted(rs, key=lambda r: (MODES.index(r["mode"]), LAYER_OPS.index(r["op"]))):
        g = _one(rs, op="gelu_layer", mode=r["mode"])
        ratio = f"{r['median'] / g['median']:.3g}×" if g and g.get("median") and r.get("median") else "–"
        peak = f"{r['peak_bytes'] / 2**20:.4g}" if r.get("peak_bytes") is not None else "–"
        shape = "×".join(map(str, r.get("shape") or ()))
        name = "nn.GELU" if r["op"] == "gelu_layer" else f"SLAF (per channel, degree {r.get('degree')})"
        lines.append(f"| {name} | {r.get('backend', '')} | {r['mode']} | {shape} | {_ms(r)} | "
                     f"{_gbps(r.get('gbps'))} | {peak} | {ratio} |")
    return "\n".join(lines) + "\n"


_plain = FuncFormatter(lambda v, _: f"{v:g}")


def _log2_axis(ax, sizes):
    ax.set_xscale("log", base=2)
    if sizes:
        ax.set_xticks(sizes, [size_label(s) for s in sizes])


def throughput_figure(recs, device: str, dtype: str) -> Figure:
    """GB/s against size: one column per backend (reference, fused/triton, the naive polynomial), one row
    per mode, one line per degree; the copy roofline (black, dashed) and GELU (grey, dotted) in each."""
    rs = select(recs, device=device, dtype=dtype)
    cols = [(op, bk) for op, bk in [("slaf", b) for b in BENCH_BACKENDS] + [("naive", "torch")]
            if select(rs, op=op, backend=bk)]
    fig = Figure(figsize=(4.2 * max(len(cols), 1), 7), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, max(len(cols), 1), squeeze=False, sharex=True, sharey=True)
    degrees = sorted({r["degree"] for r in rs if r.get("op") in ("slaf", "naive") and r.get("degree")})
    cmap = {d: c for d, c in zip(degrees, _colours(len(degrees)), strict=True)}
    sizes = sorted({r["size"] for r in rs if r.get("op") in ("slaf", "naive", *COPIES)})
    copy = sorted(select(rs, op="copy"), key=lambda r: r["size"])
    warm = sorted(select(rs, op="copy_into"), key=lambda r: r["size"])
    for i, mode in enumerate(MODES):
        gelu = sorted(select(rs, op="gelu", mode=mode), key=lambda r: r["size"])
        for j, (op, bk) in enumerate(cols):
            ax = axes[i][j]
            for d in degrees:
                line = sorted(select(rs, op=op, backend=bk, mode=mode, degree=d), key=lambda r: r["size"])
                line = [r for r in line if r.get("gbps")]
                if line:
                    ax.plot([r["size"] for r in line], [r["gbps"] for r in line], marker="o", markersize=4,
                            color=cmap[d], label=f"degree {d}")
            if copy:
                ax.plot([r["size"] for r in copy], [r.get("gbps") or np.nan for r in copy], color="black",
                        linestyle="--", marker="s", markersize=3, linewidth=1.4, label="copy (roofline)")
            if warm:
                ax.plot([r["size"] for r in warm], [r.get("gbps") or np.nan for r in warm], color="black",
                        linestyle="-.", linewidth=0.9, label="copy into a warm buffer")
            if gelu:
                ax.plot([r["size"] for r in gelu], [r.get("gbps") or np.nan for r in gelu], color="0.5",
                        linestyle=":", marker="^", markersize=3, linewidth=1.4, label="GELU")
            _log2_axis(ax, sizes)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(_plain)
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{'naive polynomial' if op == 'naive' else bk}, {mode}", fontsize=10)
            if j == 0:
                ax.set_ylabel("GB/s (compulsory bytes / median)")
            if i == 1:
                ax.set_xlabel("elements")
    if cols:
        axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(f"Throughput against size: {device}, {dtype}", fontsize=11)
    return fig


def _colours(n: int):
    from matplotlib import colormaps

    cm = colormaps["viridis"]
    return [cm(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]


def speedup_figure(recs, device: str, dtype: str) -> Figure:
    """naive / SLAF median time against degree at the largest size, per backend and mode (log scale)."""
    sp = speedups(recs, device, dtype)
    fig = Figure(figsize=(6.5, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    size = max((s["size"] for s in sp), default=None)
    colours = {"reference": "tab:blue", "fused": "tab:red", "triton": "tab:green"}
    for bk in BENCH_BACKENDS:
        for mode, ls in zip(MODES, ("--", "-"), strict=True):
            pts = sorted((s["degree"], s["speedup"]) for s in sp
                         if s["backend"] == bk and s["mode"] == mode and s["size"] == size)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", linestyle=ls, color=colours.get(bk),
                        label=f"{bk}, {mode}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("degree")
    ax.set_ylabel("speedup over the naive polynomial (×)")
    ax.grid(True, which="both", alpha=0.3)
    if sp:
        ax.legend(fontsize=8)
    ax.set_title(f"Speedup over sum a_k x**k in eager torch: {device}, {dtype}, "
                 f"{size_label(size) if size else '–'} elements", fontsize=10)
    return fig


def memory_figure(recs, device: str, dtype: str) -> Figure:
    """Peak memory of one call against degree at the largest size, per backend and mode; GELU and the copy
    as horizontal lines."""
    rs = [r for r in select(recs, device=device, dtype=dtype) if r.get("peak_bytes") is not None
          and r.get("op") in KERNEL_OPS and r["op"] not in LAYER_OPS]
    size = max((r["size"] for r in rs), default=None)
    rs = select(rs, size=size)
    fig = Figure(figsize=(6.5, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    colours = {"reference": "tab:blue", "fused": "tab:red", "triton": "tab:green", "torch": "tab:purple"}
    for op, bk in [("slaf", b) for b in BENCH_BACKENDS] + [("naive", "torch")]:
        for mode, ls in zip(MODES, ("--", "-"), strict=True):
            pts = sorted((r["degree"], r["peak_bytes"] / 2**20)
                         for r in select(rs, op=op, backend=bk, mode=mode))
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="s" if op == "naive" else "o", linestyle=ls,
                        color=colours[bk], alpha=0.8, label=f"{'naive' if op == 'naive' else bk}, {mode}")
    for op, mode, colour, ls in (("gelu", "forward+backward", "0.3", "-"), ("gelu", "forward", "0.3", "--"),
                                 ("copy", "forward", "black", ":")):
        r = _one(rs, op=op, mode=mode)
        if r:
            ax.axhline(r["peak_bytes"] / 2**20, color=colour, linestyle=ls, linewidth=1.0,
                       label=f"{op.upper() if op == 'gelu' else op}, {mode}")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(_plain)
    ax.set_xlabel("degree")
    ax.set_ylabel("peak memory of one call (MiB)")
    ax.grid(True, which="both", alpha=0.3)
    if rs:
        ax.legend(fontsize=7, ncols=2)
    ax.set_title(f"Peak memory: {device}, {dtype}, {size_label(size) if size else '–'} elements", fontsize=10)
    return fig


def _machine(run: Mapping, device: str) -> str:
    mi = run.get("machine_info") or {}
    if device == "cuda":
        name = mi.get("cuda_device", "CUDA device")
        return f"{name} (CUDA {mi.get('cuda', '?')}, triton {mi.get('triton', '?')})"
    cpu = (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or "CPU"
    return f"{cpu}, {mi.get('torch_threads', '?')} torch threads, host {mi.get('node', '?')}"


def _torch(run: Mapping) -> str:
    return (run.get("machine_info") or {}).get("torch", "?")


def _date(run: Mapping) -> str:
    d = run.get("datetime")
    try:
        return datetime.fromisoformat(d).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return str(d or "date not recorded")


GPU_NOT_MEASURED = ("GPU figures: **not measured yet**. No GPU run was supplied; this report gives no "
                    "estimate. On a machine with an NVIDIA GPU run `bench/gpu_check.sh reports/gpu`, then "
                    "`slaf-approx bench --report-only reports/bench/run-cpu.json reports/gpu/kernels.json`. "
                    "Logs of separate GPU checks (the Triton kernels alone, `bench/triton_selfcheck.py`), "
                    "where any were made, are in reports/gpu/.")

METHOD_NOTES = [
    "Timing: pytest-benchmark (medians). On CPU its own calibration; on CUDA `benchmark.pedantic` with "
    "warm-up rounds and a `torch.cuda.synchronize()` inside the timed function.",
    "Bytes moved: the compulsory traffic, 2·n·s forward (read x, write y), 5·n·s forward+backward (also read "
    "x and grad y, write grad x), 2·n·s for the copy `x.clone()`. GB/s = bytes / median; × copy = that over "
    "the copy's GB/s at the same size, dtype and device, i.e. the fraction of the roofline.",
    "The roofline is `x.clone()` because it, like every op here, allocates its output. `y.copy_(x)` into a "
    "buffer written before the timing (copy into a warm buffer) is shown beside it: where the two differ, "
    "the cost is in the fresh output, not the bandwidth. On CPU above the last-level cache that is the "
    "kernel faulting in the new pages one by one (4 KiB pages), which the clone and every allocating op pay "
    "alike.",
    "Forward runs under `torch.no_grad()`; forward+backward is y = f(x) and `torch.autograd.grad` against x "
    "and the coefficients (the SLAF's and the naive polynomial's are learnable).",
    "Peak memory: of one call (the untimed one before the timing), beyond what was held before it, to the "
    "byte. CUDA: the caching allocator's `max_memory_allocated`. CPU: the peak of the running sum of torch's "
    "allocations and frees during the call, from the profiler's memory events. Memory taken outside torch's "
    "allocator is not seen: the fused CPU kernel's scratch for the coefficient gradient (a few chunks of "
    "channels × (degree + 1) doubles).",
    "The naive polynomial is `sum(a[k] * x**k for k in range(K))` in eager torch; the SLAF is the Chebyshev "
    "basis on [-3, 3] (every basis is one three-term recurrence, so they cost the same).",
    "Ratios between benchmarks of the same run hold across machines; absolute times and GB/s do not.",
]


def kernel_report(runs: Sequence[tuple[str, Mapping]], results: Sequence[BudgetResult] = (), *,
                  budgets_source: str = "bench/budgets.toml", comparison: str | None = None
                  ) -> tuple[str, dict[str, Figure]]:
    """(Markdown of reports/kernels.md, {png name: Figure}) from (source label, pytest-benchmark JSON)
    pairs. Each (device, dtype) found gets its tables and figures; without a CUDA run the GPU section says
    the figures are not measured yet."""
    md = ["# Kernel benchmarks", "",
          "What an SLAF costs against the activations it replaces: the SLAF op per backend and degree beside "
          "the native activations, a copy of the same tensor (the roofline) and the naive eager polynomial, "
          "forward and forward+backward; then a real layer. Ratios between benchmarks of the same run hold "
          "across machines; absolute times do not.", ""]
    md += ["Runs: " + "; ".join(f"`{src}` ({_date(run)}, torch {_torch(run)})" for src, run in runs) + ".",
           ""] if runs else ["No runs.", ""]
    figures: dict[str, Figure] = {}
    if results:
        md += ["## Budgets", "", f"From `{budgets_source}`: ratios within one run (and the fitting engine's "
               "seconds, for a 2-core machine).", "", budget_table(results)]
    if comparison:
        md += ["## Against the last saved run", "", comparison]
    have_gpu = False
    for src, run in runs:
        recs = records(run)
        for device, dtype in kernel_sections(recs):
            have_gpu |= device == "cuda"
            tag = f"{device}_{dtype}"
            title = "CPU" if device == "cpu" else "GPU"
            md += [f"## {title}: {dtype}", "",
                   f"**Device:** {_machine(run, device)}. **dtype:** {dtype}. **Date:** {_date(run)}. "
                   f"**torch** {_torch(run)}. Source `{src}`.", ""]
            md += ["### Throughput", "",
                   "Median time · GB/s · fraction of the copy's GB/s (the roofline), per size in elements.",
                   ""]
            for mode in MODES:
                t = throughput_table(recs, device, dtype, mode)
                if t:
                    md += [f"{mode}:", "", t]
            figures[f"kernels_throughput_{tag}.png"] = throughput_figure(recs, device, dtype)
            md += [f"![throughput against size, {device} {dtype}](kernels_throughput_{tag}.png)", ""]
            t = speedup_table(recs, device, dtype)
            if t:
                figures[f"kernels_speedup_{tag}.png"] = speedup_figure(recs, device, dtype)
                md += ["### Speedup over the naive polynomial", "",
                       "Median time of the naive eager polynomial / the SLAF backend's, same degree, size "
                       "and mode.", "", t, f"![speedup over the naive polynomial](kernels_speedup_{tag}.png)",
                       ""]
            t = memory_table(recs, device, dtype)
            if t:
                figures[f"kernels_memory_{tag}.png"] = memory_figure(recs, device, dtype)
                md += ["### Peak memory", "", "MiB of one call (and its ratio to GELU's in the same mode and "
                       "size); see Method.", "", t,
                       f"![peak memory against degree](kernels_memory_{tag}.png)", ""]
            t = layer_table(recs, device, dtype)
            if t:
                md += ["### A real layer", "", "Per-channel SLAF (initialised as GELU's least-squares fit) "
                       "beside nn.GELU on a (batch, channels, height, width) activation.", "", t]
    if not have_gpu:
        md += ["## GPU", "", GPU_NOT_MEASURED, ""]
    md += ["## Method", ""] + [f"- {m}" for m in METHOD_NOTES] + [""]
    return "\n".join(md).rstrip() + "\n", figures


def fit_markdown(run: Mapping, results: Sequence[BudgetResult]) -> str:
    """reports/bench/fit.md: the fitting-engine benchmarks of a run and the budgets table (embedded in
    reports/README.md by report.write_report)."""
    mi = run.get("machine_info") or {}
    cpu = (mi.get("cpu") or {}).get("brand_raw", mi.get("processor", "?"))
    recs = [r for r in records(run) if r.get("op") is None]
    remez = [r for r in recs if r["test"] == "test_remez"]
    lines = [f"Machine: {mi.get('node', '?')} ({cpu}), python {mi.get('python_version', '?')}; "
             f"run {_date(run)}. Kernel benchmarks: reports/kernels.md.", "",
             "| benchmark | median | rounds |", "|---|---:|---:|"]
    lines += [f"| {r['name']} | {_ms(r)} | {r.get('rounds') or '–'} |" for r in recs
              if r["test"] != "test_remez"]
    if remez:
        degrees = sorted({r["degree"] for r in remez})
        lines += ["", "One Remez fit on [-3, 3] by degree (Chebyshev basis): median time and exchange "
                  "iterations.", "",
                  "| target | " + " | ".join(f"n = {d}" for d in degrees) + " |",
                  "|---|" + "---:|" * len(degrees)]
        for t in dict.fromkeys(r["target"] for r in remez):
            cells = []
            for d in degrees:
                r = _one(remez, target=t, degree=d)
                cells.append(f"{_ms(r)} ({r.get('iterations', '?')} iterations)" if r else "–")
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + budget_table(results)


def write_kernel_report(runs: Sequence[tuple[str, Mapping]], outdir, results: Sequence[BudgetResult] = (),
                        **kwargs) -> Path:
    """Write kernels.md and its PNGs into `outdir` (each through a temporary file and os.replace)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    md, figures = kernel_report(runs, results, **kwargs)
    for name, fig in figures.items():
        save_figure(fig, outdir / name, DPI)
    path = outdir / "kernels.md"
    atomic_write(path, md.encode("utf-8"))
    return path


def write_text(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))
    return path


# ----------------------------------------------------------------------------------------------------
# The pytest command of `slaf-approx bench`
# ----------------------------------------------------------------------------------------------------
@dataclass
class BenchCommand:
    argv: list[str]
    json_path: Path
    storage: Path
    compared: Path | None = None
    notes: list[str] = field(default_factory=list)


def pytest_command(root, settings: BenchSettings, json_path, *, check: bool = False,
                   compare_fail: str = "median:10%", quick: bool = False, python: str = "python",
                   deadline: float | None = None, fit: bool = True, extra: Sequence[str] = (),
                   storage: Path | None = None) -> BenchCommand:
    """The pytest command line that times the suite (from the repository root `root`): the kernel
    benchmarks, and on CPU with `fit` the fitting engine's. It saves the run (--benchmark-autosave) unless
    `check`; with `check` it compares against the last saved run of this host and device, when there is one
    (--benchmark-compare, --benchmark-compare-fail). `quick` leaves out the default sweep; `deadline` skips
    the benchmarks left after that many seconds; `extra`: more pytest arguments; `storage`: the saved runs'
    folder (default storage_path(root, device))."""
    root = Path(root)
    files = ["bench/test_bench_kernels.py"]
    if fit and settings.device == "cpu":  # the fitting engine runs on the CPU whatever the device
        files.append("bench/test_bench_fit.py")
    storage = storage or storage_path(root, settings.device)
    argv = [python, "-m", "pytest", *files, "-p", "no:cacheprovider", "-q", "--benchmark-only",
            f"--benchmark-json={json_path}", f"--benchmark-storage=file://{storage}",
            "--bench-device", settings.device, "--bench-dtype", ",".join(settings.dtypes),
            "--bench-sizes", ",".join(map(str, settings.sizes)),
            "--bench-backends", ",".join(settings.backends),
            "--bench-degrees", ",".join(map(str, settings.degrees)),
            "--bench-rounds", str(settings.rounds), "--bench-warmup", str(settings.warmup)]
    if quick:
        argv += ["-k", "not test_default_sweep"]
    if deadline is not None:
        argv += ["--bench-deadline", f"{deadline:g}"]
    argv += list(extra)
    cmd = BenchCommand(argv, Path(json_path), storage)
    if check:
        cmd.compared = latest_saved(storage)
        if cmd.compared is None:
            cmd.notes.append(f"no saved run under {storage} to compare with (`slaf-approx bench` saves one); "
                             "checking the budgets only")
        else:
            argv += ["--benchmark-compare", f"--benchmark-compare-fail={compare_fail}"]
    else:
        argv.append("--benchmark-autosave")
    return cmd


def short_summary(run: Mapping, results: Sequence[BudgetResult] = ()) -> str:
    """Plain text, a few lines per (device, dtype): at the largest size, each SLAF backend and degree's GB/s,
    fraction of the copy and speedup over the naive polynomial; then the budgets that were measured."""
    recs = records(run)
    lines = []
    for device, dtype in kernel_sections(recs):
        rs = select(recs, device=device, dtype=dtype)
        sizes = [r["size"] for r in rs if r.get("op") == "slaf"]
        if not sizes:
            continue
        size = max(sizes)
        copy = _one(rs, op="copy", size=size)
        lines.append(f"{device} {dtype}, {size_label(size)} elements (copy: "
                     f"{_gbps(copy.get('gbps')) if copy else '–'} GB/s)")
        lines.append(f"  {'backend':<10} {'deg':>3} {'mode':<17} {'median ms':>10} {'GB/s':>8} {'x copy':>7} "
                     f"{'x naive':>8}")
        sp = {(s["backend"], s["degree"], s["mode"]): s["speedup"] for s in speedups(rs, device, dtype)
              if s["size"] == size}
        for r in sorted(select(rs, op="slaf", size=size),
                        key=lambda r: (_op_order(r), MODES.index(r["mode"]))):
            if not r.get("median"):
                continue
            frac = f"{r['copy_fraction']:.2f}" if r.get("copy_fraction") else "–"
            speed = sp.get((r["backend"], r["degree"], r["mode"]))
            lines.append(f"  {r['backend']:<10} {r['degree']:>3} {r['mode']:<17} {r['median'] * 1e3:>10.4g} "
                         f"{r['gbps']:>8.4g} {frac:>7} {f'{speed:.3g}' if speed else '–':>8}")
    measured = [r for r in results if r.status != "not measured"]
    if measured:
        lines.append("budgets:")
        for r in measured:
            value = "–" if r.value is None else f"{r.value:.3g}"
            lines.append(f"  {r.budget.name:<34} {value:>8} {r.budget.limit():<12} {r.status}")
    return "\n".join(lines) + "\n" if lines else "no kernel benchmarks in this run\n"


# ----------------------------------------------------------------------------------------------------
# The short kernel section of `slaf-approx run`
# ----------------------------------------------------------------------------------------------------
def quick_kernel_table(size: int = 2**20, degree: int = 8, min_run_time: float = 0.1) -> str:
    """Markdown: fused and reference SLAF, the naive polynomial, GELU and the copy on CPU float32 at one
    size, forward and forward+backward, timed by torch.utils.benchmark.Timer (median of blocked_autorange,
    all torch threads). A few seconds."""
    import torch
    from torch.utils.benchmark import Timer

    from .kernels import available_backends

    x, gy = make_input(size, "float32", "cpu")
    have = available_backends(x)
    cases = [("copy", "torch"), ("gelu", "torch"), ("slaf", "fused"), ("slaf", "reference"),
             ("naive", "torch")]
    rows, notes = [], []
    for mode in MODES:
        for op, bk in cases:
            if op == "copy" and mode != "forward":
                continue
            if op == "slaf" and bk not in have:
                if mode == "forward":
                    notes.append(f"backend {bk} unavailable on this machine")
                continue
            deg = degree if op in ("slaf", "naive") else None
            fn = kernel_fn(op, mode, x, gy, backend=bk if op == "slaf" else None, degree=deg)
            fn()
            t = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
                min_run_time=min_run_time).median
            rows.append({"op": op, "backend": bk, "mode": mode, "degree": deg, "median": t,
                         "gbps": bytes_moved(size, "float32", mode, op) / t / 1e9})
    copy = _one(rows, op="copy")
    lines = [f"CPU, float32, {size_label(size)} elements, degree {degree} (Chebyshev), "
             f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; medians of "
             "torch.utils.benchmark. The full suite and its budgets: `slaf-approx bench` "
             "(reports/kernels.md).", "",
             "| op | backend | mode | median | GB/s | × copy | × GELU time |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        g = _one(rows, op="gelu", mode=r["mode"])
        frac = _frac(r["gbps"] / copy["gbps"]) if copy else "–"
        vs = f"{r['median'] / g['median']:.3g}×" if g else "–"
        name = f"{r['op']} (degree {r['degree']})" if r["degree"] else r["op"]
        lines.append(f"| {name} | {r['backend']} | {r['mode']} | {r['median'] * 1e3:.3g} ms | "
                     f"{r['gbps']:.3g} | {frac} | {vs} |")
    if notes:
        lines += ["", "Not timed: " + "; ".join(notes) + "."]
    return "\n".join(lines) + "\n"
