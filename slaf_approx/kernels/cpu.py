"""The fused CPU kernel of the SLAF op: ``cpu.c`` built with gcc at first use and called through ctypes.

The shared library is cached in ``$SLAF_APPROX_CACHE`` (default ``~/.cache/slaf_approx``) under a name keyed
by a hash of the source text, the compiler flags (with ``$SLAF_APPROX_CFLAGS``, shell-split and appended
after ours, so a later ``-march=`` or ``-O`` wins), the gcc version, the machine and the CPU model and flags,
so a stale or foreign build is never reused. It is written under a temporary name and moved into place with
``os.replace``, so concurrent builds cannot corrupt each other. If gcc is missing or fails, ``available()`` is
False and ``load()`` raises RuntimeError with the compiler's first error line.

Layout (prepared by the caller): x2d contiguous [rows, S] float32/float64, row r uses coefficient row r % C of
coef [C, K]; A, B [K] hold the basis recurrence phi_(k+1) = A_k t phi_k - B_k phi_(k-1). The number of OpenMP
threads follows ``torch.get_num_threads()``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().with_name("cpu.c")
BASE_FLAGS = ("-O3", "-fPIC", "-shared", "-std=c11", "-ffp-contract=fast")
# tried in this order; the last one without OpenMP threads (one thread, still vectorised)
VARIANTS = (("-march=native", "-fopenmp"), ("-fopenmp",), ("-fopenmp-simd",))

_ERRORS = {1: "a required pointer is NULL", 2: "bad sizes (rows, S, C, K)", 3: "out of memory",
           4: "A[k] == 0 for some k < K-1: not a polynomial basis"}
_DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("SLAF_APPROX_CACHE") or Path.home() / ".cache" / "slaf_approx")


def extra_flags() -> tuple[str, ...]:
    """``$SLAF_APPROX_CFLAGS`` shell-split, appended to every build's flags (RuntimeError: bad syntax)."""
    text = os.environ.get("SLAF_APPROX_CFLAGS", "")
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise RuntimeError(f"SLAF_APPROX_CFLAGS={text!r} is not shell syntax: {exc}") from None


def _cpu_id() -> str:
    """The CPU model and feature flags (what -march=native depends on), if /proc/cpuinfo says."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return platform.processor()
    keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part")]
    return "\n".join(dict.fromkeys(keep))  # first of each distinct line


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "no output")


def _build_and_load() -> ctypes.CDLL:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("the SLAF CPU kernel needs gcc, which is not on PATH")
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    source = SOURCE.read_bytes()
    extra = extra_flags()
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    first_failure = None
    for variant in VARIANTS:
        flags = [*BASE_FLAGS, *variant, *extra]
        key = hashlib.sha256(b"\0".join([source, " ".join(flags).encode(), "".join(version).encode(),
                                         platform.machine().encode(), _cpu_id().encode()])).hexdigest()[:20]
        target = folder / f"slaf_cpu_{key}.so"
        if not target.exists():
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            try:
                # an absolute source path: cpu.c includes itself through __FILE__
                res = subprocess.run([gcc, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True)
                if res.returncode != 0:
                    first_failure = first_failure or f"gcc {' '.join(flags)}: {_first_error(res.stderr)}"
                    continue
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        try:
            return _declare(ctypes.CDLL(str(target)))
        except (OSError, AttributeError) as exc:  # not loadable, or an entry point missing
            first_failure = first_failure or f"cannot load {target}: {exc}"
    raise RuntimeError(f"building the SLAF CPU kernel failed: {first_failure}")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        tail = [p, p, p, i64, i64, i64, i64, real, real, i32, real, real, i32]  # coef, A, B, ..., nthreads
        fwd, bwd = getattr(lib, f"slaf_fwd_{suffix}"), getattr(lib, f"slaf_bwd_{suffix}")
        fwd.argtypes, fwd.restype = [p, p, *tail], i32
        bwd.argtypes, bwd.restype = [p, p, p, p, *tail], i32
    return lib


def load() -> ctypes.CDLL:
    """The loaded library (built on first use); RuntimeError if it cannot be built."""
    global _lib, _error
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            if _error is not None:
                raise RuntimeError(_error)
            try:
                _lib = _build_and_load()
            except (RuntimeError, OSError) as exc:
                _error = str(exc)
                raise RuntimeError(_error) from exc
    return _lib


def available() -> bool:
    try:
        load()
    except RuntimeError:
        return False
    return True


def _check(name: str, t, dtype: torch.dtype | None, dim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if dtype is None and t.dtype not in _DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}; allowed: torch.float32, torch.float64")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name} has dtype {t.dtype}; it must match x2d's dtype {dtype}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on device {t.device}; the CPU kernel needs cpu tensors")
    if t.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (shape {tuple(t.shape)}, strides {t.stride()})")


def _args(x2d, coef, A, B, scale, shift, clamp, tlo, thi):
    _check("x2d", x2d, None, 2)
    for name, t, dim in (("coef", coef, 2), ("A", A, 1), ("B", B, 1)):
        _check(name, t, x2d.dtype, dim)
    rows, S = x2d.shape
    C, K = coef.shape
    if C < 1 or K < 1:
        raise ValueError(f"coef must be [C, K] with C >= 1 and K >= 1, got shape {tuple(coef.shape)}")
    if rows % C:
        raise ValueError(f"x2d has {rows} rows, not a multiple of the {C} coefficient rows (rows = N*C)")
    if A.shape != (K,) or B.shape != (K,):
        raise ValueError(f"A and B must have shape ({K},) to match coef [C, K], got {tuple(A.shape)} and "
                         f"{tuple(B.shape)}")
    suffix = "f32" if x2d.dtype == torch.float32 else "f64"
    tail = (coef.data_ptr(), A.data_ptr(), B.data_ptr(), rows, S, C, K, float(scale), float(shift),
            int(bool(clamp)), float(tlo), float(thi), torch.get_num_threads())
    return suffix, tail


def _call(fn, *args) -> None:
    rc = fn(*args)
    if rc != 0:
        raise RuntimeError(f"SLAF CPU kernel {fn.__name__} failed: {_ERRORS.get(rc, f'error code {rc}')}")


def forward(x2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float,
            shift: float, clamp: bool, tlo: float, thi: float) -> torch.Tensor:
    """y [rows, S] = sum_k coef[r % C, k] phi_k(t), t = scale*x + shift (clamped to [tlo, thi] if clamp)."""
    suffix, tail = _args(x2d, coef, A, B, scale, shift, clamp, tlo, thi)
    lib = load()
    y = torch.empty_like(x2d, memory_format=torch.contiguous_format)
    if y.numel():
        _call(getattr(lib, f"slaf_fwd_{suffix}"), x2d.data_ptr(), y.data_ptr(), *tail)
    return y


def backward(x2d: torch.Tensor, gy2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             scale: float, shift: float, clamp: bool, tlo: float, thi: float, need_gx: bool,
             need_gcoef: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(gx [rows, S] in x's dtype or None, gcoef float64 [C, K] or None), recomputed from x alone."""
    suffix, tail = _args(x2d, coef, A, B, scale, shift, clamp, tlo, thi)
    _check("gy2d", gy2d, x2d.dtype, 2)
    if gy2d.shape != x2d.shape:
        raise ValueError(f"gy2d has shape {tuple(gy2d.shape)}, x2d has {tuple(x2d.shape)}; they must match")
    lib = load()
    gx = torch.empty_like(x2d, memory_format=torch.contiguous_format) if need_gx else None
    gcoef = torch.zeros(coef.shape, dtype=torch.float64) if need_gcoef else None
    if x2d.numel() and (need_gx or need_gcoef):
        gx_ptr = gx.data_ptr() if gx is not None else None
        gcoef_ptr = gcoef.data_ptr() if gcoef is not None else None
        _call(getattr(lib, f"slaf_bwd_{suffix}"), x2d.data_ptr(), gy2d.data_ptr(), gx_ptr, gcoef_ptr, *tail)
    return gx, gcoef
