"""The fused CPU kernel of the SLAF op: ``cpu.c`` built with gcc at first use and called through ctypes.

Build cache. The shared library lives in ``$SLAF_APPROX_CACHE`` (default ``~/.cache/slaf_approx``) as
``slaf_cpu_<key>.so`` beside a sidecar ``slaf_cpu_<key>.json``. The key hashes the source text, the compiler
flags (with ``$SLAF_APPROX_CFLAGS``, shell-split and appended), the gcc version, the machine and the CPU model
and flags, so a stale or foreign build is never reused. The sidecar records those inputs and the library's
size and sha256; a library is loaded only after its bytes match the sidecar, because mapping a truncated or
corrupt library kills the process (SIGBUS) instead of raising. A mismatch is rebuilt.

Concurrency. Builds are serialised by an exclusive lock on ``.slaf_cpu.lock`` in the cache; the library is
written under a temporary name and renamed into place, then the sidecar (atomically), so a reader without the
lock sees either a verified pair or a mismatch, which sends it to the lock.

Without gcc on PATH a verified build with the same source, flags, machine and CPU is still used (whichever
gcc made it). If nothing can be built or loaded, :func:`unavailable_reason` says why and :func:`load` raises
RuntimeError with that reason.

Layout (prepared by the caller): x2d contiguous [rows, S] float32/float64, row r uses coefficient row r % C of
coef [C, K]; A, B [K] hold the basis recurrence phi_(k+1) = A_k t phi_k - B_k phi_(k-1). The number of OpenMP
threads follows ``torch.get_num_threads()``.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from .._io import atomic_write

SOURCE = Path(__file__).resolve().with_name("cpu.c")
BASE_FLAGS = ("-O3", "-fPIC", "-shared", "-std=c11", "-ffp-contract=fast")
# tried in this order; the last one without OpenMP threads (one thread, still vectorised)
VARIANTS = (("-march=native", "-fopenmp"), ("-fopenmp",), ("-fopenmp-simd",))
CFLAGS_ENV = "SLAF_APPROX_CFLAGS"  # extra gcc flags, shell-split, appended last (so they win)
LOCK_NAME = ".slaf_cpu.lock"

_ERRORS = {1: "a required pointer is NULL", 2: "bad sizes (rows, S, C, K)", 3: "out of memory",
           4: "A[k] == 0 for some k < K-1: not a polynomial basis"}
_DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("SLAF_APPROX_CACHE") or Path.home() / ".cache" / "slaf_approx")


def extra_flags() -> list[str]:
    """``$SLAF_APPROX_CFLAGS`` split as a shell would; ValueError naming the variable if it cannot be."""
    text = os.environ.get(CFLAGS_ENV, "")
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{CFLAGS_ENV}={text!r} cannot be split into flags: {exc}") from None


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _identity(flags: list[str]) -> dict:
    """What a build depends on, but for the compiler version (a build is usable without gcc on PATH)."""
    return {"source_sha256": _sha256(SOURCE.read_bytes()), "flags": flags, "machine": platform.machine(),
            "cpu_sha256": _sha256(_cpu_id().encode())}


def _verified(lib: Path, identity: dict) -> bool:
    """True when lib's sidecar describes this identity and lib's bytes have the recorded size and sha256."""
    try:
        meta = json.loads(lib.with_suffix(".json").read_text())
        if any(meta.get(k) != v for k, v in identity.items()):
            return False
        if lib.stat().st_size != meta["size"]:
            return False
        return _sha256(lib.read_bytes()) == meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _cached_any_compiler(folder: Path, identity: dict) -> Path | None:
    for meta in sorted(folder.glob("slaf_cpu_*.json")):
        lib = meta.with_suffix(".so")
        if _verified(lib, identity):
            return lib
    return None


class _BuildLock:
    """An exclusive advisory lock on the cache's lock file (serialises builds between processes)."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _compile(gcc: str, flags: list[str], target: Path, identity: dict, version: str) -> str | None:
    """Build target and its sidecar (caller holds the lock); None, or gcc's first error line."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        # an absolute source path: cpu.c includes itself through __FILE__
        res = subprocess.run([gcc, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True)
        if res.returncode != 0:
            return f"gcc {' '.join(flags)}: {_first_error(res.stderr)}"
        data = Path(tmp).read_bytes()
        os.replace(tmp, target)
        meta = {**identity, "compiler": version, "size": len(data), "sha256": _sha256(data)}
        atomic_write(target.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _library_path() -> Path:
    """A verified library for the first variant that builds (or is cached); RuntimeError saying why not."""
    folder = cache_dir()
    extra = extra_flags()
    gcc = shutil.which("gcc")
    variants = [[*BASE_FLAGS, *v, *extra] for v in VARIANTS]
    if gcc is None:
        if folder.is_dir():
            for flags in variants:
                found = _cached_any_compiler(folder, _identity(flags))
                if found is not None:
                    return found
        raise RuntimeError(f"the SLAF CPU kernel needs gcc, which is not on PATH, and {folder} holds no "
                           "verified build of this source")
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout
    version = "".join(out.splitlines()[:1])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create the kernel cache {folder}: {exc}") from None
    first_failure = None
    for flags in variants:
        identity = _identity(flags)
        key = _sha256(json.dumps({**identity, "compiler": version}, sort_keys=True).encode())[:20]
        target = folder / f"slaf_cpu_{key}.so"
        if _verified(target, identity):
            return target
        try:
            with _BuildLock(folder):
                done = _verified(target, identity)  # another process may have built it meanwhile
                failure = None if done else _compile(gcc, flags, target, identity, version)
        except OSError as exc:  # a read-only cache: no lock file, no temporary file
            found = _cached_any_compiler(folder, identity)  # built by another gcc, still this source
            if found is not None:
                return found
            raise RuntimeError(f"cannot build the SLAF CPU kernel in {folder}: {exc}") from None
        if failure is None:
            return target
        first_failure = first_failure or failure
    raise RuntimeError(f"building the SLAF CPU kernel failed: {first_failure}")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        tail = [p, p, p, i64, i64, i64, i64, real, real, i32, real, real, i32]  # coef, A, B, ..., nthreads
        fwd, bwd = getattr(lib, f"slaf_fwd_{suffix}"), getattr(lib, f"slaf_bwd_{suffix}")
        fwd.argtypes, fwd.restype = [p, p, *tail], i32
        bwd.argtypes, bwd.restype = [p, p, p, p, *tail], i32
    return lib


def _build_and_load() -> ctypes.CDLL:
    path = _library_path()
    try:
        return _declare(ctypes.CDLL(str(path)))
    except (OSError, AttributeError) as exc:  # not loadable, or an entry point missing
        raise RuntimeError(f"cannot load {path}: {exc}") from None


def load() -> ctypes.CDLL:
    """The loaded library (built on first use); RuntimeError with the reason if it cannot be had."""
    global _lib, _error
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            if _error is not None:
                raise RuntimeError(_error)
            try:
                _lib = _build_and_load()
            except (RuntimeError, OSError, ValueError) as exc:
                _error = str(exc)
                raise RuntimeError(_error) from None
    return _lib


def unavailable_reason(device_type: str = "cpu") -> str | None:
    """None when the kernel runs on `device_type` here (building it if needed), else why not."""
    if device_type != "cpu":
        return f"the fused kernel runs on CPU tensors, got device type {device_type!r}"
    try:
        load()
    except RuntimeError as exc:
        return str(exc)
    return None


def available() -> bool:
    return unavailable_reason() is None


# ----------------------------------------------------------------------------------------------------
# Calls. run_forward / run_backward trust their caller (the op in kernels/__init__.py prepares contiguous
# tensors of one dtype with consistent shapes); forward / backward check everything first.
# ----------------------------------------------------------------------------------------------------
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


def _validate(x2d, coef, A, B) -> None:
    _check("x2d", x2d, None, 2)
    for name, t, dim in (("coef", coef, 2), ("A", A, 1), ("B", B, 1)):
        _check(name, t, x2d.dtype, dim)
    rows = x2d.shape[0]
    C, K = coef.shape
    if C < 1 or K < 1:
        raise ValueError(f"coef must be [C, K] with C >= 1 and K >= 1, got shape {tuple(coef.shape)}")
    if rows % C:
        raise ValueError(f"x2d has {rows} rows, not a multiple of the {C} coefficient rows (rows = N*C)")
    if A.shape != (K,) or B.shape != (K,):
        raise ValueError(f"A and B must have shape ({K},) to match coef [C, K], got {tuple(A.shape)} and "
                         f"{tuple(B.shape)}")


def _fail(name: str, rc: int):
    raise RuntimeError(f"SLAF CPU kernel {name} failed: {_ERRORS.get(rc, f'error code {rc}')}")


def run_forward(x2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float,
                shift: float, clamp: bool, tlo: float, thi: float) -> torch.Tensor:
    """forward() without the argument checks."""
    lib = _lib if _lib is not None else load()
    y = torch.empty_like(x2d, memory_format=torch.contiguous_format)
    if y.numel():
        rows, S = x2d.shape
        C, K = coef.shape
        fn = lib.slaf_fwd_f32 if x2d.dtype == torch.float32 else lib.slaf_fwd_f64
        rc = fn(x2d.data_ptr(), y.data_ptr(), coef.data_ptr(), A.data_ptr(), B.data_ptr(), rows, S, C, K,
                scale, shift, clamp, tlo, thi, torch.get_num_threads())
        if rc:
            _fail(fn.__name__, rc)
    return y


def run_backward(x2d: torch.Tensor, gy2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                 scale: float, shift: float, clamp: bool, tlo: float, thi: float, need_gx: bool,
                 need_gcoef: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """backward() without the argument checks."""
    lib = _lib if _lib is not None else load()
    gx = torch.empty_like(x2d, memory_format=torch.contiguous_format) if need_gx else None
    gcoef = torch.zeros(coef.shape, dtype=torch.float64) if need_gcoef else None
    if x2d.numel() and (need_gx or need_gcoef):
        rows, S = x2d.shape
        C, K = coef.shape
        fn = lib.slaf_bwd_f32 if x2d.dtype == torch.float32 else lib.slaf_bwd_f64
        rc = fn(x2d.data_ptr(), gy2d.data_ptr(), gx.data_ptr() if need_gx else None,
                gcoef.data_ptr() if need_gcoef else None, coef.data_ptr(), A.data_ptr(), B.data_ptr(), rows,
                S, C, K, scale, shift, clamp, tlo, thi, torch.get_num_threads())
        if rc:
            _fail(fn.__name__, rc)
    return gx, gcoef


def forward(x2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float,
            shift: float, clamp: bool, tlo: float, thi: float) -> torch.Tensor:
    """y [rows, S] = sum_k coef[r % C, k] phi_k(t), t = scale*x + shift (clamped to [tlo, thi] if clamp)."""
    _validate(x2d, coef, A, B)
    return run_forward(x2d, coef, A, B, float(scale), float(shift), bool(clamp), float(tlo), float(thi))


def backward(x2d: torch.Tensor, gy2d: torch.Tensor, coef: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             scale: float, shift: float, clamp: bool, tlo: float, thi: float, need_gx: bool = True,
             need_gcoef: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(gx [rows, S] in x's dtype or None, gcoef float64 [C, K] or None), recomputed from x alone."""
    _validate(x2d, coef, A, B)
    _check("gy2d", gy2d, x2d.dtype, 2)
    if gy2d.shape != x2d.shape:
        raise ValueError(f"gy2d has shape {tuple(gy2d.shape)}, x2d has {tuple(x2d.shape)}; they must match")
    return run_backward(x2d, gy2d, coef, A, B, float(scale), float(shift), bool(clamp), float(tlo),
                        float(thi), bool(need_gx), bool(need_gcoef))
