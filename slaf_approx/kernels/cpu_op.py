"""The fused CPU backend's eager op: ``cpu_op.cpp`` registered with torch's dispatcher (``TORCH_LIBRARY
slaf_approx_cpp``), with its autograd kernel in C++.

Why. At small sizes the per-call cost is Python's: the custom-op or ``autograd.Function`` machinery, the
layout and the ctypes call cost several times the kernel itself (callgrind, 2^10 float32 degree 8, one
forward with learnable coefficients: about 216k instructions through the Python path, 95k through this op,
69k for F.gelu). Here a call is one dispatcher call: the C++
autograd kernel saves x and the coefficients, the CPU kernel lays them out and calls the same C functions as
:mod:`.cpu` (the op library links that verified build), and its backward calls them again. Under
``create_graph=True`` the backward calls ``slaf_approx_cpp::slaf_grad_graph``, implemented below in Python by
the reference's differentiable ops, so double backward works as on every backend.

Build. With the C++ compiler (``$CXX``, default g++) and the include and library paths of
``torch.utils.cpp_extension``, once per source, kernel build, torch version, flags and compiler, into
``$SLAF_APPROX_CACHE`` as ``slaf_cpu_op_<key>.so`` with a sidecar checked before loading, under the same lock
as :mod:`.cpu` (see there). torch.compile does not use it: the graph holds the Python custom op of
``kernels/__init__.py``.

If it cannot be built or loaded, :func:`load` raises RuntimeError with the reason and the op of
``kernels/__init__.py`` keeps the Python path, warning once (SlafBackendWarning).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from .._io import atomic_write
from . import cpu
from .reference import BASIS_CODES, slaf_reference

SOURCE = Path(__file__).resolve().with_name("cpu_op.cpp")
FLAGS = ("-O2", "-fPIC", "-shared", "-std=c++20", "-w")
NAMESPACE = "slaf_approx_cpp"

_NAMES = {code: name for name, code in BASIS_CODES.items()}
_lock = threading.Lock()
_op = None
_error: str | None = None


def _torch_flags() -> list[str]:
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return ([f"-D_GLIBCXX_USE_CXX11_ABI={abi}"] + [f"-I{p}" for p in cpp_extension.include_paths()]
            + [f"-L{p}" for p in cpp_extension.library_paths()])


def _identity(kernel: Path, flags: list[str]) -> dict:
    meta = json.loads(kernel.with_suffix(".json").read_text())
    return {"source_sha256": cpu._sha256(SOURCE.read_bytes()), "kernel": str(kernel),
            "kernel_sha256": meta["sha256"], "flags": flags, "torch": torch.__version__}


def _compile(cxx: str, flags: list[str], kernel: Path, target: Path, identity: dict, version: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        # the kernel by absolute path: the op library records it and the loader finds it there
        argv = [cxx, *flags, str(SOURCE), str(kernel), "-lc10", "-ltorch_cpu", "-ltorch", "-o", tmp]
        res = subprocess.run(argv, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{cxx} failed building the SLAF C++ op: {cpu._first_error(res.stderr)}")
        data = Path(tmp).read_bytes()
        os.replace(tmp, target)
        meta = {**identity, "compiler": version, "size": len(data), "sha256": cpu._sha256(data)}
        atomic_write(target.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _library_path() -> Path:
    """A verified op library (built if needed); RuntimeError saying why not."""
    kernel = cpu._library_path()
    cxx_name = os.environ.get("CXX") or "g++"
    cxx = shutil.which(cxx_name)
    folder = cpu.cache_dir()
    flags = [*FLAGS, *_torch_flags()]
    identity = _identity(kernel, flags)
    if cxx is None:
        for meta in sorted(folder.glob("slaf_cpu_op_*.json")):
            if cpu._verified(meta.with_suffix(".so"), identity):
                return meta.with_suffix(".so")
        raise RuntimeError(f"the SLAF C++ op needs a C++ compiler ({cxx_name}), which is not on PATH")
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    version = "".join(out.splitlines()[:1])
    key = cpu._sha256(json.dumps({**identity, "compiler": version}, sort_keys=True).encode())[:20]
    target = folder / f"slaf_cpu_op_{key}.so"
    if cpu._verified(target, identity):
        return target
    try:
        with cpu._BuildLock(folder):
            if not cpu._verified(target, identity):  # another process may have built it meanwhile
                _compile(cxx, flags, kernel, target, identity, version)
    except OSError as exc:
        raise RuntimeError(f"cannot build the SLAF C++ op in {folder}: {exc}") from None
    return target


def _grad_graph(grad, x, coef, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc):
    """The differentiable backward (create_graph=True), by autograd through the reference."""
    want = [t for t, need in ((x, need_gx), (coef, need_gc)) if need]
    grads = []
    if want:
        y = slaf_reference(x, coef, _NAMES[basis], scale, shift, clamp, tlo, thi)
        grads = list(torch.autograd.grad(y, want, grad, create_graph=True, allow_unused=True))
    gx = grads.pop(0) if need_gx else x.new_empty(0)
    gc = grads.pop(0) if need_gc else coef.new_empty(0)
    return (torch.zeros_like(x) if gx is None else gx), gc  # None: degree 0, y does not depend on x


def _load():
    torch.ops.load_library(str(_library_path()))
    torch.library.impl(f"{NAMESPACE}::slaf_grad_graph", "CompositeImplicitAutograd")(_grad_graph)
    return getattr(torch.ops, NAMESPACE).slaf.default._op  # the C++ callable, without Python wrappers


def load():
    """The op: op(x, coef, basis_code, scale, shift, clamp, tlo, thi) -> y, differentiable in x and coef
    (built and loaded on first use); RuntimeError with the reason if it cannot be had."""
    global _op, _error
    if _op is not None:
        return _op
    with _lock:
        if _op is None:
            if _error is not None:
                raise RuntimeError(_error)
            try:
                _op = _load()
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                _error = str(exc)
                raise RuntimeError(_error) from None
    return _op


def unavailable_reason(device_type: str = "cpu") -> str | None:
    """None when the op runs on `device_type` here (building it if needed), else why not."""
    if device_type != "cpu":
        return f"the C++ op runs on CPU tensors, got device type {device_type!r}"
    try:
        load()
    except RuntimeError as exc:
        return str(exc)
    return None
