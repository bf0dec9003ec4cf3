"""Deterministic cost counts: the instructions each CPU kernel call and each fitting routine executes.

Wall-clock time on a shared machine moves with its load; the number of instructions a single-threaded call
executes does not. `run` starts one child Python under valgrind's callgrind with instrumentation and
collection off, so interpreter start-up, imports, inputs, kernel builds and torch.compile run at valgrind's
uninstrumented speed and count nothing. The child first sets up every benchmark and calls it twice (caches,
lazy initialisation and CPython's specialisation warm), then, for each in turn: one more warm call, a full
garbage collection and ``gc.freeze()`` (so what earlier benchmarks left alive is not traversed by this one's
collections), and the counted call, bracketed by callgrind client requests from a small C probe compiled
against ``valgrind/callgrind.h``: start instrumentation, zero, collect, call, stop collecting, dump under the
benchmark's index. Instrumentation stays on between consecutive eager kernel calls (restarting it
retranslates everything) and is stopped before the heavy set-up of fits and compiled calls.

Determinism: one thread everywhere (torch, OpenMP, OpenBLAS), a fixed hash seed, seeded inputs, a fixed
environment and argv, and valgrind, which runs the client serially: the machine's load does not enter a
count. Two processes still differ by up to ~0.2% (measured at 2^16 elements and in a small fit): object
addresses, and with them identity-hashed dict probes and malloc's bins, follow the set-up's allocations,
which follow inputs such as /proc/cpuinfo; the 2% threshold is well above that. What changes a count is
the code and the build (kernel source and flags), the tools and libraries and the CPU model (which ISA torch
and OpenBLAS dispatch to): the latter form the baseline key (`KEY_FIELDS`). The selection matters too (a
count moves by up to a few per cent for the smallest calls with what else the process set up), so a baseline
is kept per selection.

valgrind 3.19 decodes x86-64 up to AVX2/FMA but not AVX-512, and reports a CPU without it; so torch and
OpenBLAS dispatch to their AVX2 code under valgrind, and the fused kernel is counted as built with
``-march=x86-64-v3`` (`COUNT_CFLAGS`, put before ``$SLAF_APPROX_CFLAGS`` so a user's flags still win), as is
the torch.compile peer (``TORCHINDUCTOR_CPP_MARCH``). The counts describe that build, not the
``-march=native`` one a plain run on an AVX-512 machine uses.

Output: ``counts.json`` = {"format", "key", "selection", "meta": {...}, "benchmarks": {name: {"instructions":
int, ...}}}
(kernels also carry "per_element", "backend", "degree", "mode", "size", "dtype"; fits "method", "target",
"degree", "basis"), and ``counts.md``; a baseline is the same object in STORAGE/KEY/SELECTION.json.
`compare` checks a run against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write
from .._markdown import table

FORMAT = "slaf-approx counts 1"
SIZE = 2**16
DTYPE = "float32"
DEGREES = (2, 4, 8, 16)  # as the timed suite; any of 1..64 with --degrees
MODES = ("forward", "forward+backward")
MODE_IDS = {"forward": "fwd", "forward+backward": "fwdbwd"}
#: "compiled" is torch.compile (inductor) of a Horner polynomial: the generic compiler's answer to the op
BACKENDS = ("reference", "fused", "compiled")
#: (method, target, degree): one fit of each of the fitting engine's main routines on [-3, 3]
FITS = (("lstsq", "gelu", 8), ("minimax", "gelu", 8), ("rational", "gelu", 8),
        ("rational-minimax", "gelu", 8))
FIT_BASIS, INTERVAL = "chebyshev", (-3.0, 3.0)
#: an increase above this fraction of the baseline is a regression
THRESHOLD = 0.02
#: the ISA valgrind can run (see the module docstring); x86-64 only, other machines build as usual
COUNT_CFLAGS = ("-march=x86-64-v3",) if platform.machine() in ("x86_64", "AMD64") else ()
COUNT_MARCH = "x86-64-v3" if COUNT_CFLAGS else None
#: all the child inherits: any other variable (pytest's PYTEST_CURRENT_TEST, say) would move the counts, as
#: the environment's size and content change the interpreter's allocations and dictionaries
_INHERIT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CC", "CXX", "PYTHONPATH", "LD_LIBRARY_PATH",
            "VALGRIND_LIB", "SLAF_APPROX_CACHE", "SLAF_APPROX_TARGETS", "SLAF_APPROX_CFLAGS",
            "TORCHINDUCTOR_CACHE_DIR")
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "TORCHINDUCTOR_COMPILE_THREADS": "1"}

_PROBE_C = r"""
#include <valgrind/callgrind.h>
int perfcounts_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
void perfcounts_begin(void) {
    CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; CALLGRIND_TOGGLE_COLLECT;
}
void perfcounts_end(const char *name, int stop) {
    CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT(name);
    if (stop) CALLGRIND_STOP_INSTRUMENTATION;
}
"""


class CountsError(RuntimeError):
    """The counts could not be taken (valgrind, gcc or the headers missing, a benchmark crashed)."""


@dataclass(frozen=True)
class Bench:
    """One counted call: a kernel (backend, degree, mode) or a fit (method, target, degree)."""

    kind: str
    name: str
    params: dict


def kernel_name(backend: str, degree: int, mode: str) -> str:
    return f"kernel/{backend}/deg{degree:02d}/{MODE_IDS[mode]}"


def default_backends() -> tuple[str, ...]:
    """All of `BACKENDS`, less "compiled" where inductor has no C++ compiler ($CXX or g++) to build with."""
    have_cxx = shutil.which(os.environ.get("CXX") or "g++") is not None
    return tuple(b for b in BACKENDS if b != "compiled" or have_cxx)


def plan(backends: Sequence[str] | None = None, degrees: Sequence[int] = DEGREES,
         fits: bool = True) -> list[Bench]:
    """The benchmarks of a counts run, in run order; ValueError for an unknown backend or a bad degree.
    `backends` None: `default_backends()`."""
    backends = default_backends() if backends is None else backends
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise ValueError(f"unknown counts backend {bad[0]!r}; allowed: {', '.join(BACKENDS)}")
    bad = [d for d in degrees if not (isinstance(d, int) and 1 <= d <= 64)]
    if bad:
        raise ValueError(f"counts degree {bad[0]!r} is out of range; allowed: integers 1 to 64")
    out = [Bench("kernel", kernel_name(b, d, m), {"backend": b, "degree": d, "mode": m, "size": SIZE,
                                                  "dtype": DTYPE})
           for b in dict.fromkeys(backends) for d in dict.fromkeys(degrees) for m in MODES]
    if fits:
        out += [Bench("fit", f"fit/{method}/{target}/deg{deg:02d}",
                      {"method": method, "target": target, "degree": deg, "basis": FIT_BASIS})
                for method, target, deg in FITS]
    return out


# ----------------------------------------------------------------------------------------------------
# The machine and the tools: what a count depends on besides the code
# ----------------------------------------------------------------------------------------------------
def _first_line(argv: Sequence[str]) -> str:
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (res.stdout or res.stderr).strip().splitlines()[0] if (res.stdout or res.stderr).strip() else "?"


def _cpu_model() -> tuple[str, str]:
    """(model name, sha256 of the feature flags) from /proc/cpuinfo, or what platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return platform.processor() or "unknown", ""
    field = {}
    for ln in lines:
        k, _, v = ln.partition(":")
        field.setdefault(k.strip(), v.strip())
    flags = field.get("flags") or field.get("Features") or ""
    model = field.get("model name") or field.get("CPU part") or "unknown"
    return model, hashlib.sha256(flags.encode()).hexdigest()


KEY_FIELDS = ("machine", "cpu", "cpu_flags_sha256", "gcc", "valgrind", "python", "torch", "numpy", "scipy",
              "count_march")


def key_fields() -> dict:
    """What, besides the code, decides a count: the baseline of a `--check` must match all of it."""
    from importlib.metadata import PackageNotFoundError, version

    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    model, flags = _cpu_model()
    return {"machine": platform.machine(), "cpu": model, "cpu_flags_sha256": flags,
            "gcc": _first_line(["gcc", "--version"]), "valgrind": _first_line(["valgrind", "--version"]),
            "python": platform.python_version(), "torch": ver("torch"), "numpy": ver("numpy"),
            "scipy": ver("scipy"), "count_march": COUNT_MARCH}


def machine_key(fields: Mapping) -> str:
    """A file-name-safe key: machine and gcc version for people, a hash of every field for equality."""
    versions = re.findall(r"\d+(?:\.\d+)+", str(fields.get("gcc", "")))
    digest = hashlib.sha256(json.dumps(dict(fields), sort_keys=True).encode()).hexdigest()[:12]
    machine = re.sub(r"[^A-Za-z0-9_.]+", "_", str(fields.get("machine") or "unknown"))
    return f"{machine}-gcc{versions[-1] if versions else 'unknown'}-{digest}"


def require_tools() -> None:
    """CountsError naming what is missing: valgrind, gcc, or valgrind's callgrind.h."""
    if shutil.which("valgrind") is None:
        raise CountsError("bench --counts needs valgrind, which is not on PATH (Debian/Ubuntu: "
                          "apt-get install valgrind)")
    if shutil.which("gcc") is None:
        raise CountsError("bench --counts needs gcc, which is not on PATH (Debian/Ubuntu: "
                          "apt-get install gcc)")


def _probe(cache: Path) -> Path:
    """The client-request probe library, built once per gcc and header into `cache`."""
    key = hashlib.sha256(_PROBE_C.encode() + _first_line(["gcc", "--version"]).encode()).hexdigest()[:16]
    target = cache / f"perfcounts_probe_{key}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        src, lib = Path(tmp) / "probe.c", Path(tmp) / "probe.so"
        src.write_text(_PROBE_C)
        res = subprocess.run(["gcc", "-O1", "-fPIC", "-shared", str(src), "-o", str(lib)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            why = next((ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr.strip()[:200])
            raise CountsError(f"cannot build the callgrind probe (are valgrind's headers installed? Debian's "
                              f"valgrind package has /usr/include/valgrind/callgrind.h): {why}")
        os.replace(lib, target)
    return target


# ----------------------------------------------------------------------------------------------------
# The parent: run the child under callgrind and read its dumps
# ----------------------------------------------------------------------------------------------------
def _cache_dir() -> Path:
    return Path(os.environ.get("SLAF_APPROX_CACHE") or Path.home() / ".cache" / "slaf_approx")


def child_env(base: Mapping[str, str] | None = None) -> dict:
    """The child's environment: `_INHERIT` from `base` (default os.environ), one thread everywhere, a fixed
    hash seed, the valgrind-runnable ISA."""
    base = os.environ if base is None else base
    env = {k: base[k] for k in _INHERIT if k in base}
    env.update(_ONE_THREAD)
    env["PYTHONHASHSEED"] = "0"
    if COUNT_CFLAGS:
        user = shlex.split(env.get("SLAF_APPROX_CFLAGS", ""))
        env["SLAF_APPROX_CFLAGS"] = shlex.join([*COUNT_CFLAGS, *user])
        env["TORCHINDUCTOR_CPP_MARCH"] = COUNT_MARCH
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_cache_dir() / "inductor"))
    return env


def _read_dumps(folder: Path) -> dict[str, int]:
    """{dump name: instructions} from callgrind's dump files (`desc: Trigger: Client Request: NAME`)."""
    out = {}
    for path in sorted(folder.glob("callgrind.out.*")):
        name = total = None
        with open(path, errors="replace") as fh:
            for ln in fh:
                if ln.startswith("desc: Trigger: Client Request: "):
                    name = ln.split(":", 3)[3].strip()
                elif ln.startswith(("summary:", "totals:")):
                    total = int(ln.split()[1])
                    break
        if name is not None and total is not None:
            out[name] = total
    return out


def run(benches: Sequence[Bench], timeout: float = 1800.0) -> tuple[dict, dict]:
    """Count `benches` under callgrind: ({name: entry}, meta). CountsError if the counts cannot be taken."""
    require_tools()
    probe = _probe(_cache_dir())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slaf-counts-") as tmp:
        # the spec goes in on stdin: a path in argv would differ from run to run
        spec = json.dumps({"probe": str(probe), "benches": [[b.kind, b.params] for b in benches]})
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
                f"--callgrind-out-file={tmp}/callgrind.out", "--dump-instr=no", "--dump-line=no",
                sys.executable, "-m", __name__]
        try:
            res = subprocess.run(argv, env=child_env(), input=spec, capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CountsError(f"the counts run took longer than {timeout:g} s under valgrind") from None
        if res.returncode != 0:
            lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("==")]
            vg = [ln for ln in res.stderr.splitlines() if "Illegal" in ln or "unhandled instruction" in ln]
            why = (vg or lines or ["no output"])[-1].strip()
            raise CountsError(f"the counts child under valgrind exited with status {res.returncode}: {why}")
        dumps = _read_dumps(Path(tmp))
        child_meta = json.loads(res.stdout.strip().splitlines()[-1])
    counts = {}
    for i, b in enumerate(benches):
        n = dumps.get(f"bench-{i}")
        if n is None:
            raise CountsError(f"callgrind wrote no count for {b.name}")
        entry = {"instructions": n, "kind": b.kind, **b.params}
        if b.kind == "kernel":
            entry["per_element"] = n / b.params["size"]
        counts[b.name] = entry
    meta = {**key_fields(), "seconds": round(time.perf_counter() - started, 1), "threads": 1,
            "cflags": child_env().get("SLAF_APPROX_CFLAGS", ""),
            **child_meta}
    return counts, meta


def selection_id(names: Sequence[str]) -> str:
    """"default" for the default plan, else a hash of the names: a count depends a little (up to a few per
    cent for the smallest calls) on what else the run set up, so a baseline is only compared with a run of the
    same selection."""
    if list(names) == [b.name for b in plan()]:
        return "default"
    return "sel-" + hashlib.sha256("\n".join(names).encode()).hexdigest()[:10]


def document(counts: Mapping, meta: Mapping, benches: Sequence[Bench]) -> dict:
    """The counts.json object (also what a baseline holds)."""
    names = [b.name for b in benches]
    return {"format": FORMAT, "key": machine_key({k: meta.get(k) for k in KEY_FIELDS}),
            "selection": selection_id(names), "meta": dict(meta), "benchmarks": dict(counts)}


def baseline_path(storage, doc: Mapping) -> Path:
    """Where the baseline of this machine and tools (the key) and selection lives under `storage`."""
    return Path(storage) / doc["key"] / f"{doc['selection']}.json"


def save(doc: Mapping, path) -> Path:
    return atomic_write(path, json.dumps(doc, indent=1) + "\n")


def save_history(storage, doc: Mapping) -> Path:
    """Keep `doc` with the commit it counted (and the time) as STORAGE/KEY/runs/NNNN_COMMIT.json, for
    `slaf-approx bench --history`; the baseline stays one file per selection."""
    from datetime import UTC, datetime

    from .runs import code_version

    folder = Path(storage) / doc["key"] / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.json"))
    n = int(files[-1].name[:4]) + 1 if files else 1
    version = code_version()
    kept = {**doc, "slaf_approx": version, "datetime": datetime.now(UTC).isoformat(timespec="seconds")}
    return save(kept, folder / f"{n:04d}_{(version.get('commit') or 'unknown')[:10]}.json")


def load(path) -> dict:
    """A counts.json or a saved baseline, checked for its format; ValueError naming the file otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read counts file {path}: {exc}") from None
    ok = isinstance(doc, dict) and doc.get("format") == FORMAT
    if not ok or not isinstance(doc.get("benchmarks"), dict):
        raise ValueError(f"{path} is not a counts file of format {FORMAT!r}")
    for name, e in doc["benchmarks"].items():
        if not isinstance(e, dict) or not isinstance(e.get("instructions"), int) or e["instructions"] < 0:
            raise ValueError(f"{path}: benchmark {name!r} has no non-negative integer 'instructions'")
    return doc


def write(doc: Mapping, outdir) -> tuple[Path, Path]:
    """DIR/counts.json and DIR/counts.md, each written atomically."""
    outdir = Path(outdir)
    j = save(doc, outdir / "counts.json")
    m = atomic_write(outdir / "counts.md", markdown(doc))
    return j, m


# ----------------------------------------------------------------------------------------------------
# Tables and the check
# ----------------------------------------------------------------------------------------------------
def _int(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def kernel_table(benchmarks: Mapping) -> str:
    """Instructions per element: one row per degree, one column per backend and mode."""
    ks = [e for e in benchmarks.values() if e.get("kind") == "kernel"]
    if not ks:
        return ""
    cols = [(b, m) for m in MODES for b in BACKENDS if any(e["backend"] == b and e["mode"] == m for e in ks)]
    cell = {(e["backend"], e["mode"], e["degree"]): e["per_element"] for e in ks}
    rows = [[d, *(f"{cell[(b, m, d)]:.2f}" if (b, m, d) in cell else "–" for b, m in cols)]
            for d in sorted({e["degree"] for e in ks})]
    return table(["degree", *(f"{b} {MODE_IDS[m]}" for b, m in cols)], rows)


def fit_table(benchmarks: Mapping) -> str:
    fs = [(n, e) for n, e in benchmarks.items() if e.get("kind") == "fit"]
    if not fs:
        return ""
    return table(["fit", "method", "target", "degree", "instructions"],
                 [[n, e["method"], e["target"], e["degree"], _int(e["instructions"])] for n, e in fs],
                 "lllrr")


def summary(doc: Mapping) -> str:
    """The tables of counts.md, for the terminal."""
    return "\n".join(t for t in (kernel_table(doc["benchmarks"]), fit_table(doc["benchmarks"])) if t)


def markdown(doc: Mapping) -> str:
    meta = doc.get("meta", {})
    size = next((e["size"] for e in doc["benchmarks"].values() if e.get("kind") == "kernel"), SIZE)
    lines = ["# Instruction counts (valgrind callgrind)", "",
             f"Instructions executed by one warm call, one thread, counted by callgrind (`slaf-approx bench "
             f"--counts`); the same build and inputs give the same count whatever the machine's load. Key "
             f"`{doc.get('key')}`: {meta.get('cpu')}, {meta.get('gcc')}, {meta.get('valgrind')}, Python "
             f"{meta.get('python')}, torch {meta.get('torch')}; kernel flags appended: "
             f"`{meta.get('cflags') or '(none)'}`.", ""]
    kt = kernel_table(doc["benchmarks"])
    if kt:
        lines += [f"## Kernels: instructions per element ({size} {DTYPE} elements, Chebyshev basis)", "",
                  "Each count covers the whole Python call (`kernels.slaf` or the compiled function; fwdbwd: "
                  "forward and `torch.autograd.grad` of x and the coefficients).", "", kt]
    ft = fit_table(doc["benchmarks"])
    if ft:
        lines += [f"## Fitting engine (Chebyshev basis on [{INTERVAL[0]:g}, {INTERVAL[1]:g}])", "", ft]
    lines.append(f"Counted in {meta.get('seconds', '?')} s of wall-clock time, including valgrind's "
                 "start-up.")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Change:
    name: str
    old: int | None
    new: int | None

    @property
    def ratio(self) -> float | None:
        return None if self.old in (None, 0) or self.new is None else self.new / self.old - 1.0

    def regressed(self, threshold: float) -> bool:
        """More than `threshold` (a fraction) above the baseline; in integers, so +2.0% passes a 2% limit."""
        return self.ratio is not None and self.new - self.old > threshold * self.old


def compare(new: Mapping, old: Mapping) -> list[Change]:
    """One Change per benchmark in either run (new order first, then those only in the baseline)."""
    nb, ob = new["benchmarks"], old["benchmarks"]
    names = list(nb) + [n for n in ob if n not in nb]
    return [Change(n, ob.get(n, {}).get("instructions"), nb.get(n, {}).get("instructions")) for n in names]


def compare_table(changes: Sequence[Change], threshold: float) -> str:
    def verdict(c: Change) -> str:
        if c.old is None:
            return "new (no baseline)"
        if c.new is None:
            return "not run"
        return "REGRESSED" if c.regressed(threshold) else ("better" if c.new < c.old else "ok")

    rows = [[c.name, "–" if c.old is None else _int(c.old), "–" if c.new is None else _int(c.new),
             "–" if c.ratio is None else f"{c.ratio:+.3%}", verdict(c)] for c in changes]
    header = ["benchmark", "old", "new", "change", f"verdict (limit +{100 * threshold:g}%)"]
    return table(header, rows, "lrrrl")


# ----------------------------------------------------------------------------------------------------
# The child (runs under valgrind): build each benchmark's call, warm it, count one call
# ----------------------------------------------------------------------------------------------------
def _inputs(size: int, dtype: str):
    import torch

    g = torch.Generator().manual_seed(0)
    lo, hi = INTERVAL
    x = torch.rand(size, generator=g, dtype=torch.float32).mul_(hi - lo).add_(lo)
    gy = torch.randn(size, generator=g, dtype=torch.float32)
    return x.to(getattr(torch, dtype)), gy.to(getattr(torch, dtype))


def _coefficients(K: int, like):
    import torch

    g = torch.Generator().manual_seed(K)
    return (torch.randn(K, generator=g, dtype=torch.float64) / K).to(like.dtype)


def _horner(x, c, scale: float, shift: float):
    """sum_k c_k t^k, t = scale x + shift, by Horner's rule: what torch.compile fuses into one loop."""
    t = x * scale + shift
    y = c[-1] * t
    for k in range(c.shape[0] - 2, 0, -1):
        y = (y + c[k]) * t
    return y + c[0]


def _kernel_call(p: Mapping, inputs):
    import torch

    from ..kernels import available_backends, slaf

    x, gy = inputs
    lo, hi = INTERVAL
    scale, shift = 2.0 / (hi - lo), -(lo + hi) / (hi - lo)
    coef = _coefficients(p["degree"] + 1, x)
    backend = p["backend"]
    if backend == "compiled":
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        compiled = torch.compile(_horner, fullgraph=True, dynamic=False)

        def f(v, c):
            return compiled(v, c, scale, shift)
    else:
        if backend not in available_backends(x):
            raise CountsError(f"backend {backend!r} cannot run {p['dtype']} on this machine; available: "
                              f"{', '.join(available_backends(x))}")

        def f(v, c):
            return slaf(v, c, "chebyshev", scale, shift, False, -1.0, 1.0, backend)

    if p["mode"] == "forward":
        def call():
            with torch.no_grad():
                return f(x, coef)
        return call
    xg, cg = x.detach().requires_grad_(True), coef.detach().requires_grad_(True)

    def call_backward():
        return torch.autograd.grad(f(xg, cg), [xg, cg], gy)
    return call_backward


def _fit_call(p: Mapping):
    from ..fit import fit

    return lambda: fit(p["target"], p["degree"], p["method"], p["basis"], INTERVAL)


def _light(bench) -> bool:
    """A kernel call of an eager backend: cheap to set up and warm even with instrumentation on, which then
    stays on (restarting it retranslates everything, the largest cost of a counts run)."""
    kind, p = bench
    return kind == "kernel" and p["backend"] != "compiled"


def child_main(spec_text: str) -> int:
    """Count the spec's benchmarks (run by `run` under callgrind): set everything up and warm it first,
    uninstrumented, then count one call of each, each right after one more warm call."""
    import ctypes
    import gc
    import resource

    spec = json.loads(spec_text)
    probe = ctypes.CDLL(spec["probe"])
    probe.perfcounts_end.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if not probe.perfcounts_on_valgrind():
        raise CountsError("the counts child must run under valgrind --tool=callgrind")
    clock = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    seconds = {"import": time.perf_counter() - clock}
    clock = time.perf_counter()
    benches, inputs, calls = spec["benches"], {}, []
    for kind, p in benches:
        if kind == "kernel":
            key = (p["size"], p["dtype"])
            inputs.setdefault(key, _inputs(*key))
            call = _kernel_call(p, inputs[key])
        else:
            call = _fit_call(p)
        call()
        call()
        calls.append(call)
    seconds["setup"] = time.perf_counter() - clock
    clock = time.perf_counter()
    for i, call in enumerate(calls):
        call()
        gc.collect()
        gc.freeze()  # what earlier benchmarks left alive is not traversed by this one's collections
        keep = _light(benches[i]) and i + 1 < len(benches) and _light(benches[i + 1])
        probe.perfcounts_begin()
        call()
        probe.perfcounts_end(f"bench-{i}".encode(), int(not keep))
    seconds["count"] = time.perf_counter() - clock
    seconds["cpu"] = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    print(json.dumps({"torch_threads": torch.get_num_threads(), "child_seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.stdin.read()))
